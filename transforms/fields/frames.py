"""Typed polars frames for the field tables (columns and order as in 0003_fields.sql)."""

from __future__ import annotations

from typing import Any

import polars as pl

QUOTE_SCHEMA: dict[str, Any] = {
    "article_id": pl.String, "quote": pl.String, "speaker": pl.String, "speaker_type": pl.String,
    "speaker_role": pl.String, "verb": pl.String, "paragraph": pl.Int32, "start_char": pl.Int32,
    "end_char": pl.Int32, "transform_version": pl.String,
}
ENTITY_SCHEMA: dict[str, Any] = {
    "article_id": pl.String, "name": pl.String, "kind": pl.String, "aliases": pl.List(pl.String),
    "mentions": pl.Int32, "country_code": pl.String, "start_char": pl.Int32, "end_char": pl.Int32,
    "transform_version": pl.String,
}
AMOUNT_SCHEMA: dict[str, Any] = {
    "article_id": pl.String, "text": pl.String, "value": pl.Float64, "value_max": pl.Float64,
    "unit": pl.String, "object": pl.String, "qualifier": pl.String, "approximate": pl.Boolean,
    "paragraph": pl.Int32, "start_char": pl.Int32, "end_char": pl.Int32, "transform_version": pl.String,
}
DATELINE_SCHEMA: dict[str, Any] = {
    "article_id": pl.String, "dateline_place": pl.String, "byline_authors": pl.List(pl.String),
    "text_date": pl.Date, "start_char": pl.Int32, "end_char": pl.Int32, "transform_version": pl.String,
}
FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    "quotes": QUOTE_SCHEMA, "entities": ENTITY_SCHEMA, "amounts": AMOUNT_SCHEMA, "datelines": DATELINE_SCHEMA,
}


def field_frames(rows: list[tuple[str, dict]]) -> dict[str, pl.DataFrame]:
    """(article_id, article_fields(...)) pairs -> {"quotes", "entities", "amounts", "datelines"} frames."""
    from transforms.fields import FIELDS_VERSION

    out: dict[str, pl.DataFrame] = {}
    for key in ("quotes", "entities", "amounts"):
        schema = FIELD_SCHEMAS[key]
        cols: dict[str, list[Any]] = {c: [] for c in schema if c != "transform_version"}
        for article_id, fields in rows:
            for r in fields.get(key) or ():
                cols["article_id"].append(article_id)
                for c in cols:
                    if c != "article_id":
                        cols[c].append(r.get(c))
        frame = pl.DataFrame(cols, schema={c: schema[c] for c in cols}, strict=False)
        out[key] = frame.with_columns(pl.lit(FIELDS_VERSION, pl.String).alias("transform_version")).select(list(schema))
    # one dateline row per article that has any of place, authors or date in its text
    d: dict[str, list[Any]] = {c: [] for c in DATELINE_SCHEMA if c != "transform_version"}
    for article_id, fields in rows:
        b = fields.get("byline") or {}
        if not (b.get("dateline_place") or b.get("byline_authors") or b.get("text_date")):
            continue
        d["article_id"].append(article_id)
        d["dateline_place"].append(b.get("dateline_place"))
        d["byline_authors"].append(list(b.get("byline_authors") or []))
        d["text_date"].append(b.get("text_date"))
        d["start_char"].append(b.get("start_char"))
        d["end_char"].append(b.get("end_char"))
    schema = {c: (pl.String if c == "text_date" else DATELINE_SCHEMA[c]) for c in d}
    frame = pl.DataFrame(d, schema=schema, strict=False).with_columns(
        pl.col("text_date").str.to_date("%Y-%m-%d", strict=False),
        pl.lit(FIELDS_VERSION, pl.String).alias("transform_version"),
    )
    out["datelines"] = frame.select(list(DATELINE_SCHEMA))
    return out
