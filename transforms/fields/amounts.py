"""Quantities: counts with their object ("more than 400 protestors"), money ("$4.2 million" ->
4200000.0 currency:USD), percentages, durations, distances, fractions, vague amounts ("thousands of").

Not amounts: years, dates, times of day, ages, ordinals, decades, numbers inside names ("Desk 88").
"""

from __future__ import annotations

import re
from bisect import bisect_left

from transforms.fields._text import MONTH_RE, wordset

_UNITS_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "dozen": 12,
}
_SCALE = {"hundred": 1e2, "thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12,
          "m": 1e6, "mn": 1e6, "bn": 1e9, "b": 1e9, "k": 1e3, "tn": 1e12}
_FRACTIONS = {"half": 2, "halves": 2, "third": 3, "thirds": 3, "quarter": 4, "quarters": 4, "fourth": 4,
              "fourths": 4, "fifth": 5, "fifths": 5, "tenth": 10, "tenths": 10}
_VAGUE = {"dozens": 12, "scores": 20, "hundreds": 100, "thousands": 1e3, "millions": 1e6, "billions": 1e9}

_CUR_SYM = {"$": "USD", "US$": "USD", "£": "GBP", "€": "EUR", "¥": "JPY", "₹": "INR", "C$": "CAD",
            "A$": "AUD", "HK$": "HKD", "NZ$": "NZD", "R$": "BRL", "₩": "KRW", "₽": "RUB", "₺": "TRY"}
_CUR_WORD = {"dollar": "USD", "dollars": "USD", "euro": "EUR", "euros": "EUR", "pound": "GBP",
             "pounds sterling": "GBP", "yen": "JPY", "yuan": "CNY", "rupees": "INR", "rupee": "INR",
             "usd": "USD", "eur": "EUR", "gbp": "GBP", "francs": "CHF", "roubles": "RUB", "rubles": "RUB"}
_UNIT_NORM = {
    "second": "seconds", "seconds": "seconds", "secs": "seconds", "minute": "minutes", "minutes": "minutes",
    "mins": "minutes", "hour": "hours", "hours": "hours", "hrs": "hours", "day": "days", "days": "days",
    "week": "weeks", "weeks": "weeks", "month": "months", "months": "months", "year": "years",
    "years": "years", "decade": "decades", "decades": "decades", "century": "centuries",
    "centuries": "centuries", "mile": "miles", "miles": "miles", "mi": "miles", "kilometre": "kilometers",
    "kilometres": "kilometers", "kilometer": "kilometers", "kilometers": "kilometers", "km": "kilometers",
    "metre": "meters", "metres": "meters", "meter": "meters", "meters": "meters", "m": "meters",
    "foot": "feet", "feet": "feet", "ft": "feet", "inch": "inches", "inches": "inches", "yard": "yards",
    "yards": "yards", "kilogram": "kilograms", "kilograms": "kilograms", "kg": "kilograms",
    "kilos": "kilograms", "gram": "grams", "grams": "grams", "tonne": "tonnes", "tonnes": "tonnes",
    "ton": "tons", "tons": "tons", "pound": "pounds", "pounds": "pounds", "lb": "pounds", "lbs": "pounds",
    "ounce": "ounces", "ounces": "ounces", "acre": "acres", "acres": "acres", "hectare": "hectares",
    "hectares": "hectares", "times": "times", "time": "times", "barrels": "barrels", "gallons": "gallons",
    "liters": "liters", "litres": "liters", "degrees": "degrees", "mph": "mph",
    "percent": "percent", "per cent": "percent", "%": "percent", "percentage points": "percentage points",
}
_QUALIFIERS = [
    ("more than", "more than"), ("over", "more than"), ("upwards of", "more than"), ("in excess of", "more than"),
    ("greater than", "more than"), ("higher than", "more than"), ("above", "more than"),
    ("less than", "less than"), ("fewer than", "less than"), ("under", "less than"), ("below", "less than"),
    ("about", "about"), ("around", "about"), ("approximately", "about"), ("roughly", "about"), ("some", "about"),
    ("an estimated", "about"), ("estimated", "about"), ("circa", "about"), ("nearly", "nearly"),
    ("almost", "nearly"), ("close to", "nearly"), ("just under", "nearly"), ("at least", "at least"),
    ("no fewer than", "at least"), ("no less than", "at least"), ("as little as", "at least"),
    ("as few as", "at least"), ("at most", "up to"), ("up to", "up to"), ("as many as", "up to"),
    ("as much as", "up to"), ("no more than", "up to"), ("within", "up to"), ("within the coming", "up to"),
    ("within the next", "up to"), ("only", None), ("just", None), ("exactly", None),
]
_QUAL_RE = re.compile(
    r"(?:^|\s)(" + "|".join(re.escape(q) for q, _ in sorted(_QUALIFIERS, key=lambda x: -len(x[0]))) + r")\s+$",
    re.IGNORECASE,
)
_QUAL_MAP = {q: v for q, v in _QUALIFIERS}

