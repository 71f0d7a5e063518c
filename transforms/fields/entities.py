"""People, organisations and places named in an article.

Candidates are runs of capitalised words. Each is classified by evidence, strongest first:
acronym definitions ("Popular Mobilization Forces (PMF)"), the gazetteer (gazetteer.places), organisation
keywords ("... Association", "Department of ..."), geographic keywords ("... County", "Mount ..."),
titles ("Sen.", "Secretary of State"), a known given name as first word, and context (a speech verb, an
appositive ", a former ..."). Short forms are then folded into the fullest form: "Pompeo" into
"Mike Pompeo", "PMF" into "Popular Mobilization Forces", "Chiefs" into "Kansas City Chiefs", "VPA" into
"Vermont Principals Association" (initials), "Advisory Board" into "CNBC Changemakers Advisory Board".

Runs no rule above decides are organisations when their context says so (_org_by_context): an
employer ("worked at X", "an attorney with X", "joined X"), a kind noun before ("the duo X", "the
company X"), "X member/spokesman", a publication spoken to ("told the X", "The X's"), a platform
("posted on X", used twice or more) and "X forces". List articles (awards) read their section headings:
items under a group/band heading are organisations, headings and the works after an artist are not.
Awards and events ("Artist of the Year", "Brit Awards", "Super Bowl") are not entities.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from transforms.fields import gazetteer
from transforms.fields._text import (
    CONNECTORS,
    FUNCTION_WORDS,
    MONTHS,
    WEEKDAYS,
    CapSeq,
    cap_sequences,
    is_upper_line,
    wordset,
)

PERSON, ORG, PLACE = "person", "organization", "place"

TITLE_WORDS = wordset("""president vice prime minister secretary sen senator rep representative congressman congresswoman
    gov governor mayor justice judge dr mr mrs ms miss gen general col colonel lt lieutenant sgt sergeant
    capt captain adm admiral maj major brigadier commander chief director ambassador speaker chairman
    chairwoman chair commissioner sheriff detective officer professor prof rev reverend pastor father
    bishop archbishop cardinal pope king queen prince princess sheikh ayatollah emir sultan chancellor
    premier lord lady sir dame attorney coach inspector superintendent councillor councilman
    councilwoman alderman trooper deputy agent""")
# words that continue a title already begun: "Chief Executive", "Chief Operating Officer", "Managing Director"
_TITLE_CONT = frozenset({"executive", "operating", "financial", "technology", "information", "managing", "officer"})
# titles that can stand before a name but are also ordinary parts of organisation names
_WEAK_TITLES = frozenset({"general", "chief", "director", "speaker", "chair", "deputy", "agent", "officer", "father", "major"})

ORG_LAST = wordset("""association associations institute institution party committee commission department administration
    university college school schools academy forces force army navy guard guards corps police board
    council agency authority bureau office ministry court senate congress parliament assembly legislature
    company co inc corp corporation ltd llc plc group league coalition center centre foundation fund bank
    service services network union alliance federation organization organisation society club team times
    news post journal magazine herald tribune gazette observer telegraph chronicle press radio
    television tv hospital hospitals clinic church trust partners capital holdings airlines airways motors
    systems technologies labs laboratories reserve movement front brigade brigades militia militias
    cabinet government poll commission caucus directorate secretariat command division regiment battalion
    fleet unit units foundation institutes agency studios records entertainment media publishing group
    museum library orchestra conference tribunal panel taskforce inc. corp. bros brothers
    gmbh llp limited incorporated pty pte nv bv sarl""")
ORG_FIRST_OF = wordset("""department university office ministry bank institute board council house court church college school
    academy bureau agency commission committee federation union league party society museum friends
    government center centre foundation alliance coalition association organization organisation""")
_GROUP_NOUNS = wordset("members member leaders officials supporters employees staff critics opponents representatives "
                       "students residents fans voters delegates lawmakers shares stock")
_LEAD_STRIP = frozenset({"former", "ex", "late", "then", "acting", "interim", "outgoing", "incoming"})
ORG_SINGLE = wordset("house congress senate parliament pentagon kremlin knesset duma bundestag interpol")
PARTY_FORMS = re.compile(r"^(Democrat|Republican|Conservative|Liberal|Labour|Tory|Tories|Green|Socialist|Communist)(s|ic)?$")

PLACE_LAST = wordset("""county river lake mountains mountain island islands bay sea ocean gulf strait straits valley hill hills
    peninsula junction province desert canyon airport square arena stadium capitol street avenue boulevard
    road bridge beach coast harbor harbour falls heights springs forest plaza station palace strip
    basin delta district borough township parish governorate prefecture oblast region territory
    channel""")
EVENT_LAST = wordset("""awards games olympics paralympics festival championship championships cup bowl marathon tournament
    expo fair prize prizes gala derby classic grand prix open""")
PLACE_FIRST = wordset("mount lake isle gulf strait cape fort port")
_COMPASS_REGION = re.compile(
    r"^(?:North|South|East|West|Central|Middle|Far|Near|Northern|Southern|Eastern|Western|Southeast|Southwest|Northeast|Northwest)\s+"
    r"(?:East|America|Africa|Asia|Europe|Pacific|Atlantic|Caucasus|Balkans|Korea|Sudan)$"
)
STOP_ACRONYMS = wordset(
    "TV CEO CFO COO CTO GDP AI OK PM AM ID DNA RNA COVID AIDS HIV FAQ PDF USB GPS VIP MVP DIY PR HR IT VR AR "
    "LGBT LGBTQ NB PS RIP ASAP FYI AKA DJ MC RSVP TBA TBD UFO ATM PIN SUV NFT IPO ETF CPI"
)

SPEECH_VERBS = (
    r"said|says|say|told|tells|added|adds|wrote|writes|asked|asks|explained|explains|stated|states|noted|notes|"
    r"argued|argues|claimed|claims|warned|warns|insisted|insists|replied|replies|continued|acknowledged|"
    r"recalled|recalls|tweeted|posted|declared|declares|announced|announces|praised|praises|called|calls|"
    r"dismissed|dismisses|accused|accuses|read|reads|chanted|chanting|shouted|shouting|yelled|complained|"
    r"cautioned|admitted|admits|suggested|suggests|urged|urges|emphasized|emphasised|observed|commented|"
    r"remarked|testified|vowed|predicted|predicts|concluded|conceded|responded|responds|agreed|agrees|"
    r"stressed|stresses|added|recounted|described|describes|joked|confirmed|confirms|told|saying|reported|"
    r"reports|alleged|alleges|maintained|maintains|countered|counters|boasted|pleaded|demanded|demands|"
    r"promised|promises|denied|denies|conceded|recommended|advised|mused|quipped|exclaimed|whispered|"
    r"answered|answers|texted|emailed|raved|gushed|lamented|laments|pointed out|points out|went on"
)
_SPEECH_AFTER = re.compile(r"^\s*,?\s*(?:also\s+|later\s+|then\s+|has\s+|had\s+|once\s+)?(?:" + SPEECH_VERBS + r")\b")
_SPEECH_BEFORE = re.compile(r"\b(?:" + SPEECH_VERBS + r")\s*,?\s*$")
# the last word of every speech verb: text that _SPEECH_BEFORE matches ends with one (once trailing
# spaces and a comma are stripped), a cheap test that spares the slow search for most runs
_SPEECH_LAST = tuple(sorted({v.split()[-1] for v in SPEECH_VERBS.split("|")}))
_APPOSITIVE = re.compile(
    r"^\s*,\s+(?:who\b|whose\b|(?:(?:a|an|the)\s+)?(?:former|then-|now|longtime)?\s*(?:[\w.’'-]+\s+){0,5}?"
    r"(?:coach|manager|director|spokesman|spokeswoman|attorney|lawyer|actor|actress|official|minister|secretary|"
    r"president|founder|leader|analyst|researcher|professor|economist|senator|governor|mayor|chief|executive|"
    r"editor|reporter|adviser|advisor|strategist|member|resident|owner|author|writer|singer|rapper|player|"
    r"captain|commander|officer|ambassador|candidate|activist|lawmaker|judge|teacher|student|doctor|nurse|"
    r"scientist|historian|expert|general|chairman|chairwoman|head|partner|worker|father|mother|son|daughter|"
    r"wife|husband|brother|sister|friend|colleague|man|woman|boy|girl)s?\b)"
)
_ROLE_AFTER = re.compile(
    r"^\s*,\s+(?:(?:a|an|the)\s+)?((?:former\s+|then-|now-)?(?:[^,.;“”\"]|(?<=\b[A-Z])\.){2,80}?)(?=\s*(?:,|(?<!\b[A-Z])\.(?:\s|$)|;|$|\s+who\b|\s+whose\b|\s+which\b|\s+that\b|\s+and\s+(?:has|is|was)\b))"
)
_ROLE_NOUN_BEFORE = re.compile(
    r"(?<![\w.])((?:(?:[A-Z][\w.’'&-]*|of|the|and|former|then-|longtime|local|acting|interim|deputy|senior|chief|general|executive|lead|head)\s+){0,6}"
    r"(?:coach|manager|director|spokesman|spokeswoman|spokesperson|attorney|lawyer|actor|actress|official|"
    r"minister|secretary|president|chairman|chairwoman|founder|leader|analyst|researcher|professor|economist|"
    r"senator|congressman|congresswoman|governor|mayor|chief|executive|editor|reporter|adviser|advisor|"
    r"strategist|member|resident|owner|author|writer|singer|rapper|star|player|captain|commander|officer|"
    r"ambassador|envoy|candidate|lady|businessman|businesswoman|activist|leader|spokesperson|head|"
    r"general|lawmaker|judge|justice|principal|teacher|student|doctor|nurse|scientist|historian|expert)s?)\s+$"
)


@dataclass
class Entity:
    name: str
    kind: str
    aliases: set[str] = field(default_factory=set)
    spans: list[tuple[int, int]] = field(default_factory=list)
    country_code: str | None = None
    gender: str | None = None
    role: str | None = None
    evidence: int = 0  # how strong the person evidence is (title, given name, speaker)

    @property
    def first(self) -> tuple[int, int]:
        return min(self.spans)


@dataclass(slots=True)
class Mention:
    start: int
    end: int
    entity: Entity
    possessive: bool
    sent_initial: bool


@dataclass
class EntityIndex:
    entities: list[Entity]
    mentions: list[Mention]  # sorted by start
    by_surface: dict[str, Entity]

    def lookup(self, surface: str) -> Entity | None:
        return self.by_surface.get(_key(surface))

    def mentions_between(self, start: int, end: int) -> list[Mention]:
        return [m for m in self.mentions if start <= m.start and m.end <= end]


def _key(s: str) -> str:
    s = s.strip().lower().replace("’", "'")
    if s.startswith("the "):
        s = s[4:]
    return s


def _titlecase(w: str) -> str:
    return w if not w.isupper() or len(w) <= 1 else w[:1] + w[1:].lower()


@dataclass(slots=True)
class _Cand:
    words: list[str]
    start: int
    end: int
    kind: str | None
    sent_initial: bool
    possessive: bool
    titled: bool = False
    title: str | None = None
    speaker_ctx: bool = False
    appositive: bool = False
    country: str | None = None
    listed: bool = False  # an item of a list article


def _classify_words(words: list[str]) -> tuple[str | None, str | None]:
    """(kind, country_code) from the words alone, or (None, None) when undecided."""
    return _classify_tuple(tuple(words))


@lru_cache(maxsize=1 << 16)
def _classify_tuple(words: tuple[str, ...]) -> tuple[str | None, str | None]:
    text = " ".join(words)
    gaz = gazetteer.places()
    hit = gaz.get(text) or (gaz.get(" ".join(_titlecase(w) for w in words)) if text.isupper() and len(text) >= 5 else None)
    low = [w.lower().rstrip(".") for w in words]
    if len(words) >= 2 and low[-1] in ORG_LAST:
        return ORG, None
    if len(words) >= 3 and low[0] in ORG_FIRST_OF and low[1] in ("of", "for", "on"):
        return ORG, None
    for k in range(1, len(low) - 1):
        if low[k] in ("of", "for") and low[k - 1] in ORG_LAST:
            return ORG, None
    if hit:
        return PLACE, hit[0]
    if len(words) == 1 and low[0] in ORG_SINGLE:
        return ORG, None
    if len(words) >= 2 and (low[-1] in PLACE_LAST or low[0] in PLACE_FIRST):
        head = " ".join(words[:-1]) if low[-1] in PLACE_LAST else None
        code = gaz[head][0] if head and head in gaz else None
        return PLACE, code
    if _COMPASS_REGION.match(text):
        return PLACE, None
    if len(words) == 1 and PARTY_FORMS.match(words[0]) and (words[0].endswith(("s", "ic")) or words[0] in ("Labour", "Tories")):
        return ORG, None
    return None, None


_AWARD = re.compile(r"\bof the (?:Year|Decade|Season|Month)$|^Best [A-Z]")


def _split_title(words: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(before, title, after): 'Supreme Court Justice Hugo Black' -> (['Supreme','Court'], ['Justice'], ['Hugo','Black'])."""
    span = _title_span(tuple(words))
    if span is None:
        return words, [], []
    i, j = span
    return words[:i], words[i:j], words[j:]


