"""Loading: Arrow tables into DuckDB, one transaction per batch, merged on stable keys."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from warehouse.faults import fault_point

__all__ = ["known_urls", "load_batch", "start_run", "finish_run", "save_source_state",
           "OUTCOME_SCHEMA", "PAGE_SCHEMA"]

OUTCOME_SCHEMA: dict[str, Any] = {
    "url": pl.String,
    "canonical_url": pl.String,
    "source": pl.String,
    "outcome": pl.String,
    "detail": pl.String,
    "http_status": pl.Int32,
    "attempts": pl.Int32,
    "article_id": pl.String,
    "updated_at": pl.Datetime("us", "UTC"),
    "run_id": pl.String,
    "feed_title": pl.String,
    "feed_published": pl.Datetime("us", "UTC"),
    "feed_date_source": pl.String,
    "guid": pl.String,
}

PAGE_SCHEMA: dict[str, Any] = {
    "canonical_url": pl.String,
    "url": pl.String,
    "final_url": pl.String,
    "source": pl.String,
    "status": pl.Int32,
    "headers": pl.String,
    "encoding": pl.String,
    "body_gz": pl.Binary,
    "body_bytes": pl.Int32,
    "fetched_at": pl.Datetime("us", "UTC"),
    "run_id": pl.String,
}


def known_urls(con: duckdb.DuckDBPyConnection, urls: list[str], canonicals: list[str],
               retry_outcomes: Iterable[str]) -> tuple[set[str], set[str]]:
    """Which discovered URLs, and which canonical URLs, are already settled in the warehouse.

    Settled means an outcome that is not worth retrying. The lookup joins the batch against the
    keys, so its cost follows the batch, not the warehouse.
    """
    if not urls:
        return set(), set()
    retry = list(retry_outcomes)
    con.register("probe", pa.table({"u": pa.array(urls, pa.string())}))
    known_raw = {
        r[0]
        for r in con.execute(
            "SELECT o.url FROM probe p JOIN url_outcomes o ON o.url = p.u WHERE NOT list_contains(?, o.outcome)",
            [retry],
        ).fetchall()
    }
    con.unregister("probe")
    cprobe = pa.table({"c": pa.array(sorted(set(canonicals)), pa.string())})
    con.register("cprobe", cprobe)
    known_canon = {
        r[0]
        for r in con.execute(
            # a 'duplicate' row points at another URL holding the canonical one; that URL decides
            "SELECT DISTINCT o.canonical_url FROM cprobe p JOIN url_outcomes o ON o.canonical_url = p.c "
            "WHERE NOT list_contains(?, o.outcome) AND o.outcome <> 'duplicate' "
            "UNION SELECT a.url FROM cprobe p JOIN articles a ON a.url = p.c",
            [retry],
        ).fetchall()
    }
    con.unregister("cprobe")
    return known_raw, known_canon


FIELD_TABLES = ("quotes", "entities", "amounts", "datelines")


def load_batch(con: duckdb.DuckDBPyConnection, articles: pl.DataFrame, pages: pl.DataFrame,
               outcomes: pl.DataFrame, fields: dict[str, pl.DataFrame] | None = None) -> None:
    """Merge one batch in a single transaction: pages and articles replace rows with the same key;
    an article's structured fields replace its earlier ones; URL outcomes keep their first-seen
    time and add up attempts."""
    con.execute("BEGIN TRANSACTION")
    try:
        if articles.height and fields is not None:
            con.register("batch_ids", articles.select("article_id").to_arrow())
            for table in FIELD_TABLES:
                con.execute(f"DELETE FROM {table} WHERE article_id IN (SELECT article_id FROM batch_ids)")
                frame = fields.get(table)
                if frame is not None and frame.height:
                    con.register("batch_fields", frame.to_arrow())
                    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM batch_fields")
                    con.unregister("batch_fields")
            con.unregister("batch_ids")
        if pages.height:
            con.register("batch_pages", pages.to_arrow())
            con.execute("INSERT OR REPLACE INTO pages BY NAME SELECT * FROM batch_pages")
            con.unregister("batch_pages")
        if articles.height:
            con.register("batch_articles", articles.to_arrow())
            con.execute("INSERT OR REPLACE INTO articles BY NAME SELECT * FROM batch_articles")
            con.unregister("batch_articles")
        fault_point("mid_load")
        if outcomes.height:
            con.register("batch_outcomes", outcomes.to_arrow())
            con.execute(
                """
                INSERT INTO url_outcomes BY NAME
                SELECT *, updated_at AS first_seen_at FROM batch_outcomes
                ON CONFLICT (url) DO UPDATE SET
                    canonical_url = excluded.canonical_url,
                    source = excluded.source,
                    outcome = excluded.outcome,
                    detail = excluded.detail,
                    http_status = excluded.http_status,
                    attempts = url_outcomes.attempts + excluded.attempts,
                    article_id = coalesce(excluded.article_id, url_outcomes.article_id),
                    updated_at = excluded.updated_at,
                    run_id = excluded.run_id,
                    feed_title = coalesce(excluded.feed_title, url_outcomes.feed_title),
                    feed_published = coalesce(excluded.feed_published, url_outcomes.feed_published),
                    feed_date_source = coalesce(excluded.feed_date_source, url_outcomes.feed_date_source),
                    guid = coalesce(excluded.guid, url_outcomes.guid)
                """
            )
            con.unregister("batch_outcomes")
        con.execute("COMMIT")
    except Exception:
        _rollback(con)
        raise


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back if a transaction is still open; a failed COMMIT has already ended it."""
    with contextlib.suppress(duckdb.Error):
        con.execute("ROLLBACK")


