"""Shared text helpers: paragraphs, sentences, tokens and capitalised-name sequences.

Everything here is pure and precompiled at import time. Offsets are always into the original text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# --- paragraphs ---------------------------------------------------------------------------------

_LINE = re.compile(r"[^\n]+")


def paragraphs(text: str) -> list[tuple[int, int]]:
    """(start, end) of every non-blank line, stripped; a line is a paragraph whether the text uses
    one or two newlines between paragraphs."""
    out: list[tuple[int, int]] = []
    for m in _LINE.finditer(text):
        s, e = m.start(), m.end()
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            out.append((s, e))
    return out


def wordset(words: str) -> frozenset[str]:
    """A frozenset of the whitespace-separated words in `words`."""
    return frozenset(words.split())


# --- closed-class vocabularies --------------------------------------------------------------------

ABBREVIATIONS = wordset(
    "mr mrs ms dr rep sen gov gen lt col sgt capt adm st rev prof jr sr mt ft no vs co inc corp ltd "
    "jan feb mar apr jun jul aug sep sept oct nov dec u.s dept est approx fig"
)

# sentence-initial words that are not names even though they are capitalised
FUNCTION_WORDS = wordset("""a an the and or but nor so yet for of in on at by to from with without about above below after
    before during since until while when whenever where wherever whereas if unless although though as
    because than that this these those there here it its it's he she they we i you his her their our
    your my me him them us who whom whose which what why how all any both each every either neither
    some many much more most few fewer less least no not none one another other such only just also
    even still already again then now later soon today yesterday tomorrow meanwhile however indeed
    moreover furthermore nevertheless nonetheless instead otherwise thus therefore hence accordingly
    fortunately unfortunately finally first second third last next among between into onto upon over
    under within across along around against toward towards through throughout despite like unlike
    according asked is are was were be been being has have had do does did will would shall should can
    could may might must yes oh ok well please dear mr mrs ms sir madam let lets let's following
    including given amid amidst via per re regarding concerning say says said asked told added""")

WEEKDAYS = wordset("monday tuesday wednesday thursday friday saturday sunday")
MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7, "august": 8,
    "september": 9, "october": 10, "november": 11, "december": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9,
    "oct": 10, "nov": 11, "dec": 12,
}
MONTH_RE = (
    r"(?:Jan(?:uary|\.)?|Feb(?:ruary|\.)?|Mar(?:ch|\.)?|Apr(?:il|\.)?|May|June?|July?|Aug(?:ust|\.)?|"
    r"Sept?(?:ember|\.)?|Oct(?:ober|\.)?|Nov(?:ember|\.)?|Dec(?:ember|\.)?)"
)

# --- tokens ---------------------------------------------------------------------------------------

# a dotted acronym (U.S., D.C.), a word (letters, digits, inner apostrophes/hyphens/ampersand-free),
# or one punctuation character. (The word is the longest run of word characters, apostrophes and
# hyphens that opens and ends with a word character: written as runs of word characters joined by
# runs of apostrophes and hyphens, which the regex engine matches without backtracking.)
TOKEN = re.compile(r"[A-Za-z]\.(?:[A-Za-z]\.)+|\w+(?:[’'\-]+\w+)*|[^\w\s]")

OPEN_MARKS = "“\"‘«"
QUOTE_CHARS = "“”\"«»"


class Tok:
    """A token: text and offsets (a light object; many are made per article)."""

    __slots__ = ("text", "start", "end")

    def __init__(self, m: re.Match[str]) -> None:
        self.text = m.group()
        self.start, self.end = m.span()


def tokens(text: str, start: int, end: int) -> list[Tok]:
    return list(map(Tok, TOKEN.finditer(text, start, end)))


_HAS_CAP = re.compile(r"[A-Z]")


# --- sentences ------------------------------------------------------------------------------------

_SENT_END = re.compile(r"[.!?…]+[”\"’')\]]*(?=\s+[“\"‘(\[]?[A-Z0-9])")


def sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentence spans inside [start, end); abbreviations and initials do not end a sentence."""
    out: list[tuple[int, int]] = []
    s = start
    for m in _SENT_END.finditer(text, start, end):
        if text[m.start()] == ".":
            # the word before the dot
            j = m.start()
            i = j
            while i > start and (text[i - 1].isalpha() or text[i - 1] == "."):
                i -= 1
            word = text[i:j].lower()
            if word in ABBREVIATIONS or len(word) == 1 or ("." in word and len(word) <= 5):
                continue
        e = m.end()
        out.append((s, e))
        s = e
        while s < end and text[s].isspace():
            s += 1
    if s < end:
        out.append((s, end))
    return out


# --- capitalised sequences ------------------------------------------------------------------------

CONNECTORS = frozenset({"of", "for", "the", "and", "&", "de", "del", "della", "da", "di", "du", "van", "von", "der", "den", "bin", "ibn", "al", "el", "la", "le", "y", "on"})
NAME_PARTICLE = re.compile(r"^(?:al|el|bin|ibn|de|van|von|da|di|le|la|du|abu|mc|mac)-?[A-Z]")
ABBREV_TITLE = wordset("mr mrs ms dr rep sen gov gen lt col sgt capt adm st rev prof jr sr mt ft")


