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
from collections.abc import Container, Sequence
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
_PARTY_FIRST = frozenset("DRCLTGS")  # the first letters of PARTY_FORMS' words: a cheap test before the match

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
_COMPASS_FIRST = frozenset("NSEWCMF")  # the first letters of _COMPASS_REGION's words: a cheap test before the match
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
_SPEECH_LAST2 = frozenset(v[-2:] for v in _SPEECH_LAST)  # their last two letters (every one has two or more)
# the first three letters of what _SPEECH_AFTER matches once the spaces and the comma before it are
# skipped (every word it can open with has three or more)
_SPEECH_AFTER_HEADS = frozenset(v[:3] for v in ["also", "later", "then", "has", "had", "once", *SPEECH_VERBS.split("|")])
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
_ROLE_NOUNS = (
    "coach|manager|director|spokesman|spokeswoman|spokesperson|attorney|lawyer|actor|actress|official|"
    "minister|secretary|president|chairman|chairwoman|founder|leader|analyst|researcher|professor|economist|"
    "senator|congressman|congresswoman|governor|mayor|chief|executive|editor|reporter|adviser|advisor|"
    "strategist|member|resident|owner|author|writer|singer|rapper|star|player|captain|commander|officer|"
    "ambassador|envoy|candidate|lady|businessman|businesswoman|activist|leader|spokesperson|head|"
    "general|lawmaker|judge|justice|principal|teacher|student|doctor|nurse|scientist|historian|expert"
)
_ROLE_NOUN_BEFORE = re.compile(
    r"(?<![\w.])((?:(?:[A-Z][\w.’'&-]*|of|the|and|former|then-|longtime|local|acting|interim|deputy|senior|chief|general|executive|lead|head)\s+){0,6}"
    r"(?:" + _ROLE_NOUNS + r")s?)\s+$"
)
# what the text before a match of _ROLE_NOUN_BEFORE ends with, once its trailing spaces are stripped
_ROLE_NOUN_ENDS = tuple(n + s for n in sorted(set(_ROLE_NOUNS.split("|"))) for s in ("", "s"))


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
    # a speech verb / an appositive next to the run; None until read from the text (_heard, _apposed)
    speaker_ctx: bool | None = False
    appositive: bool | None = False
    country: str | None = None
    listed: bool = False  # an item of a list article
    ctx: tuple[int, int] = (0, 0)  # the run's end and its paragraph's end when _context read it


def _classify_words(words: list[str]) -> tuple[str | None, str | None]:
    """(kind, country_code) from the words alone, or (None, None) when undecided."""
    return _classify_tuple(tuple(words))


@lru_cache(maxsize=1 << 16)
def _classify_tuple(words: tuple[str, ...]) -> tuple[str | None, str | None]:
    return _classify(words, [w.lower().rstrip(".") for w in words])


def _classify(words: Sequence[str], low: Sequence[str]) -> tuple[str | None, str | None]:
    """_classify_tuple(words), given each word lower-cased without a trailing dot (`low`)."""
    text = " ".join(words)
    gaz = gazetteer.places()
    hit = gaz.get(text) or (gaz.get(" ".join(_titlecase(w) for w in words)) if text.isupper() and len(text) >= 5 else None)
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
    if text[:1] in _COMPASS_FIRST and _COMPASS_REGION.match(text):
        return PLACE, None
    if len(words) == 1 and words[0][:1] in _PARTY_FIRST and PARTY_FORMS.match(words[0]) and (words[0].endswith(("s", "ic")) or words[0] in ("Labour", "Tories")):
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
    low = [w.lower() for w in words]
    return _title_span_low(low, [w.rstrip(".") for w in low])


def _title_span_low(low: Sequence[str], lows: Sequence[str]) -> tuple[int, int] | None:
    """_title_span of the words lower-cased (`low`), and also without a trailing dot (`lows`)."""
    if TITLE_WORDS.isdisjoint(lows):
        return None
    n = len(low)
    for i, lw in enumerate(lows):
        if lw not in TITLE_WORDS:
            continue
        j = i
        while j < n and (lows[j] in TITLE_WORDS or (low[j] == "of" and j + 1 < n)
                         or (j > i and low[j] in _TITLE_CONT)):
            if low[j] == "of":
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
# the words trimmed from the front of a run (see _seq_plan)
_LEADING = FUNCTION_WORDS | _LEAD_STRIP | WEEKDAYS | frozenset(MONTHS)
_DATE_WORDS = WEEKDAYS | frozenset(MONTHS)  # the words that split a run (see _seq_plan)
_SPLITTERS = ("of", "for", "and", "&", "on", "the")
_SPLITTER_SET = frozenset(_SPLITTERS)


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
        c = _Cand(words[a:b], start, end, kind, si, possessive, titled, title, False, False, country)
        if how == _CONTEXT:
            _context(c, text, para_end)
        out.append(c)
    return out