@lru_cache(maxsize=1 << 16)
def _title_span(words: tuple[str, ...]) -> tuple[int, int] | None:
    """(i, j): words[i:j] is the title of _split_title, or None when there is none."""
    n = len(words)
    for i, w in enumerate(words):
        lw = w.lower().rstrip(".")
        if lw not in TITLE_WORDS:
            continue
        j = i
        while j < n and (words[j].lower().rstrip(".") in TITLE_WORDS or (words[j].lower() == "of" and j + 1 < n)
                         or (j > i and words[j].lower() in _TITLE_CONT)):
            if words[j].lower() == "of":
                j += 2  # "Secretary of State", "Head of School"
                continue
            j += 1
        if j >= n:
            return None  # nothing after the title
        if lw in _WEAK_TITLES and i == 0 and j - i == 1 and n - j > 2:
            continue
        return i, j
    return None


# A step of a run's plan: one candidate over the run's words[a:b] (see _seq_plan).
#   si, poss: the candidate takes the run's sentence-initial flag / possessive ending (else False);
#   how: _PLAIN, _CONTEXT (read its context: _context) or _TEAM ("Kansas City Chiefs" after "the" or
#   written "the Chiefs" somewhere: an organisation, else an undecided run read in context).
_Step = tuple[int, int, str | None, bool, bool, bool, str | None, str | None, int]
_PLAIN, _CONTEXT, _TEAM = 0, 1, 2
_TRAILING = ("of", "for", "the", "and", "&", "on")
_SPLITTERS = ("of", "for", "and", "&", "on", "the")


