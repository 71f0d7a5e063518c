"""Per-source health for ``newsdesk status``: last and next run, recent articles, failures, backoff."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flows.config import Settings
from flows.pipeline import backoff_until
from flows.sources import Source
from warehouse.connection import open_warehouse

__all__ = ["next_run", "source_status", "STATUS_COLUMNS"]

STATUS_COLUMNS = ["source", "enabled", "schedule", "last_run_at", "next_run_at", "last_status", "articles_24h",
                  "failures_24h", "consecutive_failures", "backoff_until", "last_success_at", "last_detail"]


def next_run(source: Source, last_run: datetime | None, now: datetime | None = None) -> datetime | None:
    """The next scheduled time after now (cron), or last run + interval (interval schedules)."""
    now = now or datetime.now(UTC)
    if not source.enabled:
        return None
    if source.interval_seconds is not None:
        if last_run is None:
            return now
        return max(now, last_run + timedelta(seconds=source.interval_seconds))
    from cronsim import CronSim

    return next(CronSim(source.cron or source.schedule, now.replace(second=0, microsecond=0)))


def source_status(settings: Settings, sources: list[Source]) -> tuple[list[str], list[list[Any]]]:
    state: dict[str, dict[str, Any]] = {}
    recent: dict[str, int] = {}
    failures: dict[str, dict[str, int]] = {}
    if Path(settings.warehouse).exists():
        since = datetime.now(UTC) - timedelta(hours=24)
        with open_warehouse(settings.warehouse, read_only=True, wait=settings.busy_timeout) as con:
            for row in con.execute(
                "SELECT source, last_run_at, last_status, consecutive_failures, last_success_at, last_detail "
                "FROM source_state"
            ).fetchall():
                state[row[0]] = {"last_run_at": row[1], "last_status": row[2], "consecutive_failures": row[3] or 0,
                                 "last_success_at": row[4], "last_detail": row[5]}
            recent = dict(con.execute(
                "SELECT source, count(*) FROM articles WHERE fetched_at >= ? GROUP BY 1", [since]).fetchall())
            for source, outcome, n in con.execute(
                "SELECT source, outcome, count(*) FROM url_outcomes WHERE updated_at >= ? "
                "AND outcome NOT IN ('loaded', 'duplicate') GROUP BY 1, 2 ORDER BY 3 DESC", [since]
            ).fetchall():
                failures.setdefault(source, {})[outcome] = n
    rows = []
    for s in sources:
        st = state.get(s.name, {})
        until = backoff_until(st, settings)
        rows.append([
            s.name, s.enabled, s.schedule, st.get("last_run_at"), next_run(s, st.get("last_run_at")),
            st.get("last_status"), recent.get(s.name, 0), json.dumps(failures.get(s.name, {})),
            st.get("consecutive_failures", 0), until if until and until > datetime.now(UTC) else None,
            st.get("last_success_at"), st.get("last_detail"),
        ])
    return STATUS_COLUMNS, rows