@lru_cache(maxsize=1 << 14)
def _seq_plan(words: tuple[str, ...], sent_initial: bool) -> tuple[_Step, ...]:
    """The candidates of a run of capitalised words as steps over its word indices: function words,
    weekdays and months trimmed or split off, then each part read by _part_plan."""
    if len(words) == 1:
        # most runs are one word: what the steps below come to for it (a function word, weekday or
        # month is trimmed away; a word that _classify_tuple leaves undecided is read in context)
        lw = words[0].lower()
        if lw in _TRAILING or lw.rstrip(".") in _LEADING:
            return ()
        kind, code = _classify_tuple(words)
        return ((0, 1, kind, sent_initial, True, False, None, code, _CONTEXT if kind is None else _PLAIN),)
    low = [w.lower() for w in words]  # each word lower-cased, and also without a trailing dot
    lows = [w.rstrip(".") for w in low]
    seq_text = " ".join(words)
    if (("of the " in seq_text or seq_text.startswith("Best ")) and _AWARD.search(seq_text)) or (
            len(words) >= 2 and low[-1] in EVENT_LAST):
        return ()  # "Artist of the Year", "Brit Awards", "Super Bowl": awards and events are not entities
    n = len(words)
    a = 0
    # leading function words, weekdays and months are not part of a name
    while a < n:
        lw = lows[a]
        if lw == "the" and not sent_initial and n - a > 1:
            break
        if lw in _LEADING or (sent_initial and lw.endswith(("ly", "ing")) and n - a > 1 and lw not in ("ealing",)):
            a += 1
            sent_initial = False
            continue
        break
    # "Members of the CNBC Advisory Board": the people of a body are not part of its name
    if n - a >= 3 and low[a] in _GROUP_NOUNS and low[a + 1] in ("of", "from"):
        a += 3 if low[a + 2] == "the" and n - a > 3 else 2
        sent_initial = False
    b = n
    while b > a and low[b - 1] in _TRAILING:
        b -= 1
    if b == a:
        return ()
    # weekdays / months inside split the run
    if _DATE_WORDS.isdisjoint(lows[a:b]):
        return tuple(_mask(_part_plan(words[a:b], a, low[a:b], lows[a:b]), sent_initial, True))
    parts: list[tuple[int, int, bool]] = []
    cur: int | None = None
    first = sent_initial
    for k in range(a, b):
        w = words[k]
        lw = lows[k]
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
        steps.extend(_mask(_part_plan(words[pa:pb], pa, low[pa:pb], lows[pa:pb]), pfirst, pb == b))
    return tuple(steps)


def _mask(steps: list[_Step], si: bool, poss: bool) -> list[_Step]:
    """`steps` of a part that is sentence-initial only if `si` and takes the possessive only if `poss`."""
    if si and poss:
        return steps
    return [(a, b, kind, s and si, p and poss, titled, title, country, how)
            for a, b, kind, s, p, titled, title, country, how in steps]


