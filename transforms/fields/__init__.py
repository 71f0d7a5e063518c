"""Structured fields from an article's clean text: quotes with speakers, entities, amounts, and the
dateline/byline/date written in the text.

`article_fields` is pure per-article Python (no I/O) and safe in a worker process; reference data (the
gazetteer and given names) is loaded once per process on first use. `field_frames` turns many
articles' fields into typed polars frames matching warehouse/migrations/0003_fields.sql.
"""

from __future__ import annotations

from typing import Any

from transforms.fields import amounts as _amounts
from transforms.fields import entities as _entities
from transforms.fields import quotes as _quotes
from transforms.fields._text import paragraphs
from transforms.fields.bylines import parse_byline
from transforms.fields.frames import FIELD_SCHEMAS, field_frames
from transforms.fields.gazetteer import warm

FIELDS_VERSION = "2"  # 2: organisation rules by context, list-article sections, acronym and suffix folding

__all__ = ["FIELDS_VERSION", "FIELD_SCHEMAS", "article_fields", "field_frames", "warm"]


def article_fields(text: str, title: str | None = None, authors: list[str] | None = None) -> dict[str, Any]:
    """Quotes, entities, amounts and byline of one article's clean text.

    Paragraphs are the text's non-blank lines (one or two newlines between paragraphs both work).
    `title` is not mined (headline case confuses the name rules); `authors` (from metadata) are left
    out of the entities, like the byline's.
    """
    del title
    text = text or ""
    paras = paragraphs(text)
    byline, block = parse_byline(text, paras)
    body = [p for p in paras if block is None or not (block[0] <= p[0] < block[1])]
    index = _entities.extract(text, body)
    quotes = _quotes.extract(text, paras, index)
    skip_names = {a.lower() for a in (authors or []) + byline["byline_authors"]}
    ents = [e for e in _entities.entity_rows(index) if e["name"].lower() not in skip_names]
    amounts = _amounts.extract(text, paras, block)
    return {"quotes": quotes, "entities": ents, "amounts": amounts, "byline": byline}