_NUMWORD = r"(?:" + "|".join(sorted(_UNITS_WORDS, key=len, reverse=True)) + r")"
_NUMBER = (
    r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|(?:" + _NUMWORD + r")(?:[\s-]" + _NUMWORD + r")?)"
)
_SCALE_RE = r"(?:\s*(?:hundred|thousand|million|billion|trillion)\b|(?:m|bn|mn|k|tn)\b)?"
_CUR_PREFIX = r"(?:US\$|C\$|A\$|HK\$|NZ\$|R\$|[$£€¥₹₩₽₺])"
_UNIT_AFTER = (
    r"(?:per cent|percentage points|percent|%|" + "|".join(sorted((k for k in _UNIT_NORM if k not in ("%", "percent", "per cent", "percentage points")), key=len, reverse=True))
    + r")"
)

AMOUNT = re.compile(
    r"(?<![\w$£€¥.,/:@-])"
    r"(?P<vague>(?:tens|hundreds|dozens|scores)\s+of\s+(?:thousands|millions|billions)|dozens|scores|hundreds|thousands|millions|billions)(?=\s+of\b)"
    r"|(?<![\w$£€¥.,/:@-])(?P<frac>(?:" + _NUMWORD + r")-(?:half|halves|thirds?|quarters?|fourths?|fifths?|tenths?))\b"
    r"|(?<![\w.,/:@-])(?P<cur>" + _CUR_PREFIX + r")\s?(?P<cnum>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?P<cscale>" + _SCALE_RE + r")"
    r"|(?<![\w$£€¥.,/:@-])(?P<num>" + _NUMBER + r")(?P<scale>" + _SCALE_RE + r")(?P<pct>\s?%)?(?P<plus>-plus)?(?![\w%])"
    r"|(?<![\w-])(?P<times>twice|once|thrice)\b",
    re.IGNORECASE,
)
# where an amount can start: a currency sign, a digit or a number word (in the lower-cased text)
_PRESCAN = re.compile(
    r"(?:us|c|a|hk|nz|r)?[$£€¥₹₩₽₺]|(?<![\w.,])\d|(?<![a-z])(?:" + _NUMWORD + r"|tens|dozens|scores|hundreds|thousands|millions|billions|twice|once|thrice)(?![a-z])"
)
# _prescan_starts finds the same starts faster: the regex above tries every position of the text
_PRESCAN_WORDS = (*_UNITS_WORDS, "tens", "dozens", "scores", "hundreds", "thousands", "millions", "billions", "twice", "once", "thrice")
_PRESCAN_DIGIT = re.compile(r"\d(?<![\w.,]\d)")  # (?<![\w.,])\d, with the digit first so the scan skips to digits
_PRESCAN_SIGNS = "$£€¥₹₩₽₺"
# the number words as bytes, and a table that blanks every byte but a-z: the runs of a-z letters of
# a text are then the words of its UTF-8 bytes so translated (any other character encodes to bytes
# that are not a-z), a set that tells quickly which number words the text has
_PRESCAN_WORD_BYTES = [(w, w.encode()) for w in _PRESCAN_WORDS]
_NOT_AZ = bytes(c if 97 <= c <= 122 else 32 for c in range(256))