def _part_plan(words: tuple[str, ...], off: int, low: list[str], lows: list[str]) -> list[_Step]:
    """The steps of one part of a run (words[0] is the run's word `off`), as if it were sentence-initial
    and possessive: what the words alone say, with the parts split by connectors, titles, given names
    and places read recursively. `low` holds the words lower-cased, `lows` also without a trailing dot."""
    n = len(words)
    while n and low[n - 1] in _TRAILING:
        n -= 1
    if n < len(words):
        words, low, lows = words[:n], low[:n], lows[:n]
    if not words:
        return []
    end = off + n
    kind, code = _classify(words, lows)
    if kind == ORG and "and" in low[1:-1]:
        k = low.index("and")
        left, right = words[:k], words[k + 1:]
        joint = f"{words[k - 1]} and {words[k + 1]}"
        if (_classify_tuple(left)[0] == ORG and _classify_tuple(right)[0] == ORG and len(right) >= 2
                and joint not in gazetteer.places()):
            return [*_mask(_part_plan(left, off, low[:k], lows[:k]), True, False),
                    *_mask(_part_plan(right, off + k + 1, low[k + 1:], lows[k + 1:]), False, True)]
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
    span = _title_span_low(low, lows)
    if span is not None:
        i, j = span  # words[:i] before the title, words[i:j] the title, words[j:] after it
        out: list[_Step] = []
        if i:
            out.extend(_mask(_part_plan(words[:i], off, low[:i], lows[:i]), True, False))
        after_end = n
        poss = True
        cut = next((k for k in range(j, n) if low[k] in _SPLITTERS), n)
        if cut < n:
            if cut + 1 < n:
                out.extend(_mask(_part_plan(words[cut + 1:], off + cut + 1, low[cut + 1:], lows[cut + 1:]), False, True))
            after_end = cut
            poss = False
        if after_end > j:
            out.append((off + j, off + after_end, PERSON, False, poss, True, " ".join(words[i:j]), None, _CONTEXT))
        return out
    # connectors inside an undecided run: split and classify the parts
    if not _SPLITTER_SET.isdisjoint(low[1:-1]):
        out = []
        cs: int | None = None
        for k in range(n):
            if low[k] in _SPLITTERS:
                if cs is not None:
                    out.extend(_mask(_part_plan(words[cs:k], off + cs, low[cs:k], lows[cs:k]), not out, False))
                cs = None
                continue
            if cs is None:
                cs = k
        if cs is not None:
            out.extend(_mask(_part_plan(words[cs:], off + cs, low[cs:], lows[cs:]), False, True))
        return out
    given = gazetteer.given_names()
    if n >= 3 and low[0] not in given:
        for k in range(1, n - 1):
            if low[k] in given and 2 <= n - k <= 3 and _looks_like_name(words[k:]):
                return [*_mask(_part_plan(words[:k], off, low[:k], lows[:k]), True, False),
                        (off + k, end, None, False, True, False, None, None, _CONTEXT)]
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
                    *_mask(_part_plan(words[k:], off + k, low[k:], lows[k:]), False, True)]
    a = 0
    while n - a >= 2 and words[a].endswith(_DEMONYM_ENDS) and low[a] not in given:
        a += 1
    return [(off + a, end, None, a == 0, True, False, None, None, _CONTEXT)]


def _context(c: _Cand, text: str, para_end: int) -> None:
    """What the text around a run says: whether a title comes before it (c.titled), now; whether a
    speech verb or an appositive comes next to it (c.speaker_ctx, c.appositive), when first asked for
    (_heard, _apposed), as most runs are never asked about."""
    c.speaker_ctx = c.appositive = None
    c.ctx = (c.end, para_end)
    if c.kind not in (None, PERSON):
        return
    start = c.start
    before = text[start - 40 if start > 40 else 0: start]
    tail = before.rstrip()
    if len(tail) < len(before):
        # _prev_word, for the common case inline: the last chunk of ASCII letters (maybe with a dot)
        word = tail[tail.rfind(" ") + 1:]
        if word.endswith("."):
            word = word[:-1]
        if word.isalpha() and word.isascii():
            if word.lower() in TITLE_WORDS:
                c.titled = True
        elif (pw := _prev_word(before, tail)) is not None and pw.lower() in TITLE_WORDS:
            c.titled = True


def _after(c: _Cand, text: str) -> str:
    """The text after a run (past its possessive ending) that _context reads, to the paragraph's end."""
    end, para_end = c.ctx
    stop = end + 60
    if stop > para_end:
        stop = para_end
    return text[end + 2 if c.possessive else end: stop]


def _heard(c: _Cand, text: str) -> bool:
    """A speech verb comes next to the run ("X said", "said X", "quoting X"): c.speaker_ctx, read from
    the text on first use."""
    heard = c.speaker_ctx
    if heard is None:
        after = _after(c, text)
        start = c.start
        before = text[start - 40 if start > 40 else 0: start]
        # _SPEECH_AFTER opens with spaces and maybe a comma: the word after those tells whether it
        # can match at all, which spares the slow match for most runs
        head = after.lstrip()
        if head[:1] == ",":
            head = head[1:].lstrip()
        heard = (head[:3] in _SPEECH_AFTER_HEADS and _SPEECH_AFTER.match(after) is not None) or (
            not c.possessive and _speech_before(before, before.rstrip())) or before.endswith(("quoting ", "quoted "))
        c.speaker_ctx = heard
    return heard


