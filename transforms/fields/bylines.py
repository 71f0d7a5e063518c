"""Datelines, bylines and dates written in the text itself ("BAGHDAD —", "By Douglas Burton",
"date 2020-01-08"), so the pipeline can fill `articles.authors` / `published_at` when metadata lacks them."""

from __future__ import annotations

import re
from datetime import date

from transforms.fields import gazetteer
from transforms.fields._text import MONTH_RE, MONTHS

_ISO_DATE = re.compile(r"\b((?:19|20)\d\d)-(\d\d)-(\d\d)\b")
_LONG_DATE = re.compile(r"\b(" + MONTH_RE + r")\s+(\d{1,2}),?\s+((?:19|20)\d\d)\b")
_DMY_DATE = re.compile(r"\b(\d{1,2})\s+(" + MONTH_RE + r")\s+((?:19|20)\d\d)\b")
_NAME = r"[A-Z][\w’'.\-]*(?:\s+(?:[A-Z][\w’'.\-]*|de|van|von|da|del|al|bin))*"
_BYLINE = re.compile(r"(?:^|\s)[Bb][Yy]:?\s+(" + _NAME + r"(?:\s*(?:,|and|&)\s*" + _NAME + r")*)")
_DATELINE = re.compile(
    r"^\s*([A-Z][A-Z.’'\-]+(?:\s+[A-Z][A-Z.’'\-]+)*(?:,\s*[A-Z][A-Za-z.]+(?:\s+[A-Z][A-Za-z.]+)*)?)\s*"
    r"(?:\([^)]{1,40}\)\s*)?(?:—|–|--|-)\s+"
)
_SPLIT_AUTHORS = re.compile(r"\s*(?:,|\band\b|&)\s*")


def _valid(y: int, m: int, d: int) -> str | None:
    try:
        return date(y, m, d).isoformat()
    except ValueError:
        return None


def parse_byline(text: str, paras: list[tuple[int, int]]) -> tuple[dict, tuple[int, int] | None]:
    """({dateline_place, byline_authors, text_date}, span of the byline/date block or None)."""
    place: str | None = None
    authors: list[str] = []
    text_date: str | None = None
    block: tuple[int, int] | None = None
    for ps, pe in paras[:3]:
        head = text[ps: min(pe, ps + 300)]
        short = pe - ps <= 120
        if text_date is None:
            m = _ISO_DATE.search(head) if short else None
            if m:
                text_date = _valid(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            else:
                m2 = _LONG_DATE.search(head) if short else None
                if m2:
                    text_date = _valid(int(m2.group(3)), MONTHS[m2.group(1).lower().rstrip(".")], int(m2.group(2)))
                else:
                    m3 = _DMY_DATE.search(head) if short else None
                    if m3:
                        text_date = _valid(int(m3.group(3)), MONTHS[m3.group(2).lower().rstrip(".")], int(m3.group(1)))
        if not authors and short:
            b = _BYLINE.search(head)
            if b:
                names = [a.strip(" .") for a in _SPLIT_AUTHORS.split(b.group(1)) if a.strip(" .")]
                authors = [a for a in names if 1 <= len(a.split()) <= 4]
                if authors:
                    block = (ps, pe)
        if short and text_date and block is None and len(head.split()) <= 6:
            block = (ps, pe)
        if place is None:
            d = _DATELINE.match(head)
            if d:
                raw = d.group(1).split(",")[0].strip()
                cand = " ".join(w.capitalize() if w.isupper() and len(w) > 3 else w for w in raw.split())
                if cand in gazetteer.places() or len(raw) >= 3:
                    place = cand
    return {"dateline_place": place, "byline_authors": authors, "text_date": text_date}, block