def _prescan_starts(low: str) -> list[int]:
    """The start of every match of _PRESCAN.finditer(low): all the places each part of it matches (a
    number word is a whole run of a-z letters), then the leftmost that do not overlap, as finditer takes
    them. A match never spans a space, so the matches in a paragraph are those of the whole text."""
    found = [(m.start(), m.start() + 1) for m in _PRESCAN_DIGIT.finditer(low)]
    for sign in _PRESCAN_SIGNS:
        s = low.find(sign)
        while s >= 0:
            if s >= 2 and low[s - 2: s] in ("us", "hk", "nz"):
                found.append((s - 2, s + 1))
            elif s >= 1 and low[s - 1] in "car":
                found.append((s - 1, s + 1))
            found.append((s, s + 1))
            s = low.find(sign, s + 1)
    runs = set(low.encode("utf-8", "surrogatepass").translate(_NOT_AZ).split())
    n = len(low)
    for w, wb in _PRESCAN_WORD_BYTES:
        if wb not in runs:
            continue  # not a whole run of letters anywhere: the usual case, spared the search below
        i = low.find(w)
        while i >= 0:
            j = i + len(w)
            if (i == 0 or not "a" <= low[i - 1] <= "z") and (j == n or not "a" <= low[j] <= "z"):
                found.append((i, j))
            i = low.find(w, i + 1)
    found.sort()
    starts: list[int] = []
    end = 0
    for s, e in found:
        if s >= end:
            starts.append(s)
            end = e
    return starts
_YEAR = re.compile(r"^(?:1[5-9]|20)\d\d$")
_DATE_BEFORE = re.compile(r"\b" + MONTH_RE + r"\s*$")
_DATE_AFTER = re.compile(r"^(?:st|nd|rd|th)?\s*,?\s*(?:" + MONTH_RE + r")\b|^(?:st|nd|rd|th)\b")
_TIME_AFTER = re.compile(r"^(?::\d\d|\s*(?:a\.m\.|p\.m\.|am\b|pm\b|o'clock|GMT|ET|EST|BST|UTC))", re.IGNORECASE)
_AGE_AFTER = re.compile(r"^(?:-year-old|-month-old|-week-old|-day-old|\s+years?\s+old|-years?-old|s\b|’s\b|'s\b)", re.IGNORECASE)
_AGE_BEFORE = re.compile(r"\b(?:aged?|turned|turning|was|is|am|are|were|be|been)\s+$", re.IGNORECASE)
_STOP_OBJ = wordset("""of in on at by to from with for and or but the a an that which who whom whose as than then this
    these those it its his her their our your my we he she they i you is are was were be been being has
    have had do does did will would can could may might must shall should not no ago since until while
    when where before after into over under about per each every more less most least so such very too
    also just only even still already again later earlier yet out up down off away back here there
    including among between through during across around against toward towards""")
_WORD = re.compile(r"[A-Za-z][\w’'\-]*")
# the fixed patterns of _one, compiled once
_OF_AFTER = re.compile(r"\s+of\s+")
_ONCE_AFTER = re.compile(r"^\s*(?:from|in|a|per|every|more|for|or)\b")
_YEAR_UNIT_AFTER = re.compile(r"^\s*(?:%|percent|per cent|people|miles|km|dollars|euros)\b")
_ORDINAL_AFTER = re.compile(r"^(?:st|nd|rd|th)\b")
_WORD_BEFORE = re.compile(r"([A-Za-z][\w’'\-]*)\s*$")
_NUMBER_SIGN_BEFORE = re.compile(r"[#№]\s*$|No\.\s*$")
_ONE_UNIT_AFTER = re.compile(r"^\s*(?:or more|" + _UNIT_AFTER + r")\b", re.IGNORECASE)
_LETTER_AFTER = re.compile(r"^\s*[A-Za-z%$]")
_HYPHEN_WORD = re.compile(r"^-([a-z]+)\b")
_HYPHEN_OLD = re.compile(r"^-[a-z]+-old")
_CUR_WORD_AFTER = re.compile(r"^\s+(dollars?|euros?|pounds sterling|yen|yuan|rupees?|francs|roubles|rubles|USD|EUR|GBP)\b")
_UNIT_AFTER_RE = re.compile(r"^\s*(?:(?:[a-z]+)\s+)?(" + _UNIT_AFTER + r")(?![\w])", re.IGNORECASE)
_MORE_MINUTES = re.compile(r"^,?\s*(?:and\s+)?(\d+|" + _NUMWORD + r")\s+(minutes?|seconds?)\b", re.IGNORECASE)
_RANGE_AFTER = re.compile(
    r"^\s*(?:to|and|-|–)\s*(" + _CUR_PREFIX + r")?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|" + _NUMWORD + r")(" + _SCALE_RE
    + r")(\s?%|\s+percent)?", re.IGNORECASE)