def _apposed(c: _Cand, text: str) -> bool:
    """An appositive follows the run (", a former ...", ", who"): c.appositive, read from the text on
    first use."""
    apposed = c.appositive
    if apposed is None:
        after = _after(c, text)
        lead = after.lstrip()  # _APPOSITIVE opens with spaces, a comma and a space
        apposed = lead[:1] == "," and lead[1:2].isspace() and _APPOSITIVE.match(after) is not None
        c.appositive = apposed
    return apposed


def _speech_before(before: str, tail: str) -> bool:
    """`before` (`tail` without its trailing spaces) ends with a speech verb (and maybe a comma):
    _SPEECH_BEFORE, searched only when the stripped text ends with a speech verb's last word."""
    if tail.endswith(","):
        tail = tail[:-1].rstrip()
    return tail[-2:] in _SPEECH_LAST2 and tail.endswith(_SPEECH_LAST) and _SPEECH_BEFORE.search(before) is not None


def _prev_word(before: str, tail: str) -> str | None:
    """The word before the trailing space of `before` (`tail` without it): _PREV_WORD, searched from
    the last chunk only (a match never spans a space). A last chunk of ASCII letters, maybe with a dot
    after them, is the word itself."""
    if not tail or len(tail) == len(before):
        return None
    word = tail[tail.rfind(" ") + 1:]  # no space in it: if it is all letters, it is the last chunk
    if word.endswith("."):
        word = word[:-1]
    if word.isalpha() and word.isascii():
        return word
    if not ("a" <= word[-1:] <= "z" or "A" <= word[-1:] <= "Z"):
        return None  # _PREV_WORD needs a letter (and maybe a dot) before the trailing space
    pw = _PREV_WORD.search(before, len(tail) - len(tail.rsplit(None, 1)[-1]))
    return pw.group(1) if pw else None


def _the_before(text: str, start: int) -> bool:
    """The run follows "the": a team or a body ("the Denver Bears"), never a person ("Layton Williams")."""
    return text[max(0, start - 4): start].lower() == "the "


def _looks_like_name(words: Sequence[str]) -> bool:
    return all(map(_name_word, words))


@lru_cache(maxsize=1 << 16)
def _name_word(w: str) -> bool:
    """A word written like a name: capitalised but not in capitals (or an initial), no digits."""
    return (w[:1].isupper() and not w.isupper() or (len(w) <= 2 and w.endswith("."))) and not any(map(str.isdigit, w))


# a lower-case word: the first letter is matched before the look-behind at it (the same test as a
# look-behind before it) so that the scan can skip straight to the letters
_LOWER_WORD = re.compile(r"[a-z](?<![\w’'.-].)[a-z]+(?![\w’'-])")


class _LowerWords:
    """The lower-case words written in a text, set(_LOWER_WORD.findall(text)), as a container that
    looks each word up when asked: an article asks about a few words only, and finding one word is
    much cheaper than collecting all of them."""

    __slots__ = ("text", "known")

    def __init__(self, text: str) -> None:
        self.text = text
        self.known: dict[str, bool] = {}

    def __contains__(self, word: object) -> bool:
        if not isinstance(word, str):
            return False
        found = self.known.get(word)
        if found is None:
            found = self.known[word] = _lower_word_in(self.text, word)
        return found


def _lower_word_in(text: str, word: str) -> bool:
    """`word` in set(_LOWER_WORD.findall(text)): `word` is two or more letters a-z and is written in
    `text` after neither a word character (\\w: a letter, a digit or "_") nor ’ ' . -, and before
    neither a word character nor ’ ' - (_LOWER_WORD matches such a place, and only there)."""
    if len(word) < 2 or not (word.isascii() and word.isalpha() and word.islower()):
        return False
    return _written_alone(text, word, "_’'.-", "_’'-")


def _written_alone(text: str, word: str, not_before: str, not_after: str) -> bool:
    """`word` occurs in `text` with no letter or digit on either side, nor one of `not_before` just
    before it, nor one of `not_after` just after it."""
    n = len(word)
    i = text.find(word)
    while i >= 0:
        before = text[i - 1] if i else " "
        after = text[i + n: i + n + 1] or " "
        if not (before.isalnum() or before in not_before or after.isalnum() or after in not_after):
            return True
        i = text.find(word, i + 1)
    return False