def _cands_from_seq(seq: CapSeq, text: str, para_end: int) -> list[_Cand]:
    """The candidates of one capitalised run: its plan (which depends on the words alone and is cached)
    applied to the run's offsets and context."""
    words = seq.words
    spans = seq.word_spans
    out: list[_Cand] = []
    for a, b, kind, si, poss, titled, title, country, how in _seq_plan(tuple(words), seq.sent_initial):
        start, end = spans[a][0], spans[b - 1][1]
        possessive = poss and seq.possessive
        if how == _TEAM:
            if _the_before(text, start) or f"the {words[b - 1]}" in text:
                out.append(_Cand(words[a:b], start, end, ORG, si, possessive))
                continue
            how = _CONTEXT
        c = _Cand(words[a:b], start, end, kind, si, possessive, titled=titled, title=title, country=country)
        if how == _CONTEXT:
            _context(c, text, para_end)
        out.append(c)
    return out


@lru_cache(maxsize=1 << 14)
def _seq_plan(words: tuple[str, ...], sent_initial: bool) -> tuple[_Step, ...]:
    """The candidates of a run of capitalised words as steps over its word indices: function words,
    weekdays and months trimmed or split off, then each part read by _part_plan."""
    seq_text = " ".join(words)
    if (("of the " in seq_text or seq_text.startswith("Best ")) and _AWARD.search(seq_text)) or (
            len(words) >= 2 and words[-1].lower() in EVENT_LAST):
        return ()  # "Artist of the Year", "Brit Awards", "Super Bowl": awards and events are not entities
    n = len(words)
    a = 0
    # leading function words, weekdays and months are not part of a name
    while a < n:
        lw = words[a].lower().rstrip(".")
        if lw == "the" and not sent_initial and n - a > 1:
            break
        if lw in FUNCTION_WORDS or lw in _LEAD_STRIP or lw in WEEKDAYS or lw in MONTHS or (sent_initial and lw.endswith(("ly", "ing")) and n - a > 1 and lw not in ("ealing",)):
            a += 1
            sent_initial = False
            continue
        break
    # "Members of the CNBC Advisory Board": the people of a body are not part of its name
    if n - a >= 3 and words[a].lower() in _GROUP_NOUNS and words[a + 1].lower() in ("of", "from"):
        a += 3 if words[a + 2].lower() == "the" and n - a > 3 else 2
        sent_initial = False
    b = n
    while b > a and words[b - 1].lower() in _TRAILING:
        b -= 1
    if b == a:
        return ()
    # weekdays / months inside split the run
    parts: list[tuple[int, int, bool]] = []
    cur: int | None = None
    first = sent_initial
    for k in range(a, b):
        w = words[k]
        lw = w.lower().rstrip(".")
        if lw in WEEKDAYS or (lw in MONTHS and w not in ("May",)):
            if cur is not None:
                parts.append((cur, k, first))
            cur, first = None, False
            continue
        if cur is None:
            cur = k
    if cur is not None:
        parts.append((cur, b, first))
    steps: list[_Step] = []
    for pa, pb, pfirst in parts:
        steps.extend(_mask(_part_plan(words[pa:pb], pa), pfirst, pb == b))
    return tuple(steps)


def _mask(steps: list[_Step], si: bool, poss: bool) -> list[_Step]:
    """`steps` of a part that is sentence-initial only if `si` and takes the possessive only if `poss`."""
    if si and poss:
        return steps
    return [(a, b, kind, s and si, p and poss, titled, title, country, how)
            for a, b, kind, s, p, titled, title, country, how in steps]


