"""Direct quotations with their speakers.

1. Spans: quote marks are paired per paragraph (curly and straight, nested), an open quote at the end
   of a paragraph runs to its end and, if the next paragraph does not open a quote of its own, carries
   into it (a quotation broken by a paragraph break).
2. Filter: quoted titles (Title Case, no sentence punctuation) are dropped; short unattributed
   fragments (scare quotes) are dropped; quotes nested in a quote count only when introduced by a
   verb ("chanting “Iran Out!”").
3. Attribution: after the quote (", Trump said", ", said Ernie Audino", ", the memo states"), else before
   it in the same sentence ("She added: ", "the senator calls a “...”", a colon after the sentence
   subject), else the previous quote in the paragraph, else — for a paragraph that opens with a quote —
   the previous paragraph's speaker.
4. Speakers: names are expanded to the fullest form via the entity index; he/she/it/they are resolved to
   the sentence subject of this or the previous paragraph, or the last speaker, checking gender from
   the given name; "the letter"/"the memo" are resolved to their author where the article names one,
   else described ("anonymous letter").
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from transforms.fields._text import FUNCTION_WORDS, sentences, wordset
from transforms.fields.entities import ORG, PERSON, PLACE, SPEECH_VERBS, Entity, EntityIndex

_MARK = re.compile(r"[“”\"«»]")
_VERB_EXTRA = r"|claiming|arguing|adding|noting|warning|writing|calling|telling|insisting|explaining|talked|read|reading|chant|chants"
_VERB = r"(?:" + SPEECH_VERBS + _VERB_EXTRA + r")"
_VERB_RE = re.compile(r"(?<![\w-])" + _VERB + r"\b")
_NAME_RUN = r"(?:[A-Z][\w’'.\-]*(?:\s+(?:of|for|the|and|de|al|bin|van|von|[A-Z][\w’'.\-]*|\d+\b))*)"
_DET_NP = r"(?:(?i:the|a|an|one|another|its|his|her|their|this|that|some|many|several)\s+(?:[\w’'\-]+\s+){0,3}?[\w’'\-]+|another|others|[Oo]ne)"
_PRON = r"(?:he|she|they|it|we|i|He|She|They|It|We|I)"
_ADV = r"(?:\s+(?:also|later|then|once|further|simply|recently|previously|earlier|again|has|had|have|would|will|had\s+previously))?"

# after the closing mark
_AFTER_SV = re.compile(r"^[\s,—–-]*(?P<sp>" + _PRON + r"|" + _NAME_RUN + r"|" + _DET_NP + r")" + _ADV + r"\s+(?P<v>" + _VERB + r")\b")
# "..." singer Aoife Brennan said: a lower-case role before the name
_AFTER_RSV = re.compile(r"^[\s,—–-]*(?P<role>(?:[a-z][\w’'\-]*\s+){1,3})(?P<sp>" + _NAME_RUN + r")" + _ADV + r"\s+(?P<v>" + _VERB + r")\b")
_AFTER_VS = re.compile(r"^[\s,—–-]*(?P<v>" + _VERB + r")\s+(?P<sp>" + _NAME_RUN + r"|" + _DET_NP + r")")
_AFTER_ACC = re.compile(r"^[\s,—–-]*according\s+to\s+(?P<sp>" + _NAME_RUN + r"|" + _DET_NP + r")")
# before the opening mark: subject at the end of a text
_SUBJ_END = re.compile(
    r"(?:^|[\s,(])(?P<sp>" + _PRON + r"|" + _NAME_RUN + r"|" + _DET_NP + r")" + r"(?:\s*,[^,]{1,120},)?" + _ADV + r"\s*$"
)
_REL_END = re.compile(r"(?P<np>" + _NAME_RUN + r"|" + _DET_NP + r")\s*,?\s+(?:that|which|who)\s*$")

DOC_NOUNS = wordset("""statement letter memo memorandum lawsuit suit report banner sign placard poster post tweet email e-mail
    complaint filing document release ruling order editorial note message petition leaflet flyer ad
    advertisement study survey book article website page notice announcement decree resolution bill
    motion verdict judgment opinion brief manifesto communique communiqué transcript text caption
    headline slogan graffiti inscription""")
CROWD_NOUNS = wordset("""protesters protestors demonstrators crowd crowds fans supporters marchers rioters chanters mourners
    activists residents students workers voters people""")
ORG_NOUNS = wordset("""association body group company organization organisation agency department ministry team party
    government school union committee court board council campaign office league police military army
    administration institute firm club network university college commission authority bureau""")
# fixed patterns of the attribution rules, compiled once
_WORDS = re.compile(r"[\w’'\-]+")
_OWNER = re.compile(r"^.*[’']s\s+")
_ABOUT = re.compile(r"\s+about\b")
_AND_END = re.compile(r"\band\s+(?:\w+ly\s+)?$")
_DOC_NOUN = re.compile(r"\b(" + "|".join(sorted(DOC_NOUNS, key=len, reverse=True)) + r")\b", re.IGNORECASE)
_DOC_NOUN_SHORT = re.compile(r"\b(statement|letter|memo|banner|sign|lawsuit|report|email|post|tweet)\b", re.IGNORECASE)
_LEAD_NP = re.compile(r"\s*(?:[A-Z][\w’'.\-]*\s+){0,4}?")
_FIRST_NP = re.compile(r"\s*(" + _DET_NP + r"|" + _NAME_RUN + r")")
_FIRST_NP_NOT_OF = re.compile(r"\s*(" + _DET_NP + r"|" + _NAME_RUN + r")\s+(?!of\b)")
_NAME_VERB = re.compile(r"[A-Z][a-z]+\s+" + _VERB)
_CHANT_END = re.compile(r"\b(chanting|chanted|chant|shouting|shouted|saying|reads?|reading|wrote|writing|yelling|yelled)\s*[,:]?\s*$")
_CROWD_BEFORE = re.compile(r"\b([a-z]+(?:ers|ors|ists|ants|ents|crowds?))\b[^“]*$")
_PRONOUN_GENDER = {"he": "m", "him": "m", "she": "f", "her": "f", "i": None, "we": None}


@dataclass
class _Span:
    start: int
    end: int
    para: int
    nested: bool
    open_end: bool
    cont: bool  # continues a quote from the previous paragraph without an opening mark


@dataclass
class _Attr:
    speaker: str | None = None
    stype: str = "unknown"
    role: str | None = None
    verb: str | None = None
    entity: Entity | None = None


def _find_spans(text: str, paras: list[tuple[int, int]]) -> list[_Span]:
    out: list[_Span] = []
    carry = False
    for pi, (ps, pe) in enumerate(paras):
        stack: list[int] = []
        cont_here = False
        if carry and text[ps] not in "“\"«":
            stack.append(ps)
            cont_here = True
        carry = False
        for m in _MARK.finditer(text, ps, pe):
            ch = m.group()
            pos = m.start()
            if ch in "“«":
                is_open = True
            elif ch in "”»":
                is_open = False
            else:
                prev = text[pos - 1] if pos > ps else " "
                nxt = text[pos + 1] if pos + 1 < pe else " "
                if stack and not (nxt.isalnum() and (prev.isspace() or prev in "([—–-/")):
                    is_open = False
                elif pos == ps or prev.isspace() or prev in "([—–-/“":
                    is_open = True
                else:
                    is_open = False
            if is_open:
                stack.append(pos + 1)
            elif stack:
                s = stack.pop()
                out.append(_Span(s, pos, pi, bool(stack), False, cont_here and s == ps))
        if stack:
            s = stack[0]
            out.append(_Span(s, pe, pi, False, True, cont_here and s == ps))
            carry = not (cont_here and s == ps)
    out.sort(key=lambda q: (q.start, -q.end))
    return out


def _words(s: str) -> list[str]:
    return _WORDS.findall(s)


def _is_title(q: str) -> bool:
    ws = _words(q)
    if not ws or len(ws) > 8:
        return False
    stripped = q.rstrip()
    if stripped.endswith(("!", "?")) and len(ws) > 1:
        return False
    content = [w for w in ws if len(w) > 3 or w[0].isupper()]
    if not content:
        return False
    caps = sum(1 for w in content if w[0].isupper() or w[0].isdigit())
    return caps / len(content) >= 0.8 and (len(ws) > 1 or not stripped.endswith("."))


class _Resolver:
    def __init__(self, text: str, paras: list[tuple[int, int]], index: EntityIndex):
        self.text = text
        self.paras = paras
        self.index = index
        self.mstarts = [m.start for m in index.mentions]
        self._sents: dict[int, list[tuple[int, int]]] = {}
        self.done: list[tuple[_Span, _Attr]] = []
        self.qspans: list[tuple[int, int]] = []
        self.inq: list[bool] = []

    # --- helpers --------------------------------------------------------------------------------
    def sents(self, pi: int) -> list[tuple[int, int]]:
        if pi not in self._sents:
            ps, pe = self.paras[pi]
            self._sents[pi] = sentences(self.text, ps, pe)
        return self._sents[pi]

    def sentence_at(self, pi: int, pos: int) -> tuple[int, int]:
        for s, e in self.sents(pi):
            if s <= pos < e or pos == e:
                return s, e
        return self.paras[pi]

    def mentions(self, start: int, end: int) -> list:
        i = bisect.bisect_left(self.mstarts, start)
        j = bisect.bisect_left(self.mstarts, end)
        if not self.qspans:
            return self.index.mentions[i:j]
        inq = self.inq
        return [self.index.mentions[k] for k in range(i, j) if not inq[k]]

    def set_quotes(self, qspans: list[tuple[int, int]]) -> None:
        self.qspans = qspans
        starts = [a for a, _ in qspans]
        inq = []
        for m in self.index.mentions:
            k = bisect.bisect_right(starts, m.start) - 1
            inq.append(k >= 0 and qspans[k][0] <= m.start < qspans[k][1])
        self.inq = inq

    def entity_in(self, start: int, end: int) -> Entity | None:
        """The entity whose mention ends closest to `end` inside [start, end)."""
        ms = [m for m in self.mentions(start, end) if m.end <= end]
        if not ms:
            return None
        # prefer a non-possessive mention
        for m in reversed(ms):
            if not m.possessive:
                return m.entity
        return ms[-1].entity

    @staticmethod
    def gender_ok(e: Entity, gender: str | None) -> bool:
        return gender is None or e.gender in (None, "?", gender)

    def sentence_subjects(self, pi: int, before: int | None = None) -> list[Entity]:
        out = []
        for s, e in self.sents(pi):
            if before is not None and s >= before:
                break
            for m in self.mentions(s, e):
                if before is not None and m.start >= before:
                    break
                if m.entity.kind in (PERSON, ORG) and not m.possessive:
                    out.append(m.entity)
                    break
                if m.entity.kind == PERSON:
                    break
        return out

    def resolve_person(self, pos: int, pi: int, gender: str | None) -> Entity | None:
        # (a) the previous speaker in this paragraph
        for sp, at in reversed(self.done):
            if sp.para != pi:
                break
            if at.entity is not None and at.entity.kind == PERSON and self.gender_ok(at.entity, gender):
                return at.entity
        # (b) sentence subjects earlier in this paragraph, (c) in the previous paragraph
        for cand in reversed(self.sentence_subjects(pi, pos)):
            if cand.kind == PERSON and self.gender_ok(cand, gender):
                return cand
        if pi > 0:
            for cand in reversed(self.sentence_subjects(pi - 1)):
                if cand.kind == PERSON and self.gender_ok(cand, gender):
                    return cand
        # (d) the last person quoted nearby
        for sp, at in reversed(self.done):
            if pi - sp.para > 3:
                break
            if at.entity is not None and at.entity.kind == PERSON and self.gender_ok(at.entity, gender):
                return at.entity
        # (e) the last person mentioned
        ps = self.paras[max(0, pi - 2)][0]
        for m in reversed(self.mentions(ps, pos)):
            if m.entity.kind == PERSON and not m.possessive and self.gender_ok(m.entity, gender):
                return m.entity
        return None

    def resolve_org(self, noun: str | None, pos: int, pi: int) -> Entity | None:
        ms = self.mentions(0, pos)
        if noun:
            for m in reversed(ms):
                if m.entity.kind == ORG and noun.lower() in m.entity.name.lower():
                    return m.entity
        for sp, at in reversed(self.done):
            if pi - sp.para > 3:
                break
            if at.entity is not None and at.entity.kind == ORG:
                return at.entity
        for m in reversed(ms):
            if m.entity.kind == ORG:
                return m.entity
        return None

    def resolve_document(self, noun: str, pos: int, pi: int) -> _Attr:
        text = self.text
        pat = re.compile(r"\b" + re.escape(noun) + r"s?\b", re.IGNORECASE)
        hits = [m for m in pat.finditer(text, 0, pos)]
        first_desc: str | None = None
        for m in reversed(hits):
            hp = next((i for i, (s, e) in enumerate(self.paras) if s <= m.start() < e), pi)
            ss, se = self.sentence_at(hp, m.start())
            tail = text[m.end(): se]
            by = re.match(r"^[^.;]{0,60}?\b(?:by|from)\s+(?:the\s+)?(" + _NAME_RUN + r")", tail)
            if by:
                ent = self.index.lookup(by.group(1)) or self.entity_in(m.end(), m.end() + by.end() + 1)
                if ent is not None and ent.kind in (PERSON, ORG):
                    return _Attr(ent.name, "person" if ent.kind == PERSON else "organization", ent.role, None, ent)
            head = text[ss: m.start()]
            own = re.search(r"(" + _NAME_RUN + r")[’']s\s+(?:\w+\s+){0,2}$", head)
            if own:
                ent = self.index.lookup(own.group(1))
                if ent is not None and ent.kind in (PERSON, ORG):
                    return _Attr(ent.name, "person" if ent.kind == PERSON else "organization", ent.role, None, ent)
            # the subject of a speech verb in that sentence ("In its lawsuit, X argues ...")
            v = _VERB_RE.search(text, m.end(), se)
            if v:
                at = self.subject_before(ss, v.start(), hp, allow_doc=False)
                if at is not None and at.entity is not None:
                    at.verb = None
                    return at
        for m in hits:
            d = re.search(r"(?:\b(?:a|an|the)\s+)((?:[\w\-]+\s+){0,2})" + re.escape(noun) + r"$", text[max(0, m.start() - 40): m.end()], re.IGNORECASE)
            if d:
                adjs = [w for w in d.group(1).split() if w.lower() not in ("a", "an", "the")]
                first_desc = " ".join([*adjs[-1:], noun]).strip()
                break
        return _Attr(first_desc or noun, "document")

    def from_np(self, np: str, start: int, end: int, pi: int, allow_doc: bool = True) -> _Attr | None:
        """Speaker from a subject phrase at text[start:end]."""
        np = np.strip()
        low = np.lower()
        if low in ("he", "she", "i", "we"):
            ent = self.resolve_person(start, pi, _PRONOUN_GENDER.get(low))
            if ent is None:
                return _Attr(None, "person")
            return _Attr(ent.name, "person", ent.role, None, ent)
        if low in ("it", "they"):
            for sp, at in reversed(self.done):
                if pi - sp.para > 2:
                    break
                if at.stype in ("organization", "document", "crowd") and at.speaker:
                    return _Attr(at.speaker, at.stype, at.role, None, at.entity)
            ent = self.resolve_org(None, start, pi)
            if ent is not None:
                return _Attr(ent.name, "organization", None, None, ent)
            return None
        if np[:1].isupper() and not low.startswith(("the ", "a ", "an ", "one ", "another ", "its ", "his ", "her ", "their ", "this ", "that ")) and low not in ("one", "another", "others"):
            own = _OWNER.match(np)
            off = own.end() if own else 0
            ms = [m for m in self.mentions(start + off, end + 1) if m.end <= end + 1 and not m.possessive]
            ent = ms[-1].entity if ms else None
            if ent is None:
                # strip a possessive owner: "ACV’s Paul Jacob"
                name = np[off:]
                ent = self.index.lookup(name)
                if ent is None:
                    words = name.split()
                    for k in range(len(words)):
                        ent = self.index.lookup(" ".join(words[k:]))
                        if ent is not None:
                            break
            if ent is not None:
                kind = {PERSON: "person", ORG: "organization", PLACE: "organization"}[ent.kind]
                return _Attr(ent.name, kind, ent.role, None, ent)
            name = np[off:]
            if len(name.split()) <= 5:
                return _Attr(name, "person" if len(name.split()) >= 2 else "unknown")
            return None
        words = np.split()
        head = words[-1].lower().strip("’'")
        if head in DOC_NOUNS and allow_doc:
            return self.resolve_document(head, start, pi)
        if head in CROWD_NOUNS and head.endswith("s"):
            return _Attr(" ".join(w for w in words if w.lower() not in ("the", "a", "an", "some", "many")), "crowd")
        if head in ORG_NOUNS:
            ent = self.resolve_org(head, start, pi)
            if ent is not None:
                return _Attr(ent.name, "organization", None, None, ent)
            return _Attr(np, "organization")
        if words[0].lower() == "the" and len(words) == 2:
            # "the senator": the person last given that role
            for m in reversed(self.mentions(0, start)):
                e = m.entity
                if e.kind == PERSON and e.role and head in e.role.lower():
                    return _Attr(e.name, "person", e.role, None, e)
        desc = " ".join(w for w in words if w.lower() not in ("the", "a", "an"))
        return _Attr(desc[:1].lower() + desc[1:] if desc else None, "person")

    def subject_before(self, sent_start: int, verb_start: int, pi: int, allow_doc: bool = True) -> _Attr | None:
        seg = self.text[sent_start:verb_start]
        rel = _REL_END.search(seg)
        if rel:
            np = rel.group("np")
            at = self.from_np(np, sent_start + rel.start("np"), sent_start + rel.end("np"), pi, allow_doc)
            if at is not None and np[:1].isupper() and at.entity is None:
                low = {w.lower().strip("’'") for w in np.split()}
                at.stype = "document" if low & (DOC_NOUNS | {"act", "law", "order", "bill", "report", "constitution"}) else "unknown"
            if at is not None and (at.entity is not None or at.stype != "person" or np.split()[0].lower() not in ("this", "that")):
                return at
        m = _SUBJ_END.search(seg)
        if m:
            at = self.from_np(m.group("sp"), sent_start + m.start("sp"), sent_start + m.end("sp"), pi, allow_doc)
            if at is not None:
                return at
        # the sentence's subject: its first person or organisation
        for mm in self.mentions(sent_start, verb_start):
            if mm.entity.kind in (PERSON, ORG) and not mm.possessive:
                e = mm.entity
                return _Attr(e.name, "person" if e.kind == PERSON else "organization", e.role, None, e)
        return None


def _verb_base(v: str) -> str:
    return v.lower()


def extract(text: str, paras: list[tuple[int, int]], index: EntityIndex) -> list[dict]:
    spans = _find_spans(text, paras)
    top = [s for s in spans if not s.nested]
    nested = [s for s in spans if s.nested]  # (in the order of spans)
    res = _Resolver(text, paras, index)
    res.set_quotes(sorted((t.start, t.end) for t in top))
    rows: list[dict] = []
    done_rows: list[dict] = []
    for k, sp in enumerate(top):
        q = text[sp.start: sp.end].strip()
        if not q:
            continue
        nwords = len(_words(q))
        if nwords == 0 or (not sp.cont and _is_title(q)):
            continue
        ps, pe = paras[sp.para]
        # the text after the quote up to the next quote or sentence end, and before it back to the
        # previous quote or sentence start
        nxt = next((t.start - 1 for t in top[k + 1:] if t.para == sp.para), pe)
        after = text[min(sp.end + 1, pe): max(nxt, sp.end + 1)]
        prev_q = next((t for t in reversed(top[:k]) if t.para == sp.para), None)
        b0 = prev_q.end + 1 if prev_q is not None else ps
        ss, _se = res.sentence_at(sp.para, max(sp.start - 1, ps))
        b0 = max(b0, ss)
        before_end = max(b0, sp.start - 1)
        before = text[b0:before_end]
        attr: _Attr | None = None
        if True:
            for pat in (_AFTER_SV, _AFTER_VS, _AFTER_RSV):
                m = pat.match(after)
                if m and pat is _AFTER_RSV and any(w in FUNCTION_WORDS for w in m.group("role").split()):
                    m = None  # ", and when interviewer X recalled": a new clause, not the quote's attribution
                if m:
                    base = sp.end + 1 + (1 if sp.end + 1 <= pe else 0) - 1
                    at = res.from_np(m.group("sp"), base + m.start("sp"), base + m.end("sp"), sp.para)
                    if at is not None:
                        at.verb = m.group("v").lower()
                        attr = at
                        break
            if attr is None:
                m = _AFTER_ACC.match(after)
                if m:
                    base = sp.end + 1
                    at = res.from_np(m.group("sp"), base + m.start("sp"), base + m.end("sp"), sp.para)
                    if at is not None:
                        at.verb = "according to"
                        attr = at
        if attr is None and not sp.cont and before.strip():
            verbs = [v for v in _VERB_RE.finditer(before) if not _ABOUT.match(before, v.end())]
            coord = bool(verbs) and _AND_END.search(before[: verbs[-1].start()]) is not None
            prev0 = res.done[-1] if res.done else None
            if verbs and coord and prev0 is not None and prev0[0].para == sp.para:
                a = prev0[1]
                attr = _Attr(a.speaker, a.stype, a.role, verbs[-1].group().lower(), a.entity)
            elif verbs:
                v = verbs[-1]
                vs = b0 + v.start()
                seg_start = b0
                at = res.subject_before(seg_start, vs, sp.para)
                if at is None or (at.entity is None and at.stype == "person" and not at.speaker):
                    # inverted: "said X, “...”" is rare before a quote; try the document in the sentence
                    docm = _DOC_NOUN.search(text[seg_start:vs])
                    if docm:
                        at = res.resolve_document(docm.group(1).lower(), vs, sp.para)
                elif at.stype == "person" and at.entity is None:
                    docm = _DOC_NOUN_SHORT.search(text[seg_start:vs])
                    if docm and docm.start() < v.start():
                        at2 = res.resolve_document(docm.group(1).lower(), vs, sp.para)
                        at = at2
                if at is not None:
                    at.verb = v.group().lower()
                    attr = at
            elif before.rstrip().endswith(":"):
                lead_np = _LEAD_NP.match(before)
                first_ent = None
                for mm in res.mentions(b0, b0 + len(before)):
                    if mm.entity.kind in (PERSON, ORG) and not mm.possessive and lead_np and mm.start <= b0 + max(lead_np.end(), 1) + 40:
                        first_ent = mm.entity
                        break
                at = res.subject_before(b0, b0 + len(before.rstrip()) - 1, sp.para)
                if first_ent is not None and (at is None or at.entity is None):
                    e = first_ent
                    at = _Attr(e.name, "person" if e.kind == PERSON else "organization", e.role, None, e)
                if at is None:
                    m2 = _FIRST_NP.match(before)
                    if m2:
                        at = res.from_np(m2.group(1), b0 + m2.start(1), b0 + m2.end(1), sp.para)
                else:
                    # the sentence subject is the first noun phrase, not the last one before the colon
                    m2 = _FIRST_NP_NOT_OF.match(before)
                    if m2 and m2.group(1).split()[0].lower() in ("the", "a", "an"):
                        at3 = res.from_np(m2.group(1).split(" with ")[0], b0 + m2.start(1), b0 + m2.end(1), sp.para)
                        if at3 is not None and at3.stype in ("document", "organization", "crowd"):
                            at = at3
                if at is not None:
                    at.verb = None
                    attr = at
        # inherited attribution
        if attr is None:
            prev = res.done[-1] if res.done else None
            if prev is not None and prev[0].para == sp.para and not _NAME_VERB.search(before):
                a = prev[1]
                attr = _Attr(a.speaker, a.stype, a.role, a.verb if not sp.cont else None, a.entity)
            elif prev is not None and (sp.cont or (sp.start - 1 <= ps and nwords >= 4)) and sp.para - prev[0].para <= 2:
                a = prev[1]
                attr = _Attr(a.speaker, a.stype, a.role, None, a.entity)
        if attr is None:
            # unattributed: a sentence-like quotation stays (speaker unknown), a short fragment is a scare quote
            if nwords < 5:
                continue
            attr = _Attr(None, "unknown")
        if nwords <= 3 and attr.speaker is None and attr.stype == "unknown":
            continue
        res.done.append((sp, attr))
        rows.append(_row(text, sp, attr, q))
        done_rows.append(rows[-1])
        # quotes nested in this one that are introduced by a verb ("chanting “Iran Out!”")
        for ns in nested:
            if sp.start <= ns.start and ns.end <= sp.end:
                lead = text[max(sp.start, ns.start - 30): ns.start - 1]
                vm = _CHANT_END.search(lead)
                if vm:
                    nq = text[ns.start: ns.end].strip()
                    crowd = _CROWD_BEFORE.search(text[sp.start: ns.start])
                    verb = vm.group(1).lower()
                    stype = "crowd" if verb.startswith(("chant", "shout", "yell")) else "unknown"
                    na = _Attr(crowd.group(1) if crowd else None, stype, None, verb)
                    rows.append(_row(text, ns, na, nq))
    # a quotation broken by a paragraph break takes its attribution from the piece that carries it
    for i in range(len(res.done) - 2, -1, -1):
        sp, at = res.done[i]
        nsp, nat = res.done[i + 1]
        if sp.open_end and at.speaker is None and nsp.cont and nsp.para == sp.para + 1 and nat.speaker:
            res.done[i] = (sp, nat)
            done_rows[i].update(speaker=nat.speaker, speaker_type=nat.stype, speaker_role=nat.role, verb=nat.verb)
    rows.sort(key=lambda r: r["start_char"])
    return rows


def _row(text: str, sp: _Span, at: _Attr, q: str) -> dict:
    lead = len(text[sp.start: sp.end]) - len(text[sp.start: sp.end].lstrip())
    start = sp.start + lead
    return {
        "quote": q,
        "speaker": at.speaker,
        "speaker_type": at.stype if at.speaker or at.stype != "person" else "unknown",
        "speaker_role": at.role,
        "verb": at.verb,
        "paragraph": sp.para,
        "start_char": start,
        "end_char": start + len(q),
    }