_LIST_LINE = re.compile(r"[A-Z0-9][\w’'.&!/-]*(?:[ ,/&]+(?:and\s+)?[A-Z0-9][\w’'.&!/-]*){0,8}\s*(?:,\s*)?(?:“[^”]{1,60}”|\"[^\"]{1,60}\")?\s*(?:[–—-]\s*[A-Z]+)?")
_CREDIT = re.compile(r"(?i)appeared originally|originally appeared|originally published|can be reached|contributed to this report|reporting by|copyright|all rights reserved|©|\bhttps?://")
# a part of each of _CREDIT's phrases (one each at least) that only its own letters in either case
# match, even under re.IGNORECASE (no i, k nor s), so that a paragraph whose lower-cased text holds
# none of them is not searched: the case-insensitive search tries every phrase at every character
_CREDIT_PARTS = ("appeared", "publ", "reached", "report", "copyr", "rved", "©", "://")
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


def _in_vocab(w: str, vocab: Container[str]) -> bool:
    """`w` or its plural/singular is written in lower case somewhere in the text."""
    return w in vocab or w + "s" in vocab or (w.endswith("s") and w[:-1] in vocab)


_URL = re.compile(r"(?:https?://|www\.)\S*")
_TITLE_WORD = re.compile(r"\b[A-Z][a-z]+\b")
_TITLE_WORD_FULL = re.compile(r"[A-Z][a-z]+")


def _title_word_in(text: str, word: str) -> bool:
    """`word` in set(_TITLE_WORD.findall(text)): `word` is a title-case word ([A-Z][a-z]+) and is written
    in `text` with no word character (\\w: a letter, a digit or "_") on either side."""
    if not _TITLE_WORD_FULL.fullmatch(word):
        return False
    return _written_alone(text, word, "_", "_")


_ACRONYM_DEF = re.compile(r"\(\s*([A-Z][A-Za-z&]{1,9})\s*\)")
_ACRONYM_AFTER = re.compile(r"[”\"]?\s*\(\s*([A-Z][A-Za-z&]{1,9})\s*\)")
_QUOTED_ACRONYM = re.compile(r"[”\"]\s*\(\s*([A-Z][A-Za-z&]{1,9})\s*\)")


_ACRONYM_OPENERS = frozenset({"(", "”", "\"", ""})  # the characters _may_open_acronym takes at once


def _may_open_acronym(text: str, end: int) -> bool:
    """Whether _ACRONYM_DEF or _ACRONYM_AFTER can match at `end`: they open with a quote, spaces or "(",
    and after a space only more space or "(" can follow."""
    c = text[end: end + 1]
    if c.isspace():
        c = text[end + 1: end + 2]
        return c == "(" or c.isspace() or not c
    return c in ("(", "”", "\"", "")