def _part_plan(words: tuple[str, ...], off: int) -> list[_Step]:
    """The steps of one part of a run (words[0] is the run's word `off`), as if it were sentence-initial
    and possessive: what the words alone say, with the parts split by connectors, titles, given names
    and places read recursively."""
    n = len(words)
    while n and words[n - 1].lower() in _TRAILING:
        n -= 1
    words = words[:n]
    if not words:
        return []
    end = off + n
    kind, code = _classify_tuple(words)
    low = [w.lower() for w in words]
    if kind == ORG and "and" in low[1:-1]:
        k = low.index("and")
        left, right = words[:k], words[k + 1:]
        joint = f"{words[k - 1]} and {words[k + 1]}"
        if (_classify_tuple(left)[0] == ORG and _classify_tuple(right)[0] == ORG and len(right) >= 2
                and joint not in gazetteer.places()):
            return [*_mask(_part_plan(left, off), True, False), *_mask(_part_plan(right, off + k + 1), False, True)]
    if kind == ORG and "of" in low[1:-1] and low[low.index("of") - 1] in _SUBUNITS:
        k = low.index("of")
        tail = words[k + 1:]
        if _classify_tuple(tail)[0] in (None, ORG) and tail[0][:1].isupper():
            return [(off + k + 1, end, ORG, False, True, False, None, None, _PLAIN)]
    if kind is not None:
        out0: list[_Step] = [(off, end, kind, True, True, False, None, code, _PLAIN)]
        if kind == ORG and "of" in low[1:-1]:
            k = low.index("of")
            tail = words[k + 1:]
            if low[k - 1] in ORG_LAST and _classify_tuple(tail)[0] is None and _looks_like_name(tail):
                out0.append((off + k + 1, end, ORG, False, True, False, None, None, _PLAIN))
        return out0
    span = _title_span(words)
    if span is not None:
        i, j = span  # words[:i] before the title, words[i:j] the title, words[j:] after it
        out: list[_Step] = []
        if i:
            out.extend(_mask(_part_plan(words[:i], off), True, False))
        after_end = n
        poss = True
        cut = next((k for k in range(j, n) if low[k] in _SPLITTERS), n)
        if cut < n:
            if cut + 1 < n:
                out.extend(_mask(_part_plan(words[cut + 1:], off + cut + 1), False, True))
            after_end = cut
            poss = False
        if after_end > j:
            out.append((off + j, off + after_end, PERSON, False, poss, True, " ".join(words[i:j]), None, _CONTEXT))
        return out
    # connectors inside an undecided run: split and classify the parts
    if any(w in _SPLITTERS for w in low[1:-1]):
        out = []
        cs: int | None = None
        for k in range(n):
            if low[k] in _SPLITTERS:
                if cs is not None:
                    out.extend(_mask(_part_plan(words[cs:k], off + cs), not out, False))
                cs = None
                continue
            if cs is None:
                cs = k
        if cs is not None:
            out.extend(_mask(_part_plan(words[cs:], off + cs), False, True))
        return out
    given = gazetteer.given_names()
    if n >= 3 and low[0] not in given:
        for k in range(1, n - 1):
            if low[k] in given and 2 <= n - k <= 3 and _looks_like_name(words[k:]):
                return [*_mask(_part_plan(words[:k], off), True, False), (off + k, end, None, False, True, False, None, None, _CONTEXT)]
    gaz = gazetteer.places()
    if 2 <= n <= 4 and words[-1].endswith("s") and " ".join(words[:-1]) in gaz:
        if low[0] not in given:
            return [(off, end, ORG, True, True, False, None, None, _PLAIN)]  # a team: "Kansas City Chiefs"
        return [(off, end, None, True, True, False, None, None, _TEAM)]  # a team, or a person ("Layton Williams")
    for k in (2, 1):
        if low[0] in given:
            break
        head = " ".join(words[:k])
        if n > k and head in gaz and gaz[head][1] >= 2:
            return [(off, off + k, PLACE, True, False, False, None, gaz[head][0], _PLAIN),
                    *_mask(_part_plan(words[k:], off + k), False, True)]
    a = 0
    while n - a >= 2 and words[a].endswith(_DEMONYM_ENDS) and words[a].lower() not in given:
        a += 1
    return [(off + a, end, None, a == 0, True, False, None, None, _CONTEXT)]


def _context(c: _Cand, text: str, para_end: int) -> None:
    after = text[c.end + (2 if c.possessive else 0): min(para_end, c.end + 60)]
    before = text[max(0, c.start - 40): c.start]
    c.speaker_ctx = bool(_SPEECH_AFTER.match(after)) or (not c.possessive and _speech_before(before)) or before.endswith(("quoting ", "quoted "))
    c.appositive = bool(_APPOSITIVE.match(after))
    if c.kind in (None, PERSON) and (pw := _prev_word(before)) is not None and pw.lower() in TITLE_WORDS:
        c.titled = True


def _speech_before(before: str) -> bool:
    """`before` ends with a speech verb (and maybe a comma): _SPEECH_BEFORE, searched only when the
    stripped text ends with a speech verb's last word."""
    t = before.rstrip()
    if t.endswith(","):
        t = t[:-1].rstrip()
    return t.endswith(_SPEECH_LAST) and _SPEECH_BEFORE.search(before) is not None


def _prev_word(before: str) -> str | None:
    """The word before the trailing space of `before` (_PREV_WORD), searched from the last chunk only:
    a match never spans a space."""
    t = before.rstrip()
    if not t or len(t) == len(before):
        return None
    pw = _PREV_WORD.search(before, len(t) - len(t.rsplit(None, 1)[-1]))
    return pw.group(1) if pw else None


def _the_before(text: str, start: int) -> bool:
    """The run follows "the": a team or a body ("the Denver Bears"), never a person ("Layton Williams")."""
    return text[max(0, start - 4): start].lower() == "the "


def _looks_like_name(words: Sequence[str]) -> bool:
    return all(map(_name_word, words))


@lru_cache(maxsize=1 << 16)
def _name_word(w: str) -> bool:
    """A word written like a name: capitalised but not in capitals (or an initial), no digits."""
    return (w[:1].isupper() and not w.isupper() or (len(w) <= 2 and w.endswith("."))) and not any(ch.isdigit() for ch in w)


# a lower-case word: the first letter is matched before the look-behind at it (the same test as a
# look-behind before it) so that the scan can skip straight to the letters
_LOWER_WORD = re.compile(r"[a-z](?<![\w’'.-].)[a-z]+(?![\w’'-])")
_LIST_LINE = re.compile(r"[A-Z0-9][\w’'.&!/-]*(?:[ ,/&]+(?:and\s+)?[A-Z0-9][\w’'.&!/-]*){0,8}\s*(?:,\s*)?(?:“[^”]{1,60}”|\"[^\"]{1,60}\")?\s*(?:[–—-]\s*[A-Z]+)?")
_CREDIT = re.compile(r"(?i)appeared originally|originally appeared|originally published|can be reached|contributed to this report|reporting by|copyright|all rights reserved|©|\bhttps?://")
_DATELINE_CREDIT = re.compile(r"^[A-Z][A-Z .,’'-]+\s*(\([^)]{1,30}\))\s*[—–-]")
_SUBUNITS = frozenset({"office", "wing", "branch", "arm", "division", "unit", "bureau", "directorate"})
_QUOTED = re.compile(r"[“\"]([^“”\"]{1,80})[”\"]")


