"""Keeping the warehouse usable: the spool for batches that could not be loaded, the full-text
search index, and maintenance (checkpoint, index rebuild, pruning)."""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from warehouse.bodystore import sweep
from warehouse.connection import load_extension, open_warehouse
from warehouse.load import FIELD_TABLES, load_batch

__all__ = ["spool_dir", "spool_batch", "load_spool", "refresh_search_index", "search", "maintain", "SEARCH_TABLE"]

log = logging.getLogger("newsdesk")
SEARCH_TABLE = "fts_main_articles"


def spool_dir(warehouse: str) -> Path:
    return Path(warehouse + ".spool")


def spool_batch(warehouse: str, frames: dict[str, pl.DataFrame]) -> Path:
    """Keep a batch that could not be loaded on disk, so its pages are not fetched again."""
    target = spool_dir(warehouse) / f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
    partial = target.with_suffix(".partial")
    partial.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.write_parquet(partial / f"{name}.parquet")
    partial.rename(target)  # complete batches only: a crash mid-write leaves a .partial, ignored
    return target


def spooled(warehouse: str) -> list[Path]:
    root = spool_dir(warehouse)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.endswith(".partial"))


def load_spool(con: duckdb.DuckDBPyConnection, warehouse: str) -> int:
    """Load spooled batches (oldest first) and remove them once committed. Returns batches loaded."""
    loaded = 0
    for batch in spooled(warehouse):
        frames = {p.stem: pl.read_parquet(p) for p in sorted(batch.glob("*.parquet"))}
        fields = {k: v for k, v in frames.items() if k in FIELD_TABLES}
        load_batch(con, frames.get("articles", pl.DataFrame()), frames.get("pages", pl.DataFrame()),
                   frames.get("outcomes", pl.DataFrame()), fields)
        runs = batch / "run.json"
        if runs.exists():
            _record_spooled_run(con, json.loads(runs.read_text(encoding="utf-8")))
        shutil.rmtree(batch)
        loaded += 1
    return loaded


def _record_spooled_run(con: duckdb.DuckDBPyConnection, run: dict[str, Any]) -> None:
    con.execute(
        "INSERT OR REPLACE INTO runs (run_id, flow, started_at, ended_at, status, error) VALUES (?, ?, ?, ?, ?, ?)",
        [run["run_id"], run["flow"], run["started_at"], run["ended_at"], run["status"], run["error"]],
    )


def spool_run_record(warehouse: str, run: dict[str, Any]) -> None:
    target = spool_dir(warehouse) / f"{time.time_ns():020d}-run"
    target.mkdir(parents=True, exist_ok=True)
    (target / "run.json").write_text(json.dumps(run, default=str), encoding="utf-8")


def refresh_search_index(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)build the BM25 index over article titles and text."""
    load_extension(con, "fts")
    con.execute("PRAGMA create_fts_index('articles', 'article_id', 'title', 'text', stemmer = 'porter', "
                "stopwords = 'english', overwrite = 1)")


def has_search_index(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute("SELECT count(*) FROM duckdb_schemas() WHERE schema_name = ?", [SEARCH_TABLE]).fetchone()
    return bool(row and row[0])


def search(con: duckdb.DuckDBPyConnection, text: str, source: list[str] | None = None, since: str | None = None,
           until: str | None = None, limit: int = 10) -> tuple[list[str], list[tuple[Any, ...]]]:
    """BM25-ranked articles matching ``text``, with a snippet around the first matching term."""
    load_extension(con, "fts")
    where = ["score IS NOT NULL"]
    params: list[Any] = [text]
    if source:
        where.append("list_contains(?, a.source)")
        params.append(source)
    if since:
        where.append("a.published_date >= CAST(? AS DATE)")
        params.append(since)
    if until:
        where.append("a.published_date <= CAST(? AS DATE)")
        params.append(until)
    params.append(limit)
    # terms are letters and digits only, so the pattern below can be written into the SQL safely
    terms = [t for t in "".join(c if c.isalnum() else " " for c in text).split() if len(t) > 2]
    pattern = "(?i)(" + "|".join(terms or ["^"]) + ")"
    sql = f"""
        WITH scored AS (
            SELECT a.*, {SEARCH_TABLE}.match_bm25(a.article_id, ?) AS score FROM articles a
        )
        SELECT round(score, 3) AS score, a.published_date, a.source, a.title,
               CASE WHEN regexp_matches(a.text, '{pattern}')
                    THEN '…' || trim(substr(a.text, greatest(1, instr(lower(a.text),
                         lower(regexp_extract(a.text, '{pattern}', 1))) - 80), 200)) || '…'
                    ELSE substr(a.text, 1, 200) END AS snippet,
               a.url
        FROM scored a WHERE {' AND '.join(where)}
        ORDER BY score DESC LIMIT ?
    """
    cur = con.execute(sql, params)
    return [d[0] for d in cur.description], cur.fetchall()


def maintain(warehouse: str, prune_raw_days: int = 0, wait: float = 120.0) -> dict[str, Any]:
    """Daily upkeep: load anything spooled, prune old raw bodies if configured, remove or rewrite
    body files that pages no longer (or mostly no longer) refer to, rebuild the search index,
    refresh statistics, checkpoint the WAL into the file."""
    report: dict[str, Any] = {"at": datetime.now(UTC).isoformat()}
    with open_warehouse(warehouse, wait=wait) as con:
        report["spooled_batches_loaded"] = load_spool(con, warehouse)
        if prune_raw_days > 0:
            cutoff = datetime.now(UTC) - timedelta(days=prune_raw_days)
            stored = "fetched_at < ? AND (body_gz IS NOT NULL OR body_file IS NOT NULL)"
            row = con.execute(f"SELECT count(*) FROM pages WHERE {stored}", [cutoff]).fetchone()
            con.execute(f"UPDATE pages SET body_gz = NULL, body_file = NULL WHERE {stored}", [cutoff])
            report["raw_bodies_pruned"] = int(row[0]) if row else 0
        report.update(sweep(con))  # body files of pruned, refetched or never-committed pages
        refresh_search_index(con)
        report["indexed_articles"] = int(con.execute("SELECT count(*) FROM articles").fetchone()[0])  # type: ignore[index]
        con.execute("ANALYZE")
        con.execute("CHECKPOINT")
    return report
