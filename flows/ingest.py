"""The ingest flow: Prefect decorators as a thin layer over the plain steps in ``flows.pipeline``.

Tasks work on batches (discover all sources, fetch a batch, extract a batch, load), never one task
per URL. The transform between extracting and loading is a pure function and runs as a plain call.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import deployment, flow_run
from prefect.utilities.annotations import quote

from flows import pipeline
from flows.config import Settings, load_settings
from flows.sources import read_sources

__all__ = ["ingest_flow", "PREFECT_STEPS"]

_TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


def _quoted_sync(step: Any) -> Callable[..., Any]:
    """Call a task with its arguments wrapped in ``quote``: Prefect then passes them through as they
    are instead of walking every object of a batch (pages, extracted rows and their fields) to look
    for futures, which cost about a quarter of the main process's time."""
    def call(*args: Any) -> Any:
        return step(*(quote(a) for a in args))
    return call


def _quoted_async(step: Any) -> Callable[..., Any]:
    async def call(*args: Any) -> Any:
        return await step(*(quote(a) for a in args))
    return call


@dataclasses.dataclass
class PrefectSteps:
    discover: Any = _quoted_async(task(name="discover-sources", **_TASK_OPTIONS)(pipeline.discover_all))
    fetch: Any = _quoted_async(task(name="fetch-batch", **_TASK_OPTIONS)(pipeline.fetch_batch))
    extract: Any = _quoted_async(task(name="extract-batch", **_TASK_OPTIONS)(pipeline.extract_batch))
    # The transform is a pure function of the batch (polars, no I/O), so it runs as a plain call in the
    # flow: as a task, each call cost about 36 ms of CPU in Prefect's client and server (measured with
    # empty tasks), against 80-160 ms for the transform of a batch of 200 pages itself.
    transform: Any = pipeline.transform_batch
    load: Any = _quoted_sync(task(name="load-batch", **_TASK_OPTIONS)(pipeline.load_frames))


PREFECT_STEPS = PrefectSteps()


@contextlib.contextmanager
def shared_sync_client() -> Iterator[None]:
    """One Prefect sync client for the whole flow run. Without it every call of a sync task
    (transform, load) builds its own: an httpx client with a new SSL context (the CA bundle read
    again) and a version check against the API, about 4% of the main process's time in a large
    ingest. The context is inherited by the thread a write runs in."""
    from prefect.context import SyncClientContext

    with SyncClientContext.get_or_create():
        yield


def _settings(settings: dict[str, Any] | None) -> Settings:
    """Settings passed by the caller, or (for deployment runs) the worker's own layered settings."""
    return Settings(**settings) if settings else load_settings()


def _due_at() -> datetime | None:
    """When a scheduled deployment run was due (None for runs started by hand)."""
    if not deployment.get_id():
        return None
    scheduled = flow_run.get_scheduled_start_time()
    return datetime.fromtimestamp(scheduled.timestamp(), UTC) if scheduled is not None else None


@flow(name="ingest", persist_result=False, validate_parameters=False)
async def ingest_flow(settings: dict[str, Any] | None = None, sources_file: str | None = None,
                      only: list[str] | None = None) -> dict[str, Any]:
    """Discover, fetch, clean, transform and load every enabled source once (or only the named
    sources); returns the run's counts."""
    logger = get_run_logger()
    config = _settings(settings)
    sources = read_sources(sources_file or config.sources)
    if only:
        sources = [s for s in sources if s.name in set(only)]
    run_id = flow_run.get_id() or None
    with shared_sync_client():
        report = await pipeline.run_pipeline(config, sources, steps=PREFECT_STEPS, run_id=run_id,
                                             progress=logger.info, due_at=_due_at() if only else None)
    summary = report.summary()
    if report.status in ("skipped", "caught_up"):
        logger.info("run skipped: %s", report.error)
        return summary
    logger.info(
        "run %s: %d discovered, %d known, %d fetched, %d loaded, %d duplicates, %d failed",
        summary["run_id"], summary["discovered"], summary["known"], summary["fetched"], summary["loaded"],
        summary["duplicates"], summary["failed"],
    )
    return summary


@flow(name="maintenance", persist_result=False, validate_parameters=False)
def maintenance_flow(settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Daily upkeep: load spooled batches, prune old raw bodies if configured, rebuild the search
    index, refresh statistics, checkpoint."""
    from warehouse.lock import run_lock
    from warehouse.upkeep import maintain

    config = _settings(settings)
    with run_lock(config.warehouse, 3600.0, "maintenance"):
        report = maintain(config.warehouse, config.prune_raw_days, wait=config.load_wait,
                          memory_limit=config.load_memory_limit or None)
    get_run_logger().info("maintenance: %s", report)
    return report


@flow(name="backfill", persist_result=False, validate_parameters=False)
async def backfill_flow(request: dict[str, Any], settings: dict[str, Any] | None = None,
                        sources_file: str | None = None) -> dict[str, Any]:
    """Backfill a date range from sitemaps, WARC archives or stored pages; returns counts and partitions."""
    from datetime import date

    from flows.backfill import STOP, BackfillRequest, run_backfill

    logger = get_run_logger()
    config = _settings(settings)
    fields = dict(request)
    fields["since"] = date.fromisoformat(str(fields["since"]))
    fields["until"] = date.fromisoformat(str(fields["until"]))
    req = BackfillRequest(**fields)
    sources = read_sources(sources_file or config.sources) if req.origin == "sitemap" else []
    run_id = flow_run.get_id() or None

    def notify(event: str, data: dict[str, Any]) -> None:
        if event == "partition":
            logger.info("partition %s %s: %s (%s loaded, %s known, %s failed)", data["source"], data["day"],
                        data["state"], data["loaded"], data["known"], data["failed"])
        elif event == "plan":
            logger.info("plan: %(partitions)d partitions, %(to_run)d to run, %(urls)d URLs", data)
        for hook in _PROGRESS_HOOKS:
            hook(event, data)

    with shared_sync_client():
        report = await run_backfill(config, req, sources, steps=PREFECT_STEPS, run_id=run_id, stop=STOP.is_set,
                                    progress=notify)
    summary = report.summary()
    summary["partitions"] = report.partitions
    summary["problems"] = dict(report.problems)
    summary["stopped"] = report.stopped
    return summary


# a caller in the same process (the CLI) may watch progress events
_PROGRESS_HOOKS: list[Any] = []