_TITLE_WORDS_RE = re.compile(r"[\w’'\-]+")


def _title_like(q: str) -> bool:
    ws = _TITLE_WORDS_RE.findall(q)
    if not ws or len(ws) > 8 or q.rstrip().endswith(("!", "?")):
        return False
    content = [w for w in ws if len(w) > 3 or w[0].isupper()]
    return bool(content) and sum(1 for w in content if w[0].isupper() or w[0].isdigit()) / len(content) >= 0.8


_DEMONYM_ENDS = ("-American", "-British", "ian", "ean", "ese", "ish", "ani", "i")  # a word (no newline) ending so
_PREV_WORD = re.compile(r"(?<![\w.])([A-Za-z]+)\.?\s+$")
_LIST_HEADING = re.compile(
    r"(?:Best\b[^,“”\"]*|[^,“”\"]*\bof the (?:Year|Decade|Season|Month)|[^,“”\"]*\s/\s[^,“”\"]*|"
    r"[^,“”\"]*\b(?:Act|Artist|Album|Song|Group|Band|Duo|Award|Category|Nominee|Winner|Record|Single|Video|Performance)s?)"
)
_GROUP_HEADING = re.compile(r"(?i)\b(?:groups?|bands?|duos?|trios?)\b")
_WORK_HEADING = re.compile(r"\b(?:Album|Song|Single|Record|Video|Book|Film|Play|Show|Series)s?\b")
_AFTER_NUMBER = re.compile(r"\d\w*\s+$")


def _in_vocab(w: str, vocab: set[str]) -> bool:
    """`w` or its plural/singular is written in lower case somewhere in the text."""
    return w in vocab or w + "s" in vocab or (w.endswith("s") and w[:-1] in vocab)


_URL = re.compile(r"(?:https?://|www\.)\S*")
_TITLE_WORD = re.compile(r"\b[A-Z][a-z]+\b")
_ACRONYM_DEF = re.compile(r"\(\s*([A-Z][A-Za-z&]{1,9})\s*\)")
_ACRONYM_AFTER = re.compile(r"[”\"]?\s*\(\s*([A-Z][A-Za-z&]{1,9})\s*\)")
_QUOTED_ACRONYM = re.compile(r"[”\"]\s*\(\s*([A-Z][A-Za-z&]{1,9})\s*\)")


def _may_open_acronym(text: str, end: int) -> bool:
    """Whether _ACRONYM_DEF or _ACRONYM_AFTER can match at `end`: they open with a quote, spaces or "(",
    and after a space only more space or "(" can follow."""
    c = text[end: end + 1]
    if c.isspace():
        c = text[end + 1: end + 2]
        return c == "(" or c.isspace() or not c
    return c in ("(", "”", "\"", "")


def _initials_match(acr: str, words: list[str]) -> bool:
    letters = [w[0].upper() for w in words if w.lower() not in ("of", "for", "the", "and", "&", "on", "de", "in")]
    full = [w[0].upper() for w in words]
    a = acr.upper().replace("&", "")
    return a in ("".join(letters), "".join(full)) or (len(a) >= 2 and "".join(letters).startswith(a) and len(letters) - len(a) <= 1 and len(a) >= 3)


