"""Shape extracted pages into typed article rows: UTC timestamps, the best publication date and
its provenance, language, word count and content hash."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime

import polars as pl

from transforms import TRANSFORM_VERSION
from transforms.language import detect_language

__all__ = ["ARTICLE_COLUMNS", "EXTRACTED_SCHEMA", "build_articles", "content_hash", "DATE_SOURCES"]

# publication-date provenance, best first
DATE_SOURCES = ("metadata", "feed", "sitemap", "url", "text")

EXTRACTED_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "article_id": pl.String,
    "url": pl.String,  # canonical
    "final_url": pl.String,
    "source": pl.String,
    "run_id": pl.String,
    "guid": pl.String,
    "feed_title": pl.String,
    "feed_published": pl.Datetime("us", "UTC"),
    "feed_date_source": pl.String,
    "fetched_at": pl.Datetime("us", "UTC"),
    "title": pl.String,
    "authors": pl.List(pl.String),
    "sitename": pl.String,
    "description": pl.String,
    "categories": pl.List(pl.String),
    "tags": pl.List(pl.String),
    "text": pl.String,
    "html_lang": pl.String,
    "page_date": pl.String,
    "page_date_source": pl.String,
    "page_timestamp": pl.String,
    "byline_authors": pl.List(pl.String),  # from a "By ..." line in the text
    "text_date": pl.String,  # a date written at the top of the text
    "dateline_place": pl.String,
    "extractor": pl.String,
    "extractor_version": pl.String,
}

ARTICLE_COLUMNS = [
    "article_id", "url", "final_url", "source", "title", "authors", "authors_source", "published_at",
    "published_date", "published_at_source", "dateline", "language", "site_name", "description", "categories", "tags", "text",
    "word_count", "content_hash", "guid", "fetched_at", "extracted_at", "extractor", "extractor_version",
    "transform_version", "run_id",
]


def content_hash(text: str | None) -> str | None:
    if text is None:
        return None
    normal = " ".join(text.split())
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()


def _parse_ts(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _parse_day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _clean_list(col: str) -> pl.Expr:
    return (
        pl.col(col)
        .list.eval(pl.element().str.strip_chars().filter(pl.element().str.len_chars() > 0))
        .list.unique(maintain_order=True)
    )


def _detected_languages(df: pl.DataFrame) -> pl.Series:
    """The language detected from the text, only for rows whose page does not declare one (detection
    is most of this transform's cost and most pages declare it)."""
    missing = df["html_lang"].is_null().arg_true()
    detected = pl.Series("_detected", [None] * df.height, dtype=pl.String)
    if missing.len():
        found = df[missing].select(detect_language(pl.col("text").fill_null(""))).to_series()
        detected = detected.scatter(missing, found)
    return detected


def build_articles(extracted: pl.DataFrame, extracted_at: datetime | None = None) -> pl.DataFrame:
    """Extracted page rows (``EXTRACTED_SCHEMA``) to article rows (``ARTICLE_COLUMNS``)."""
    extracted_at = extracted_at or datetime.now(UTC)
    # a date written in the text itself ("date 2020-01-08" above the body) stands in for a missing
    # page date, with 'text' provenance, after the URL
    no_page_date = pl.col("page_date").is_null() | (pl.col("page_date_source") == "text")
    extracted = extracted.with_columns(
        pl.when(no_page_date & pl.col("text_date").is_not_null()).then(pl.col("text_date"))
        .otherwise(pl.col("page_date")).alias("page_date"),
        pl.when(no_page_date & pl.col("text_date").is_not_null()).then(pl.lit("text"))
        .otherwise(pl.col("page_date_source")).alias("page_date_source"),
    )
    df = extracted.with_columns(
        pl.col("page_timestamp").map_elements(_parse_ts, return_dtype=pl.Datetime("us", "UTC")).alias("_page_ts"),
        pl.col("page_date").map_elements(_parse_day, return_dtype=pl.Date).alias("_page_day"),
        pl.col("page_timestamp").str.slice(0, 10).map_elements(_parse_day, return_dtype=pl.Date).alias("_page_ts_day"),
    )
    page_day_ts = pl.col("_page_day").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    is_meta = pl.col("page_date_source") == "metadata"
    feed_ok = pl.col("feed_published").is_not_null()
    # metadata wins; a day-only metadata date takes its time from the feed when both name the same day
    published_at = (
        pl.when(is_meta & pl.col("_page_ts").is_not_null()).then(pl.col("_page_ts"))
        .when(is_meta & feed_ok & (pl.col("feed_published").dt.date() == pl.col("_page_day"))).then(pl.col("feed_published"))
        .when(is_meta).then(page_day_ts)
        .when(feed_ok).then(pl.col("feed_published"))
        .when(pl.col("_page_day").is_not_null()).then(page_day_ts)
        .otherwise(None)
    )
    published_source = (
        pl.when(is_meta & pl.col("_page_day").is_not_null()).then(pl.lit("metadata"))
        .when(feed_ok).then(pl.col("feed_date_source"))
        .when(pl.col("_page_day").is_not_null()).then(pl.col("page_date_source"))
        .otherwise(None)
    )
    published_date = (
        pl.when(is_meta & pl.col("_page_ts_day").is_not_null()).then(pl.col("_page_ts_day"))
        .when(is_meta).then(pl.col("_page_day"))
        .when(feed_ok).then(pl.col("feed_published").dt.date())
        .otherwise(pl.col("_page_day"))
    )
    text = pl.col("text").fill_null("")
    df = df.with_columns(_detected_languages(df))
    title = pl.coalesce(pl.col("title").str.strip_chars().replace("", None), pl.col("feed_title").str.strip_chars())
    out = df.with_columns(
        title.alias("title"),
        pl.when(pl.col("authors").list.len() > 0).then(_clean_list("authors"))
        .otherwise(_clean_list("byline_authors")).alias("authors"),
        pl.when(pl.col("authors").list.len() > 0).then(pl.lit("metadata"))
        .when(pl.col("byline_authors").list.len() > 0).then(pl.lit("byline"))
        .otherwise(None).alias("authors_source"),
        pl.col("dateline_place").alias("dateline"),
        published_at.alias("published_at"),
        published_date.alias("published_date"),
        published_source.alias("published_at_source"),
        pl.coalesce(pl.col("html_lang"), pl.col("_detected")).alias("language"),
        pl.col("sitename").alias("site_name"),
        _clean_list("categories").alias("categories"),
        _clean_list("tags").alias("tags"),
        text.str.count_matches(r"\w+").cast(pl.Int32).alias("word_count"),
        text.map_elements(content_hash, return_dtype=pl.String).alias("content_hash"),
        pl.lit(extracted_at).cast(pl.Datetime("us", "UTC")).alias("extracted_at"),
        pl.lit(TRANSFORM_VERSION).alias("transform_version"),
        pl.col("fetched_at").dt.convert_time_zone("UTC"),
    )
    return out.select(ARTICLE_COLUMNS)