def start_run(con: duckdb.DuckDBPyConnection, run_id: str, flow: str, started_at: datetime,
              parameters: dict[str, Any]) -> None:
    con.execute(
        "INSERT INTO runs (run_id, flow, started_at, status, parameters) VALUES (?, ?, ?, 'running', ?)",
        [run_id, flow, started_at, json.dumps(parameters, default=str)],
    )


def finish_run(con: duckdb.DuckDBPyConnection, run_id: str, ended_at: datetime, status: str,
               counts: dict[str, Any], outcomes: dict[str, int], error: str | None = None) -> None:
    con.execute(
        """UPDATE runs SET ended_at = ?, status = ?, sources = ?, discovered = ?, known = ?, fetched = ?,
           loaded = ?, duplicates = ?, failed = ?, outcomes = ?, error = ? WHERE run_id = ?""",
        [ended_at, status, counts.get("sources"), counts.get("discovered"), counts.get("known"),
         counts.get("fetched"), counts.get("loaded"), counts.get("duplicates"), counts.get("failed"),
         json.dumps(outcomes, sort_keys=True), error, run_id],
    )


def save_source_state(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    """Record each source's discovery outcome; failures count up, a success resets the count."""
    for r in rows:
        ok = r["status"] in ("ok", "not_modified")
        con.execute(
            """
            INSERT INTO source_state (source, kind, url, last_run_id, last_run_at, last_status, last_detail,
                last_discovered, last_new, last_loaded, consecutive_failures, last_success_at, etag, last_modified)
            VALUES ($source, $kind, $url, $run_id, $at, $status, $detail, $discovered, $new, $loaded,
                    CASE WHEN $ok THEN 0 ELSE 1 END, CASE WHEN $ok THEN $at ELSE NULL END, $etag, $last_modified)
            ON CONFLICT (source) DO UPDATE SET
                kind = excluded.kind, url = excluded.url, last_run_id = excluded.last_run_id,
                last_run_at = excluded.last_run_at, last_status = excluded.last_status,
                last_detail = excluded.last_detail, last_discovered = excluded.last_discovered,
                last_new = excluded.last_new, last_loaded = excluded.last_loaded,
                consecutive_failures = CASE WHEN $ok THEN 0 ELSE source_state.consecutive_failures + 1 END,
                last_success_at = CASE WHEN $ok THEN excluded.last_run_at ELSE source_state.last_success_at END,
                etag = CASE WHEN $ok THEN excluded.etag ELSE source_state.etag END,
                last_modified = CASE WHEN $ok THEN excluded.last_modified ELSE source_state.last_modified END
            """,
            {**r, "ok": ok},
        )