def extract(text: str, paras: list[tuple[int, int]], skip: tuple[int, int] | None = None) -> EntityIndex:
    given = gazetteer.given_names()
    cands: list[_Cand] = []
    acronyms: dict[str, tuple[int, int, list[str]]] = {}
    non_entity: set[str] = set()
    lower_vocab = set(_LOWER_WORD.findall(_URL.sub(" ", text) if "://" in text or "www." in text else text))
    list_lines = [(ps, pe) for ps, pe in paras if pe - ps < 160 and (lm := _LIST_LINE.match(text, ps, pe)) and lm.end() == pe]
    is_list = len(list_lines) >= 3
    list_set = set(list_lines) if is_list else set()
    heading: str | None = None  # the current section heading of a list article ("Group of the Year")
    for ps, pe in paras:
        if (is_list and pe - ps <= 60 and (hm := _LIST_HEADING.match(text, ps, pe)) and hm.end() == pe
                and all(w[:1].isupper() or w[:1].isdigit() or w in ("of", "the", "and", "for", "&", "/") for w in text[ps:pe].split())):
            heading = text[ps:pe]  # a category or award heading in a list article names no entity
            continue
        if (ps, pe) not in list_set and pe - ps > 80:
            heading = None
        if is_upper_line(text, ps, pe) or (pe - ps < 250 and _CREDIT.search(text, ps, pe)):
            continue
        group_section = bool(heading and _GROUP_HEADING.search(heading))
        work_section = bool(heading and _WORK_HEADING.search(heading))
        dl = _DATELINE_CREDIT.match(text, ps, pe)
        titles = [(m.start(), m.end()) for m in _QUOTED.finditer(text, ps, pe) if _title_like(m.group(1))]
        seqs = cap_sequences(text, ps, pe)
        for seq in seqs:
            if skip and skip[0] <= seq.start < skip[1]:
                continue
            if dl and dl.start(1) <= seq.start < dl.end(1):
                continue
            if titles and any(a <= seq.start < b for a, b in titles):
                td = _QUOTED_ACRONYM.match(text, seq.end, pe)
                if td and _initials_match(td.group(1), seq.words):
                    non_entity.add(td.group(1))  # "Citizen Only Voting" (COV): the short form of a quoted name
                continue
            if (ps, pe) in list_set and text[seq.start - 1: seq.start] not in "“\"" and seq.start < (text.find("“", ps, pe) if "“" in text[ps:pe] else pe):
                words = seq.words
                low = [w.lower() for w in words]
                if _AFTER_NUMBER.search(text, ps, seq.start):
                    continue  # "My 21st Century Blues": a title, not a name
                if seq.end == pe and re.search(r"\s[–—-]\s*$", text[ps:seq.start]):
                    continue  # "Jungle – WINNER": a marker after the item
                if work_section and "," in text[ps:seq.start] and not any(q in text[ps:pe] for q in "“\""):
                    continue  # "Blur, The Ballad of Darren" under "Album of the Year": the work after the artist
                if (words[0] == "The" and len(words) >= 2 and seq.start == ps and _looks_like_name(words[1:])
                        and re.search(r"[^s]s$", words[-1]) and _classify_words(words[1:])[0] is None):
                    # a list item "The Rolling Stones": a person's name never starts with "The"
                    cands.append(_Cand(list(words), seq.start, seq.end, ORG, False, False, listed=True))
                    continue
                if len(words) <= 3 and not any(w in lower_vocab or (w in CONNECTORS and not (group_section and w == "&")) for w in low):
                    kind, code = _classify_words(words)
                    if group_section and kind != PLACE:
                        kind = ORG  # the items of a "Group of the Year" / "Best Band" section
                    elif kind != ORG and not (kind == PLACE and len(words) == 1 and words[0] not in gazetteer.places()):
                        kind = kind if kind == PLACE else PERSON
                    cands.append(_Cand(list(words), seq.start, seq.end, kind or PERSON, False, False, country=code, listed=True))
                    continue
            new = _cands_from_seq(seq, text, pe)
            # acronym definition right after the run: "Popular Mobilization Forces (PMF)"
            m = None
            if _may_open_acronym(text, seq.end):
                m = _ACRONYM_DEF.match(text, seq.end, pe) if not seq.possessive else None
                if m is None and seq.end < pe:
                    m2 = _ACRONYM_AFTER.match(text, seq.end, pe)
                    if m2:
                        m = _ACRONYM_DEF.search(text, seq.end, m2.end())
            if m and _initials_match(m.group(1), seq.words):
                # a quoted phrase's short form ("Citizen Only Voting" (COV)) names a thing, not a body
                quoted = text[seq.end: seq.end + 1] in ("”", "\"") or (seq.start > 0 and text[seq.start - 1] in "“\"")
                if quoted:
                    non_entity.add(m.group(1))
                else:
                    acronyms[m.group(1)] = (seq.start, seq.end, seq.words)
                    kind, code = _classify_words(seq.words)
                    cands = [c for c in cands if not (c.start >= seq.start and c.end <= seq.end)]
                    new = [_Cand(list(seq.words), seq.start, seq.end, kind or ORG, seq.sent_initial, False, country=code)]
            cands.extend(new)

    # a list item named as a group in one section is a group in the others too
    listed_orgs = {tuple(c.words) for c in cands if c.listed and c.kind == ORG}
    for c in cands:
        if c.listed and c.kind == PERSON and tuple(c.words) in listed_orgs:
            c.kind = ORG

    # --- organisations by context ------------------------------------------------------------------
    # surnames: the last word of a titled or listed person, or of a run opening with a given name
    person_words = {c.words[-1] for c in cands if c.kind == PERSON or c.titled or (
        c.kind is None and 2 <= len(c.words) <= 4 and c.words[0].lower() in given and _looks_like_name(c.words))}
    single_counts: dict[str, int] = {}
    for c in cands:
        if len(c.words) == 1 and not c.sent_initial:
            single_counts[c.words[0]] = single_counts.get(c.words[0], 0) + 1
    for c in cands:
        if c.kind is None and _org_by_context(c, text, given, lower_vocab, person_words, single_counts):
            c.kind = ORG

    # --- person decisions -------------------------------------------------------------------------
    _tw: list[set[str]] = []

    def title_words() -> set[str]:
        """Title-case words of the text (computed on first use)."""
        if not _tw:
            _tw.append(set(_TITLE_WORD.findall(text)))
        return _tw[0]

    gaz = gazetteer.places()
    state_codes = gazetteer.us_state_codes()
    for c in cands:
        if c.kind is not None:
            continue
        n = len(c.words)
        first = c.words[0].lower().rstrip(".")
        if 2 <= n <= 4 and _looks_like_name(c.words) and not any(
            gaz.get(w, ("", 0))[1] >= 2 for w in c.words
        ):
            if first == "the":
                continue
            if first in given and not (c.sent_initial and first in FUNCTION_WORDS) or (c.speaker_ctx or c.appositive) and not any(w.lower() in lower_vocab for w in c.words):
                c.kind = PERSON
        elif (2 <= n <= 4 and c.words[-1].endswith("s") and c.words[-1][0].isupper() and " ".join(c.words[:-1]) in gazetteer.places()
              and (first not in given or _the_before(text, c.start) or f"the {c.words[-1]}" in text)):
            c.kind = ORG  # a team: "Kansas City Chiefs"
        elif n == 1 and c.words[0] in state_codes:
            c.kind = PLACE
            c.words = [state_codes[c.words[0]]]
            c.country = "US"
        elif (n == 1 and c.words[0].isupper() and 2 <= len(c.words[0]) <= 6 and c.words[0] not in STOP_ACRONYMS
              and c.words[0] not in non_entity and not _in_vocab(c.words[0].lower(), lower_vocab)
              and not (_titlecase(c.words[0]) != c.words[0] and _titlecase(c.words[0]) in title_words())):
            c.kind = ORG  # an acronym (not a word in capitals, nor a name also written "Raye")

    # --- build entities ---------------------------------------------------------------------------
    entities: list[Entity] = []
    by_surface: dict[str, Entity] = {}

    def add(name: str, kind: str, span: tuple[int, int], code: str | None = None) -> Entity:
        key = _key(name)
        ent = by_surface.get(key)
        if ent is None:
            ent = Entity(name, kind, country_code=code)
            entities.append(ent)
            by_surface[key] = ent
        ent.spans.append(span)
        return ent

    mentions: list[Mention] = []
    persons_multi = [c for c in cands if c.kind == PERSON and len(c.words) >= 2]
    # fullest person names first so that shorter forms fold into them
    persons_multi.sort(key=lambda c: -len(c.words))
    name_words: list[tuple[Entity, set[str]]] = []  # the entities so far (all persons) and their names' words
    for c in persons_multi:
        name = " ".join(c.words)
        cwords = set(c.words)
        ent = next((e for e, ws in name_words if cwords <= ws), None)
        if ent is None:
            known = len(entities)
            ent = add(name, PERSON, (c.start, c.end))
            if len(entities) > known:
                name_words.append((ent, set(ent.name.split())))
            ent.gender = given.get(c.words[0].lower())
        else:
            ent.spans.append((c.start, c.end))
            if name != ent.name:
                ent.aliases.add(name)
                by_surface.setdefault(_key(name), ent)
        if c.title and not ent.role:
            ent.role = c.title
        mentions.append(Mention(c.start, c.end, ent, c.possessive, c.sent_initial))

    for acr, (_s, _e, words) in acronyms.items():
        name = " ".join(words)
        ent = by_surface.get(_key(name))
        if ent is None:
            kind, code = _classify_words(words)
            ent = Entity(name, kind or ORG, country_code=code)
            entities.append(ent)
            by_surface[_key(name)] = ent
        ent.aliases.add(acr)
        by_surface[_key(acr)] = ent

    # organisations and places with more than one word, then single words
    rest = [c for c in cands if not (c.kind == PERSON and len(c.words) >= 2)]
    rest.sort(key=lambda c: -len(c.words))
    surname_of: dict[str, Entity] = {}
    for e in entities:
        if e.kind == PERSON:
            parts = e.name.split()
            surname_of.setdefault(parts[-1].lower(), e)
            for a in e.aliases:
                surname_of.setdefault(a.split()[-1].lower(), e)
    firstname_of: dict[str, list[Entity]] = {}
    for e in entities:
        if e.kind == PERSON:
            firstname_of.setdefault(e.name.split()[0].lower(), []).append(e)
    last_word_of: dict[str, Entity] = {}

    for c in rest:
        name = " ".join(c.words)
        key = _key(name)
        ent = by_surface.get(key)
        if ent is None and c.words[0].isupper() and len(c.words) == 1:
            ent = by_surface.get(_key(_titlecase(c.words[0])))
        if ent is None and len(c.words) == 1:
            w = c.words[0].lower()
            if w in surname_of:
                ent = surname_of[w]
            elif w in last_word_of and c.kind != PLACE:
                ent = last_word_of[w]
            elif w in firstname_of and len(firstname_of[w]) == 1 and c.kind != PLACE:
                ent = firstname_of[w][0]
            elif PARTY_FORMS.match(c.words[0]):
                stem = PARTY_FORMS.match(c.words[0]).group(1)  # type: ignore[union-attr]
                for e in entities:
                    if e.kind == ORG and e.name.split()[0].startswith(stem[:-1] if stem.endswith("s") else stem):
                        ent = e
                        break
        if ent is None and c.kind is None and len(c.words) >= 2:
            flat = " ".join(" ".join(c.words).replace("-", " ").lower().split())
            for e in entities:
                if e.kind == ORG and e.name.replace("-", " ").lower().startswith(flat + " "):
                    ent = e
                    break
        if ent is None and c.kind in (None, ORG):
            ent = _fold_org(c.words, entities)
        if ent is None:
            kind = c.kind
            if kind is None:
                if c.titled or (c.speaker_ctx and _looks_like_name(c.words) and len(c.words) == 1 and not c.sent_initial
                                and not c.words[0].endswith("s")) or (c.speaker_ctx and _looks_like_name(c.words) and len(c.words) == 1
                      and c.words[0].lower() not in FUNCTION_WORDS and not c.words[0].endswith("s")):
                    kind = PERSON
                else:
                    continue
            if kind == PERSON and len(c.words) == 1 and c.words[0].lower() in FUNCTION_WORDS:
                continue
            ent = add(name, kind, (c.start, c.end), c.country)
            if kind == PERSON:
                ent.gender = None
                surname_of.setdefault(c.words[-1].lower(), ent)
            if kind == ORG and len(c.words) >= 2:
                last_word_of.setdefault(c.words[-1].lower(), ent)
        else:
            ent.spans.append((c.start, c.end))
            if _key(name) != _key(ent.name):
                ent.aliases.add(name)
            by_surface.setdefault(key, ent)
        if c.title and ent.kind == PERSON and not ent.role:
            ent.role = c.title
        mentions.append(Mention(c.start, c.end, ent, c.possessive, c.sent_initial))

    mentions.sort(key=lambda m: m.start)
    _roles(text, mentions)
    return EntityIndex(entities, mentions, by_surface)