_BETWEEN_BEFORE = re.compile(r"\bbetween\s+$", re.IGNORECASE)
_AND_AFTER = re.compile(r"^\s*and\b")
_RANGE_UNIT_AFTER = re.compile(r"^\s*(" + _UNIT_AFTER + r")(?![\w])", re.IGNORECASE)
_FRAME_BEFORE = re.compile(r"\b(?:top|of|groups? of|to|from|by|than|total of|number of)\s+$", re.IGNORECASE)
# The patterns above that match only at the end of the text before a number (\s*$ or \s+$ after a
# few words), with how far before the end of that text (stripped) a match can start: _at_end searches
# from there, which finds the same match as a search of the whole text without trying every position.
_QUAL_REACH = 1 + max(len(q) for q, _ in _QUALIFIERS)  # a space and the longest qualifier
_DATE_REACH = len("September")
_AGE_REACH = len("turning")
_NUMBER_SIGN_REACH = len("No.")
_BETWEEN_REACH = len("between")
_FRAME_REACH = len("number of")


def _at_end(pattern: re.Pattern[str], before: str, reach: int) -> re.Match[str] | None:
    """pattern.search(before) for a pattern that can only match in the last `reach` characters of
    `before` before its trailing spaces."""
    return pattern.search(before, max(0, len(before.rstrip()) - reach))


def _word_before(before: str) -> re.Match[str] | None:
    """_WORD_BEFORE.search(before): a match holds no space, so it starts after the last one."""
    return _WORD_BEFORE.search(before, before.rfind(" ", 0, len(before.rstrip())) + 1)
_OF_OBJECT_AFTER = re.compile(r"^\s+of\s+((?:[A-Za-z][\w’'\-]*\s+){0,2}[A-Za-z][\w’'\-]*)")
_SENTENCE_MARKS = ".!?:;“\""


def _after_mark(before: str, word: str) -> bool:
    """`before`, which ends with `word` and spaces, has sentence punctuation (and spaces) before `word`:
    the regex [.!?:;“"]\\s*<word>\\s*$ without compiling one per word."""
    head = before.rstrip()[: -len(word)].rstrip()
    return bool(head) and head[-1] in _SENTENCE_MARKS


def _parse_number(s: str) -> float | None:
    s = s.strip().lower()
    if s[0].isdigit():
        try:
            return float(s.replace(",", ""))
        except ValueError:
            return None
    parts = re.split(r"[\s-]+", s)
    total = 0.0
    for p in parts:
        v = _UNITS_WORDS.get(p)
        if v is None:
            return None
        if p == "hundred" and total:
            total *= 100
        else:
            total += v
    return total


def extract(text: str, paras: list[tuple[int, int]], skip: tuple[int, int] | None = None) -> list[dict]:
    rows: list[dict] = []
    low = text.lower()
    if len(low) != len(text):
        low = text  # case folding changed offsets; number words then only match in lower case
    starts = _prescan_starts(low)
    for pi, (ps, pe) in enumerate(paras):
        if skip and skip[0] <= ps < skip[1]:
            continue
        last = ps
        for pos in starts[bisect_left(starts, ps): bisect_left(starts, pe)]:
            if pos < last:
                continue
            m = AMOUNT.match(text, pos, pe)
            if m is None:
                continue
            last = m.end()
            row = _one(text, m, ps, pe)
            if row is not None:
                row["paragraph"] = pi
                if rows and rows[-1]["end_char"] > row["start_char"]:
                    continue
                rows.append(row)
    return rows