def _may_be_credit(low: str) -> bool:
    """Whether _CREDIT can match in a paragraph whose lower-cased text is `low`."""
    return any(part in low for part in _CREDIT_PARTS)


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
    lower_vocab = _LowerWords(_URL.sub(" ", text) if "://" in text or "www." in text else text)
    list_lines = [(ps, pe) for ps, pe in paras if pe - ps < 160 and (lm := _LIST_LINE.match(text, ps, pe)) and lm.end() == pe]
    is_list = len(list_lines) >= 3
    list_set = set(list_lines) if is_list else set()
    heading: str | None = None  # the current section heading of a list article ("Group of the Year")
    for ps, pe in paras:
        if (is_list and pe - ps <= 60 and (hm := _LIST_HEADING.match(text, ps, pe)) and hm.end() == pe
                and all(w[:1].isupper() or w[:1].isdigit() or w in ("of", "the", "and", "for", "&", "/") for w in text[ps:pe].split())):
            heading = text[ps:pe]  # a category or award heading in a list article names no entity
            continue
        list_item = (ps, pe) in list_set
        if not list_item and pe - ps > 80:
            heading = None
        if is_upper_line(text, ps, pe) or (pe - ps < 250 and _may_be_credit(text[ps:pe].lower())
                                           and _CREDIT.search(text, ps, pe)):
            continue
        group_section = bool(heading and _GROUP_HEADING.search(heading))
        work_section = bool(heading and _WORK_HEADING.search(heading))
        dl = _DATELINE_CREDIT.match(text, ps, pe)
        titles = [(m.start(), m.end()) for m in _QUOTED.finditer(text, ps, pe) if _title_like(m.group(1))] if (
            text.find("“", ps, pe) >= 0 or text.find('"', ps, pe) >= 0) else []
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
            if list_item and text[seq.start - 1: seq.start] not in "“\"" and seq.start < (text.find("“", ps, pe) if "“" in text[ps:pe] else pe):
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
            nc = text[seq.end: seq.end + 1]
            if nc in _ACRONYM_OPENERS or (nc.isspace() and _may_open_acronym(text, seq.end)):
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
    gaz = gazetteer.places()
    state_codes = gazetteer.us_state_codes()
    for c in cands:
        if c.kind is not None:
            continue
        n = len(c.words)
        first = c.words[0].lower().rstrip(".") if 2 <= n <= 4 else ""  # read by the first two cases only
        if 2 <= n <= 4 and _looks_like_name(c.words) and not any(
            gaz.get(w, ("", 0))[1] >= 2 for w in c.words
        ):
            if first == "the":
                continue
            if first in given and not (c.sent_initial and first in FUNCTION_WORDS) or (_heard(c, text) or _apposed(c, text)) and not any(w.lower() in lower_vocab for w in c.words):
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
              and not (_titlecase(c.words[0]) != c.words[0] and _title_word_in(text, _titlecase(c.words[0])))):
            c.kind = ORG  # an acronym (not a word in capitals, nor a name also written "Raye")

    # --- build entities ---------------------------------------------------------------------------
    entities: list[Entity] = []
    orgs: list[_OrgName] = []  # the organisations among them
    by_surface: dict[str, Entity] = {}

    def add(name: str, kind: str, span: tuple[int, int], code: str | None = None) -> Entity:
        key = _key(name)
        ent = by_surface.get(key)
        if ent is None:
            ent = Entity(name, kind, country_code=code)
            entities.append(ent)
            if kind == ORG:
                orgs.append(_OrgName(ent))
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
            if ent.kind == ORG:
                orgs.append(_OrgName(ent))
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
            elif c.words[0][:1] in _PARTY_FIRST and PARTY_FORMS.match(c.words[0]):
                stem = PARTY_FORMS.match(c.words[0]).group(1)  # type: ignore[union-attr]
                for o in orgs:
                    if o.words[0].startswith(stem[:-1] if stem.endswith("s") else stem):
                        ent = o.entity
                        break
        if ent is None and c.kind is None and len(c.words) >= 2:
            flat = " ".join(" ".join(c.words).replace("-", " ").lower().split())
            for o in orgs:
                if o.flat.startswith(flat + " "):
                    ent = o.entity
                    break
        if ent is None and c.kind in (None, ORG) and (len(c.words) > 1 or c.words[0].isupper()):
            ent = _fold_org(c.words, orgs)  # (a single word folds only as an acronym)
        if ent is None:
            kind = c.kind
            if kind is None:
                if c.titled or (len(c.words) == 1 and not c.words[0].endswith("s") and _looks_like_name(c.words)
                                and (not c.sent_initial or c.words[0].lower() not in FUNCTION_WORDS) and _heard(c, text)):
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
        lead = after.lstrip()  # _ROLE_AFTER opens with spaces, a comma and a space
        r = _ROLE_AFTER.match(after) if lead[:1] == "," and lead[1:2].isspace() else None
        if r and not r.group(1)[:1].isupper() or (r and r.group(1).lower().startswith("former")):
            role = r.group(1).strip() if r else ""
            if role and not re.match(r"^(?:who|said|says|and|but|he|she|they|it)\b", role) and len(role.split()) <= 12:
                e.role = role
                continue
        before = text[max(0, m.start - 80): m.start]
        tail = before.rstrip()
        b = _ROLE_NOUN_BEFORE.search(before) if len(tail) < len(before) and tail.endswith(_ROLE_NOUN_ENDS) else None
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


class _OrgName:
    """An organisation entity with the forms of its name that the folding below compares, made once
    (the entities are compared with every later run)."""

    __slots__ = ("entity", "words", "low", "flat", "initials")

    def __init__(self, entity: Entity) -> None:
        self.entity = entity
        self.words = entity.name.split()
        self.low = entity.name.lower()
        self.flat = entity.name.replace("-", " ").lower()
        ew = self.words
        # its initials without and with the connectors, or none for a one-word name
        self.initials = ("".join(w[0] for w in ew if w.lower() not in ("of", "for", "the", "and", "&", "on", "de", "in")).upper(),
                         "".join(w[0] for w in ew).upper()) if len(ew) >= 2 else None