def _roles(text: str, mentions: list[Mention]) -> None:
    """A person's role: an appositive after a mention (', a former U.S. Brigadier General') or a role
    noun phrase before it ('Kansas City Chiefs coach')."""
    for m in mentions:
        e = m.entity
        if e.kind != PERSON or (e.role and " " in e.role):
            continue
        if m.possessive:
            continue
        after = text[m.end: m.end + 120]
        r = _ROLE_AFTER.match(after)
        if r and not r.group(1)[:1].isupper() or (r and r.group(1).lower().startswith("former")):
            role = r.group(1).strip() if r else ""
            if role and not re.match(r"^(?:who|said|says|and|but|he|she|they|it)\b", role) and len(role.split()) <= 12:
                e.role = role
                continue
        before = text[max(0, m.start - 80): m.start]
        b = _ROLE_NOUN_BEFORE.search(before)
        if b:
            role = b.group(1).strip()
            if role and role.split()[0].lower() not in ("the", "and", "of"):
                e.role = role


def entity_rows(index: EntityIndex) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for e in index.entities:
        if not e.spans:
            continue
        s, t = e.first
        rows.append({
            "name": e.name,
            "kind": e.kind,
            "aliases": sorted(a for a in e.aliases if _key(a) != _key(e.name)),
            "mentions": len(e.spans),
            "start_char": s,
            "end_char": t,
            "country_code": e.country_code if e.kind == PLACE else None,
        })
    rows.sort(key=lambda r: r["start_char"])
    return rows


def _fold_org(words: list[str], entities: list[Entity]) -> Entity | None:
    """The organisation a shorter form stands for: an acronym of its initials ("VPA" for "Vermont
    Principals Association"), its last words ("Advisory Board" for "CNBC Changemakers Advisory Board")
    or the part after its "of" ("Homeland Security" for "Department of Homeland Security")."""
    if len(words) == 1 and words[0].isupper() and 2 <= len(words[0]) <= 6:
        acr = words[0]
        hits = []
        for e in entities:
            ew = e.name.split()
            if e.kind != ORG or len(ew) < 2:
                continue
            letters = "".join(w[0] for w in ew if w.lower() not in ("of", "for", "the", "and", "&", "on", "de", "in"))
            if acr == letters.upper() or acr == "".join(w[0] for w in ew).upper():
                hits.append(e)
        return hits[0] if len(hits) == 1 else None
    if len(words) < 2:
        return None
    low = [w.lower() for w in words]
    n = len(low)
    tail = " " + " ".join(low)
    hits = []
    for e in entities:
        if e.kind != ORG or not e.name.lower().endswith(tail):
            continue
        ew = [w.lower() for w in e.name.split()]
        if len(ew) <= n:
            continue
        if ew[-n:] != low:
            continue
        # "Advisory Board" in "CNBC Changemakers Advisory Board"; "Homeland Security" in "Department of
        # Homeland Security" (but "Judicial Conference" in "... Committee of the Judicial Conference" is another body)
        of_tail = ew[-n - 1] == "of" or (ew[-n - 1] == "the" and n + 2 <= len(ew) and ew[-n - 2] == "of")
        if (of_tail and low[-1] not in ORG_LAST) or (not of_tail and low[-1] in ORG_LAST and not {"of", "the"} & set(ew)):
            hits.append(e)
    return hits[0] if len(hits) == 1 else None


