"""``newsdesk serve``: the scheduled deployments, served together from one process.

- ``ingest``: one schedule per enabled source (its cron or interval from the sources file), each
  run ingesting just that source;
- ``maintenance``: daily upkeep;
- ``backfill``: no schedule, parameters only (``newsdesk backfill --deployment`` submits to it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

from flows.config import Settings
from flows.sources import Source, read_sources

__all__ = ["build_deployments", "serve_deployments", "MAINTENANCE_CRON", "schedules_for"]

MAINTENANCE_CRON = "15 3 * * *"


def schedules_for(sources: list[Source]) -> list[Any]:
    from prefect.schedules import Cron, Interval

    out: list[Any] = []
    for s in sources:
        if not s.enabled:
            continue
        params = {"only": [s.name]}
        if s.interval_seconds is not None:
            out.append(Interval(timedelta(seconds=s.interval_seconds), parameters=params, slug=f"source-{s.name}"))
        else:
            out.append(Cron(s.cron or s.schedule, timezone="UTC", parameters=params, slug=f"source-{s.name}"))
    return out


def build_deployments(settings: Settings, sources_file: str) -> list[Any]:
    from prefect.deployments.runner import EntrypointType

    from flows.ingest import backfill_flow, ingest_flow, maintenance_flow

    sources = read_sources(sources_file)
    baked = dataclasses.asdict(settings)
    baked["sources"] = str(Path(sources_file).resolve())
    baked["warehouse"] = str(Path(settings.warehouse).resolve())
    common = {"settings": baked}
    ingest = ingest_flow.to_deployment(
        name="ingest", schedules=schedules_for(sources),
        parameters={**common, "sources_file": baked["sources"]},
        description="Ingest each source on its own schedule.", tags=["newsdesk"],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    maintenance = maintenance_flow.to_deployment(
        name="maintenance", cron=MAINTENANCE_CRON, parameters=common,
        description="Daily upkeep: spooled batches, pruning, search index, checkpoint.", tags=["newsdesk"],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    backfill = backfill_flow.to_deployment(
        name="backfill", parameters={**common, "sources_file": baked["sources"]},
        description="Backfill a date range; submit runs with parameters (no schedule).", tags=["newsdesk"],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    return [ingest, maintenance, backfill]


def serve_deployments(settings: Settings, sources_file: str, limit: int) -> None:
    """Serve until SIGINT or SIGTERM; schedules stay active when the process stops."""
    from prefect import serve

    deployments = build_deployments(settings, sources_file)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    with contextlib.suppress(KeyboardInterrupt):
        serve(*deployments, limit=limit, pause_on_shutdown=False, print_starting_message=False)