def _fold_org(words: list[str], orgs: list[_OrgName]) -> Entity | None:
    """The organisation a shorter form stands for: an acronym of its initials ("VPA" for "Vermont
    Principals Association"), its last words ("Advisory Board" for "CNBC Changemakers Advisory Board")
    or the part after its "of" ("Homeland Security" for "Department of Homeland Security"). `orgs`:
    the organisations so far, in the order of the entities."""
    if len(words) == 1 and words[0].isupper() and 2 <= len(words[0]) <= 6:
        acr = words[0]
        hits = [o.entity for o in orgs if o.initials is not None and acr in o.initials]
        return hits[0] if len(hits) == 1 else None
    if len(words) < 2:
        return None
    low = [w.lower() for w in words]
    n = len(low)
    tail = " " + " ".join(low)
    hits = []
    for o in orgs:
        if not o.low.endswith(tail):
            continue
        e = o.entity
        ew = [w.lower() for w in o.words]
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
# the words after and before a run that _org_by_context reads as cues
_AFTER_CUES = _AFFIL_AFTER | _FORCES
_BEFORE_CUES = frozenset({"the", "at", "for", "with", "by", "on", "via"}) | _JOIN_VERBS | _KIND_NOUNS
_HOLIDAYS = wordset("Christmas Easter Thanksgiving Halloween Ramadan Hanukkah Passover Diwali Eid Lent Advent Sunday")


def _media_before(bw: list[str]) -> bool:
    """`bw` (the words before "the X") say X is a publication spoken to or quoted: "told the", "according to the"."""
    last = bw[-1] if bw else ""
    prev = bw[-2] if len(bw) > 1 else ""
    return (last in _TELL_VERBS or (last == "to" and prev in _TO_VERBS) or (last == "with" and prev == "interview")
            or (last == "by" and prev in ("reported", "published")) or (last == "in" and prev in _IN_VERBS))


def _org_by_context(c: _Cand, text: str, given: dict[str, str], lower_vocab: Container[str], person_words: set[str],
                    single_counts: dict[str, int]) -> bool:
    """An undecided capitalised run that its context marks as an organisation; "X forces" also takes
    the head noun into the name ("Coalition forces")."""
    words = c.words
    # a cue word after the run ("member", "forces") or before it ("worked at", "the duo", "told the")
    # is what makes it an organisation below (or "The" opening it): most runs have none
    joined = c.possessive or text[c.end: c.end + 1].isspace()  # not "Coalition, forces" nor "Coalition-forces"
    aw = text[c.end + (2 if c.possessive else 0): c.end + 30].split(None, 1) if joined else []
    nxt = aw[0].lower().rstrip(".,;:") if aw else ""
    # "(Jungle", "“Amazon": the words before do not lead into the run
    window = text[max(0, c.start - 40): c.start].lower() if text[c.start - 1: c.start] == " " else ""
    if words[0] != "The" and nxt not in _AFTER_CUES:
        last_word = window.rsplit(None, 1)
        if not last_word or last_word[-1] not in _BEFORE_CUES:
            return False
    first = words[0].lower()
    if words[0] != "The":  # cheap refusals first: most runs are sentence openers, surnames, demonyms
        if first == "the" or (len(words) == 1 and (words[0] in person_words or words[0][:-1] in person_words)):
            return False  # a surname, or a family ("the Horners")
        if not _looks_like_name(words) and not (len(words) == 1 and words[0].isupper()):
            return False
        if len(words) == 1 and (first in lower_vocab or words[0].rstrip("s") in STOP_ACRONYMS or first in TITLE_WORDS
                                or words[0].endswith(_DEMONYM_ENDS) or first.endswith(("ern", "an"))):
            return False
    bw = window.split()[-4:]
    the = bool(bw) and bw[-1] == "the"
    if the:
        bw = bw[:-1]
    last = bw[-1] if bw else ""
    prev = bw[-2] if len(bw) > 1 else ""
    if last in _WORK_NOUNS:
        return False  # "the memoir The Examined Life"
    if words[0] == "The" and len(words) >= 2 and not c.sent_initial and _looks_like_name(words[1:]):
        # "at The Independent's live blog", "The Washington Examiner reported": a title-case "The" mid-sentence
        return c.possessive or _heard(c, text) or _media_before(bw)
    if first == "the":
        return False
    if last[:1].isdigit():
        return False  # "12 Gazan employees"
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