@dataclass(slots=True)
class CapSeq:
    """A run of capitalised words (with inner connectors), e.g. 'Center for Security Policy'."""

    words: list[str]
    start: int
    end: int
    sent_initial: bool  # the first word opens a sentence (or a quote, or the paragraph)
    possessive: bool = False
    in_quote: bool = False
    word_spans: list[tuple[int, int]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(self.words)


_GROUP = re.Match.group
_START = re.Match.start


def _is_cap(w: str) -> bool:
    c = w[0]
    if c.isupper():
        return True
    if c.islower() and "-" not in w:
        return False
    return (c.isdigit() and any(ch.isupper() for ch in w)) or bool(NAME_PARTICLE.match(w))


# a token after which a capitalised word opens a sentence (or a quote, or a parenthesis)
_BOUNDARY = frozenset(".!?:;“\"‘—–-([…")


def cap_sequences(text: str, start: int, end: int) -> list[CapSeq]:
    """Runs of capitalised words in one paragraph. Possessive endings are split off and flagged."""
    # parallel lists rather than Tok objects: this runs on every paragraph of every article
    ms = list(TOKEN.finditer(text, start, end))
    tt = list(map(_GROUP, ms))
    ts = list(map(_START, ms))  # a token ends at ts[j] + len(tt[j])
    out: list[CapSeq] = []
    n = len(tt)
    i = 0
    while i < n:
        w = tt[i]
        c0 = w[0]
        if c0.islower() and "-" not in w:
            i += 1
            continue
        if not (c0.isalnum() and (c0.isupper() or _is_cap(w))):
            i += 1
            continue
        # the run opens a sentence if the token before it is a boundary mark (or it opens the
        # paragraph); the token before a run is never a capitalised word, nor in a run
        sent_initial = i == 0 or tt[i - 1] in _BOUNDARY
        words: list[str] = []
        spans: list[tuple[int, int]] = []
        j = i
        possessive = False
        while j < n:
            tw = tt[j]
            c0 = tw[0]
            # a capitalised word (_is_cap is False for a lower-case word without a hyphen)
            if c0.isalnum() and (c0.isupper() or (not (c0.islower() and "-" not in tw) and _is_cap(tw))):
                clean = tw
                cut = False
                if "-" in tw:
                    # a dash typed as a hyphen: "Debate and Forensics League-all because ..."
                    head, _, tail = tw.rpartition("-")
                    if tail in FUNCTION_WORDS and head[-1:].isalpha():
                        clean, tw, cut = head, head, True
                if clean.endswith(("’s", "'s")):
                    clean = clean[:-2]
                    possessive = True
                elif clean.endswith(("s’", "s'")):
                    clean = clean[:-1]
                    possessive = True
                words.append(clean)
                spans.append((ts[j], ts[j] + len(clean)))
                if cut:
                    j += 1
                    break
                if possessive:
                    if (
                        any(w.lower() in CONNECTORS for w in words)
                        and j + 1 < n
                        and tt[j + 1][0].isupper()
                    ):
                        words[-1] = tw
                        spans[-1] = (ts[j], ts[j] + len(tw))
                        possessive = False
                        j += 1
                        continue
                    j += 1
                    break
                # an abbreviation's dot joins the next capitalised word (Rep. Andy Kim, Dominic M. Miller)
                if (
                    j + 2 < n
                    and tt[j + 1] == "."
                    and ts[j + 1] == ts[j] + len(tw)
                    and (tw.lower() in ABBREV_TITLE or (len(tw) == 1 and tw.isupper()))
                    and _is_cap(tt[j + 2])
                    and tt[j + 2][0].isalpha()
                ):
                    words[-1] = tw + "."
                    spans[-1] = (ts[j], ts[j + 1] + 1)
                    j += 2
                    continue
                j += 1
                continue
            lw = tw.lower()
            if lw in CONNECTORS:
                # inner connector followed by a capitalised word
                if (
                    j + 1 < n
                    and tt[j + 1][0].isalpha()
                    and _is_cap(tt[j + 1])
                    and not (lw == "the" and tt[j + 1] in ("The",))
                ):
                    words.append(tw)
                    spans.append((ts[j], ts[j] + len(tw)))
                    j += 1
                    continue
                if (
                    lw in ("of", "for")
                    and j + 2 < n
                    and tt[j + 1] == "the"
                    and tt[j + 2][0].isalpha()
                    and _is_cap(tt[j + 2])
                ):
                    words.extend([tw, "the"])
                    spans.extend([(ts[j], ts[j] + len(tw)), (ts[j + 1], ts[j + 1] + 3)])
                    j += 2
                    continue
            break
        # trailing connectors never end a sequence (handled by construction)
        seq = CapSeq(words, spans[0][0], spans[-1][1], sent_initial, possessive, False, spans)
        out.append(seq)
        i = j
    return out


_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER = b"abcdefghijklmnopqrstuvwxyz"


def is_upper_line(text: str, start: int, end: int) -> bool:
    """A heading in capitals (TOUGH RACE FOR DEMOCRATIC NOMINATION)."""
    if end - start > 200:
        return False
    # ASCII letters counted as bytes (every other character encodes to bytes of 128 and more)
    seg = text[start:end].encode("utf-8", "surrogatepass")
    up = len(seg) - len(seg.translate(None, _UPPER))
    low = len(seg) - len(seg.translate(None, _LOWER))
    return up + low >= 8 and up / (up + low) > 0.9
