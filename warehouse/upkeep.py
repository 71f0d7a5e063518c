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
from warehouse.connection import open_warehouse
from warehouse.load import FIELD_TABLES, load_batch
from warehouse.search import compact_search_index, has_search_index, refresh_search_index, search

__all__ = ["spool_dir", "spool_batch", "load_spool", "refresh_search_index", "has_search_index", "search", "maintain"]

log = logging.getLogger("newsdesk")


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


def maintain(warehouse: str, prune_raw_days: int = 0, wait: float = 120.0,
             memory_limit: str | None = None) -> dict[str, Any]:
    """Daily upkeep: load anything spooled, prune old raw bodies if configured, remove or rewrite
    body files that pages no longer (or mostly no longer) refer to, bring the search index up to
    date and store its terms in order, refresh statistics, checkpoint the WAL into the file."""
    report: dict[str, Any] = {"at": datetime.now(UTC).isoformat()}
    with open_warehouse(warehouse, wait=wait, memory_limit=memory_limit) as con:
        report["spooled_batches_loaded"] = load_spool(con, warehouse)
        if prune_raw_days > 0:
            cutoff = datetime.now(UTC) - timedelta(days=prune_raw_days)
            stored = "fetched_at < ? AND (body_gz IS NOT NULL OR body_file IS NOT NULL)"
            row = con.execute(f"SELECT count(*) FROM pages WHERE {stored}", [cutoff]).fetchone()
            con.execute(f"UPDATE pages SET body_gz = NULL, body_file = NULL WHERE {stored}", [cutoff])
            report["raw_bodies_pruned"] = int(row[0]) if row else 0
        report.update(sweep(con))  # body files of pruned, refetched or never-committed pages
        refresh_search_index(con)
        report["search_terms_sorted"] = compact_search_index(con)
        report["indexed_articles"] = int(con.execute("SELECT count(*) FROM articles").fetchone()[0])  # type: ignore[index]
        con.execute("ANALYZE")
        con.execute("CHECKPOINT")
    return report