# What a body's name follows or precedes (word lists, looked up on the last words before the run):
# "worked at Goldman Sachs", "an attorney with Alliance Defending Freedom", "a Ku Klux Klan member",
# "told the Observer", "electronic music duo Jungle", "reviews on Amazon", "Coalition forces".
_WORK_VERBS = wordset("work works worked working employed career stint job internship")
_AFFIL_NOUNS = wordset("""attorney attorneys lawyer lawyers analyst analysts economist economists strategist strategists
    researcher researchers executive executives partner partners director directors spokesman spokeswoman
    spokesperson counsel consultant consultants engineer engineers founder founders co-founder co-founders ceo
    chairman chairwoman official officials employee employees staff staffer staffers fellow fellows scholar
    scholars reporter reporters editor editors correspondent correspondents producer producers coach player
    players volunteer volunteers""")
_JOIN_VERBS = wordset("join joins joined joining")
_BY_VERBS = wordset("employed acquired funded owned bought")
_TELL_VERBS = wordset("told tells telling tell")
_TO_VERBS = wordset("spoke speaking talking statement according")
_IN_VERBS = wordset("wrote writing op-ed column")
_KIND_NOUNS = wordset("""duo trio quartet band group outfit label firm company carrier retailer airline broadcaster
    newspaper network club charity nonprofit non-profit startup start-up insurer lender brand chain maker
    manufacturer publisher studio agency militia organization organisation conglomerate automaker carmaker""")
_WORK_NOUNS = wordset("""book memoir novel film movie album song single show series play musical opera documentary
    podcast article essay report poem titled entitled called named dubbed""")
_PLATFORM_VERBS = wordset("""posted post posts wrote written shared published available streaming streamed review
    reviews comment comments sold selling listed launched uploaded appeared video videos account page channel
    platform tweeted announced live""")
_AFFIL_AFTER = wordset("member members membership spokesman spokeswoman spokesperson headquarters shareholders "
                       "subsidiary affiliate affiliates chapter")
_FORCES = frozenset({"force", "forces"})
_HOLIDAYS = wordset("Christmas Easter Thanksgiving Halloween Ramadan Hanukkah Passover Diwali Eid Lent Advent Sunday")


def _media_before(bw: list[str]) -> bool:
    """`bw` (the words before "the X") say X is a publication spoken to or quoted: "told the", "according to the"."""
    last = bw[-1] if bw else ""
    prev = bw[-2] if len(bw) > 1 else ""
    return (last in _TELL_VERBS or (last == "to" and prev in _TO_VERBS) or (last == "with" and prev == "interview")
            or (last == "by" and prev in ("reported", "published")) or (last == "in" and prev in _IN_VERBS))


def _org_by_context(c: _Cand, text: str, given: dict[str, str], lower_vocab: set[str], person_words: set[str],
                    single_counts: dict[str, int]) -> bool:
    """An undecided capitalised run that its context marks as an organisation; "X forces" also takes
    the head noun into the name ("Coalition forces")."""
    words = c.words
    first = words[0].lower()
    if words[0] != "The":  # cheap refusals first: most runs are sentence openers, surnames, demonyms
        if first == "the" or (len(words) == 1 and (words[0] in person_words or words[0][:-1] in person_words)):
            return False  # a surname, or a family ("the Horners")
        if not _looks_like_name(words) and not (len(words) == 1 and words[0].isupper()):
            return False
        if len(words) == 1 and (first in lower_vocab or words[0].rstrip("s") in STOP_ACRONYMS or first in TITLE_WORDS
                                or words[0].endswith(_DEMONYM_ENDS) or first.endswith(("ern", "an"))):
            return False
    bw = text[max(0, c.start - 40): c.start].lower().split()[-4:]
    if text[c.start - 1: c.start] != " ":
        bw = []  # "(Jungle", "“Amazon": the words before do not lead into the run
    the = bool(bw) and bw[-1] == "the"
    if the:
        bw = bw[:-1]
    last = bw[-1] if bw else ""
    prev = bw[-2] if len(bw) > 1 else ""
    if last in _WORK_NOUNS:
        return False  # "the memoir The Examined Life"
    if words[0] == "The" and len(words) >= 2 and not c.sent_initial and _looks_like_name(words[1:]):
        # "at The Independent's live blog", "The Washington Examiner reported": a title-case "The" mid-sentence
        return c.possessive or c.speaker_ctx or _media_before(bw)
    if first == "the":
        return False
    if last[:1].isdigit():
        return False  # "12 Gazan employees"
    aw = text[c.end + (2 if c.possessive else 0): c.end + 30].split(None, 1)
    joined = c.possessive or text[c.end: c.end + 1].isspace()  # not "Coalition, forces" nor "Coalition-forces"
    nxt = aw[0].lower().rstrip(".,;:") if aw and joined else ""
    if not c.possessive and nxt in _AFFIL_AFTER and not (first in given and len(words) <= 2):
        return True  # "a Ku Klux Klan member"
    if first in given:
        return False
    if the and _media_before(bw):
        return True
    if (last in ("at", "for") and prev in _WORK_VERBS) or (last in ("at", "with", "for") and prev in _AFFIL_NOUNS) \
            or last in _JOIN_VERBS or (last == "by" and prev in _BY_VERBS):
        return True
    if not the and last in _KIND_NOUNS:
        return True
    if (len(words) == 1 and not the and last in ("on", "via") and prev in _PLATFORM_VERBS
            and words[0] not in _HOLIDAYS and single_counts.get(words[0], 0) >= 2):
        return True
    if nxt in _FORCES and not c.possessive and not any("-" in w and w.rsplit("-", 1)[1].islower() for w in words):
        c.words = [*words, nxt]
        c.end = text.index(aw[0], c.end) + len(nxt)
        return True
    return False