def _one(text: str, m: re.Match[str], ps: int, pe: int) -> dict | None:
    start, end = m.start(), m.end()
    before = text[max(ps, start - 40): start]
    after = text[end: min(pe, end + 80)]
    value: float | None
    value_max: float | None = None
    unit: str | None = None
    approximate = False
    qualifier: str | None = None
    obj: str | None = None
    if m.group("vague"):
        v = m.group("vague").lower().split()
        value = 1.0
        for w in v:
            if w in _VAGUE:
                value *= _VAGUE[w]
            elif w == "tens":
                value *= 10
        approximate = True
        # "thousands of Iraqi civilian deaths"
        om = _OF_AFTER.match(after)
        if om:
            end += om.end()
            after = text[end: min(pe, end + 80)]
    elif m.group("frac"):
        a, b = m.group("frac").lower().split("-", 1)
        num = _UNITS_WORDS.get(a)
        den = _FRACTIONS.get(b)
        if num is None or den is None:
            return None
        value = num / den
        unit = "fraction"
    elif m.group("times"):
        w = m.group("times").lower()
        if w == "once" and not _ONCE_AFTER.match(after):
            return None
        value = {"once": 1.0, "twice": 2.0, "thrice": 3.0}[w]
        unit = "times"
    elif m.group("cur"):
        value = float(m.group("cnum").replace(",", ""))
        sc = m.group("cscale").strip().lower()
        if sc:
            value *= _SCALE[sc]
        unit = "currency:" + _CUR_SYM.get(m.group("cur").upper(), _CUR_SYM.get(m.group("cur"), "USD"))
    else:
        raw = m.group("num")
        low = raw.lower()
        value = _parse_number(raw)
        if value is None:
            return None
        is_digit = raw[0].isdigit()
        sc = (m.group("scale") or "").strip().lower()
        # exclusions
        if is_digit:
            if _YEAR.match(raw) and not sc and not m.group("pct") and not _YEAR_UNIT_AFTER.match(after):
                return None
            if _at_end(_DATE_BEFORE, before, _DATE_REACH) or _DATE_AFTER.match(after) or _TIME_AFTER.match(after):
                return None
            if _ORDINAL_AFTER.match(text[end: end + 3]):
                return None
            # a number inside a name: "Desk 88", "Executive Order 14019"
            pw = _word_before(before)
            if pw and pw.group(1)[0].isupper() and not _at_end(_QUAL_RE, before, _QUAL_REACH) and not _after_mark(before, pw.group(1)) and before.strip() != pw.group(1):
                return None
            if _at_end(_NUMBER_SIGN_BEFORE, before, _NUMBER_SIGN_REACH):
                return None
        else:
            if low == "one" and not _at_end(_QUAL_RE, before, _QUAL_REACH) and not _ONE_UNIT_AFTER.match(after):
                return None
        if _AGE_AFTER.match(after) or (_at_end(_AGE_BEFORE, before, _AGE_REACH) and not _LETTER_AFTER.match(after) and not sc):
            return None
        if sc:
            value *= _SCALE[sc]
        if m.group("pct"):
            unit = "percent"
        if m.group("plus"):
            qualifier = "more than"
        # hyphenated compounds: "three-term", "Two-time"
        hy = _HYPHEN_WORD.match(after)
        if hy and not m.group("plus"):
            w = hy.group(1)
            if w in ("year", "month", "week", "day") and _HYPHEN_OLD.match(after):
                return None
            unit = "times" if w == "time" else _UNIT_NORM.get(w) if w in _UNIT_NORM and w not in ("m",) else None
            obj = None if unit else w
            end += hy.end()
            after = text[end: min(pe, end + 80)]
        # currency words after: "5 million dollars", "300 euros"
        cw = _CUR_WORD_AFTER.match(after)
        if unit is None and cw:
            unit = "currency:" + _CUR_WORD[cw.group(1).lower()]
            end += cw.end()
            after = text[end: min(pe, end + 80)]
    # unit after the number (one adjective may sit between: "36 consecutive hours")
    if unit is None:
        um = _UNIT_AFTER_RE.match(after)
        if um and (um.group(1).lower() in ("%", "percent", "per cent", "percentage points") or not um.group(0).strip().startswith(("of ", "more "))):
            u = um.group(1).lower()
            adj = um.group(0)[: um.start(1)].strip()
            if not adj or (adj.lower() not in _STOP_OBJ and not adj.endswith("ly")):
                unit = _UNIT_NORM.get(u, u)
                if unit == "pounds" and re.search(r"£", before):
                    unit = None
                end += um.end()
                after = text[end: min(pe, end + 80)]
                # compound durations: "15 hours and 15 minutes", "13 hours 10 minutes"
                if unit in ("hours", "minutes"):
                    cm = _MORE_MINUTES.match(after)
                    if cm:
                        extra = _parse_number(cm.group(1)) or 0.0
                        value = (value or 0.0) + extra / 60.0
                        end += cm.end()
                        after = text[end: min(pe, end + 80)]
    # ranges: "between 5 and 10", "5 to 10", "5-10"
    rm = _RANGE_AFTER.match(after)
    if rm and (value is not None) and (_at_end(_BETWEEN_BEFORE, before, _BETWEEN_REACH) or not _AND_AFTER.match(after)):
        hi = _parse_number(rm.group(2))
        if hi is not None:
            sc2 = (rm.group(3) or "").strip().lower()
            if sc2:
                hi *= _SCALE[sc2]
            elif unit and unit.startswith("currency:") and m.group("cscale"):
                hi *= _SCALE[m.group("cscale").strip().lower()]
            if hi > value:
                value_max = hi
                end += rm.end()
                after = text[end: min(pe, end + 80)]
                if rm.group(4):
                    unit = "percent"
                if unit is None:
                    um = _RANGE_UNIT_AFTER.match(after)
                    if um:
                        unit = _UNIT_NORM.get(um.group(1).lower(), um.group(1).lower())
                        end += um.end()
                        after = text[end: min(pe, end + 80)]
    # qualifier before
    qm = _at_end(_QUAL_RE, before, _QUAL_REACH)
    if value_max is not None and _at_end(_BETWEEN_BEFORE, before, _BETWEEN_REACH):
        start -= len(before) - before.lower().rfind("between")
    elif qm:
        q = qm.group(1).lower()
        mapped = _QUAL_MAP.get(q)
        if mapped is not None and not (q in ("over", "under", "above", "below", "some", "within", "just", "only") and unit in (None,) and m.group("vague")):
            qualifier = mapped
            start -= len(before) - qm.start(1)
    # the counted object for plain counts ("600 American combat fatalities")
    if unit is None and obj is None:
        words: list[tuple[str, int]] = []
        for wm in _WORD.finditer(after):
            gap = after[(words[-1][1] if words else 0): wm.start()]
            if gap.strip() not in ("",):
                break
            w = wm.group()
            if w.lower() in _STOP_OBJ or len(words) >= 4:
                break
            if words and (w.endswith("ed") or w.endswith("ing")):
                break
            words.append((w, wm.end()))
        if words:
            obj = " ".join(w for w, _ in words)
            end += words[-1][1]
        elif (
            not m.group("vague") and value is not None and not m.group("times") and not qualifier
            and not _at_end(_FRAME_BEFORE, before, _FRAME_REACH)
        ):
            return None  # a bare number is kept only when a qualifier or a comparison frames it
    elif obj is None and unit is not None and (unit == "percent" or unit.startswith("currency:")):
        om = _OF_OBJECT_AFTER.match(after)
        if om and om.group(1).split()[0].lower() not in _STOP_OBJ:
            obj = om.group(1)
    if value is None:
        return None
    return {
        "text": text[start:end],
        "value": float(value),
        "value_max": float(value_max) if value_max is not None else None,
        "unit": unit,
        "object": obj,
        "qualifier": qualifier,
        "approximate": approximate,
        "start_char": start,
        "end_char": end,
    }
