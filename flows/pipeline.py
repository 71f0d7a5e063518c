"""The ingest pipeline as plain typed steps: discover, plan, fetch, extract, transform, load.

``flows.ingest`` wraps these steps as Prefect tasks; ``run_pipeline`` composes them and takes the
step implementations as a parameter, so the same orchestration runs with or without Prefect.
Every discovered URL ends this run with exactly one recorded outcome, or is counted as ``known``
when an earlier run already settled it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import duckdb
import polars as pl

from flows.clean import EXTRACTOR, EXTRACTOR_VERSION, Extractor
from flows.config import Settings
from flows.discover import Candidate, Discovery, discover_source
from flows.fetch import TRANSIENT_OUTCOMES, Fetcher, FetchResult, HostPolicy, classify_page
from flows.pagecache import PageCache
from flows.sources import Source
from flows.urls import article_id, canonical_url, host_of
from transforms.articles import EXTRACTED_SCHEMA, build_articles
from transforms.fields import field_frames
from warehouse.bodystore import BodyStoreError
from warehouse.connection import WarehouseBusy, WarehouseError, open_warehouse
from warehouse.faults import fault_point
from warehouse.load import (
    OUTCOME_SCHEMA,
    PAGE_SCHEMA,
    finish_run,
    known_urls,
    load_batch,
    save_source_state,
    start_run,
)
from warehouse.lock import RunLockBusy, run_lock
from warehouse.upkeep import load_spool, refresh_search_index, spool_batch, spool_run_record

__all__ = ["IngestReport", "Planned", "PlainSteps", "plan_candidates", "run_pipeline", "PLAIN_STEPS"]

log = logging.getLogger("newsdesk")


@dataclass
class Planned:
    candidate: Candidate
    canonical: str | None
    outcome: str | None = None  # set when decided without fetching (duplicate, bad_url)
    detail: str = ""


@dataclass
class IngestReport:
    run_id: str
    status: str = "running"
    counts: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    sources: list[dict[str, Any]] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ended_at: datetime | None = None
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            **{k: self.counts.get(k, 0) for k in ("sources", "discovered", "known", "fetched", "loaded",
                                                   "duplicates", "failed")},
            "outcomes": dict(sorted(self.outcomes.items())),
            "seconds": round(((self.ended_at or datetime.now(UTC)) - self.started_at).total_seconds(), 3),
        }


# -- steps ---------------------------------------------------------------------------------------------
async def discover_all(fetcher: Fetcher, sources: list[Source], state: dict[str, dict[str, Any]]) -> list[Discovery]:
    """Discover every source concurrently; one source's failure is recorded, not raised."""

    async def one(source: Source) -> Discovery:
        known = state.get(source.name) or {}
        # the stored ETag / Last-Modified apply only while the source still has the same URL
        validators = {k: known[k] for k in ("etag", "last_modified") if known.get(k)} \
            if known.get("url") == source.url else None
        return await discover_source(fetcher, source, validators, cross_host=fetcher.settings.sitemap_cross_host)

    return list(await asyncio.gather(*(one(s) for s in sources)))


def plan_candidates(candidates: list[Candidate]) -> list[Planned]:
    """Canonicalise and deduplicate within the batch; the first spelling of a canonical URL wins,
    preferring the one already canonical."""
    planned: list[Planned] = []
    first_for: dict[str, int] = {}
    seen_raw: set[str] = set()
    for cand in candidates:
        if cand.url in seen_raw:
            continue  # the same string listed twice (e.g. by two feeds): one discovered URL
        seen_raw.add(cand.url)
        try:
            canon = canonical_url(cand.url)
        except ValueError as exc:
            planned.append(Planned(cand, None, "bad_url", str(exc)))
            continue
        if canon in first_for:
            holder = planned[first_for[canon]]
            if cand.url == canon and holder.candidate.url != canon:
                # swap: the canonical spelling is fetched, the earlier variant becomes the duplicate
                holder.outcome, holder.detail = "duplicate", canon
                planned.append(Planned(_merge(cand, holder.candidate), canon))
                first_for[canon] = len(planned) - 1
            else:
                planned.append(Planned(cand, canon, "duplicate", canon))
                holder.candidate = _merge(holder.candidate, cand)
            continue
        first_for[canon] = len(planned)
        planned.append(Planned(cand, canon))
    return planned


def _merge(primary: Candidate, other: Candidate) -> Candidate:
    """Keep what the other listing knew that the primary did not (a feed date, a title)."""
    if primary.published is None and other.published is not None:
        primary.published, primary.date_source = other.published, other.date_source
    primary.title = primary.title or other.title
    primary.guid = primary.guid or other.guid
    return primary


def outcome_row(p: Planned, outcome: str, run_id: str, *, detail: str = "", status: int | None = None,
                attempts: int = 0, art_id: str | None = None) -> dict[str, Any]:
    c = p.candidate
    return {
        "url": c.url, "canonical_url": p.canonical or c.url, "source": c.source, "outcome": outcome,
        "detail": detail or None, "http_status": status, "attempts": attempts, "article_id": art_id,
        "updated_at": datetime.now(UTC), "run_id": run_id, "feed_title": c.title, "feed_published": c.published,
        "feed_date_source": c.date_source, "guid": c.guid,
    }


class PageSource(Protocol):
    """Where pages come from: the network (``Fetcher``) or pages already at hand (archives, storage)."""

    settings: Settings

    async def fetch_many(self, urls: list[str], headers: Any = None) -> list[FetchResult]: ...


@dataclass
class Fetched:
    planned: Planned
    result: FetchResult


async def fetch_batch(fetcher: PageSource, batch: list[Planned]) -> list[Fetched]:
    """Fetch a batch. Pages a crashed run fetched but never loaded come from the page cache, and
    every page fetched here is kept there until its batch is loaded."""
    if isinstance(fetcher, Fetcher):
        with PageCache(fetcher.settings.warehouse) as cache:
            found = {p.candidate.url: cache.get(p.candidate.url) for p in batch}
            missing = [p.candidate.url for p in batch if found.get(p.candidate.url) is None]

            async def fetch_and_keep(url: str) -> FetchResult:
                result = await fetcher.fetch(url)
                cache.put(result)  # kept the moment it arrives
                fault_point("after_fetch")
                return result

            fetched = dict(zip(missing, await asyncio.gather(*(fetch_and_keep(u) for u in missing)), strict=True))
    else:
        found = {}
        urls = [p.candidate.url for p in batch]
        fetched = dict(zip(urls, await fetcher.fetch_many(urls), strict=True))
    out = []
    for p in batch:
        r = found.get(p.candidate.url) or fetched[p.candidate.url]
        out.append(Fetched(p, classify_page(r, fetcher.settings.max_bytes)))
    return out


async def extract_batch(extractor: Extractor, fetched: list[Fetched]) -> list[dict[str, Any]]:
    items = [
        {"url": f.planned.candidate.url, "final_url": f.result.final_url, "body": f.result.body,
         "content_type": f.result.headers.get("content-type", ""),
         "has_source_date": f.planned.candidate.published is not None,
         # the server's gzip stream is stored as it came: the worker need not compress the body
         "keep_body": f.result.body_gzip is None}
        for f in fetched if f.result.ok
    ]
    return await extractor.extract(items)


NON_ARTICLE_TYPES = frozenset({"website", "profile"})


def looks_like_article(extracted: dict[str, Any]) -> bool:
    """A section front or an about page, not an article: the page calls itself a website or profile
    (Open Graph), has neither a published-time meta tag nor a structured-data article, and its text
    is short or mostly a list of teasers."""
    if extracted.get("ld_article") or extracted.get("page_timestamp"):
        return True
    if extracted.get("pagetype") not in NON_ARTICLE_TYPES:
        return True
    text = extracted.get("text") or ""
    lines = [line for line in text.splitlines() if line.strip()]
    teasers = sum(line.lstrip().startswith(("- ", "* ")) for line in lines)
    return len(text) >= 1000 and teasers < 0.3 * max(1, len(lines))


@dataclass
class BatchFrames:
    articles: pl.DataFrame
    pages: pl.DataFrame
    outcomes: pl.DataFrame
    counts: Counter[str]
    fields: dict[str, pl.DataFrame] = field(default_factory=dict)  # quotes, entities, amounts, datelines

    def tables(self) -> dict[str, pl.DataFrame]:
        return {"articles": self.articles, "pages": self.pages, "outcomes": self.outcomes, **self.fields}


def transform_batch(fetched: list[Fetched], extracted: list[dict[str, Any]], run_id: str, settings: Settings,
                    seen_articles: set[str]) -> BatchFrames:
    """Decide each fetched URL's outcome and build the typed frames to load."""
    by_url = {e["url"]: e for e in extracted}
    outcome_rows: list[dict[str, Any]] = []
    page_rows: list[dict[str, Any]] = []
    extracted_rows: list[dict[str, Any]] = []
    field_rows: list[tuple[str, dict[str, Any]]] = []
    counts: Counter[str] = Counter()
    for f in fetched:
        p, r = f.planned, f.result
        if not r.ok:
            outcome_rows.append(outcome_row(p, r.outcome, run_id, detail=r.detail, status=r.status, attempts=r.attempts))
            continue
        counts["fetched"] += 1
        e = by_url[p.candidate.url]
        try:
            final_canon = canonical_url(r.final_url)
        except ValueError:
            final_canon = p.canonical or p.candidate.url
        art = article_id(final_canon)
        if r.headers.get("x-newsdesk-origin") != "raw":  # a stored page re-extracted is not stored again
            page_rows.append({
                "canonical_url": final_canon, "url": p.candidate.url, "final_url": r.final_url,
                "source": p.candidate.source, "status": r.status, "headers": json.dumps(r.headers, sort_keys=True),
                "encoding": e.get("encoding"),
                "body_gz": e["body_gz"] if e.get("body_gz") is not None else r.body_gzip,
                "body_bytes": len(r.body or b""),
                "fetched_at": r.fetched_at, "run_id": run_id,
            })
        if e.get("extract_error"):
            outcome_rows.append(outcome_row(p, "extract_error", run_id, detail=e["extract_error"], status=r.status,
                                            attempts=r.attempts))
            continue
        text = e.get("text") or ""
        if len(text.strip()) < settings.min_text_chars:
            outcome_rows.append(outcome_row(p, "no_text", run_id, detail=f"{len(text.strip())} characters of text",
                                            status=r.status, attempts=r.attempts))
            continue
        if not looks_like_article(e):
            outcome_rows.append(outcome_row(p, "not_article", run_id, detail=f"page type {e.get('pagetype')}, no published time",
                                            status=r.status, attempts=r.attempts))
            continue
        if final_canon in seen_articles:
            outcome_rows.append(outcome_row(p, "duplicate", run_id, detail=final_canon, status=r.status,
                                            attempts=r.attempts, art_id=art))
            continue
        seen_articles.add(final_canon)
        outcome_rows.append(outcome_row(p, "loaded", run_id, status=r.status, attempts=r.attempts, art_id=art))
        fields = e.get("fields") or {}
        field_rows.append((art, fields))
        byline = fields.get("byline") or {}
        c = p.candidate
        extracted_rows.append({
            "article_id": art, "url": final_canon, "final_url": r.final_url, "source": c.source, "run_id": run_id,
            "guid": c.guid, "feed_title": c.title, "feed_published": c.published, "feed_date_source": c.date_source,
            "fetched_at": r.fetched_at, "title": e.get("title"), "authors": e.get("authors") or [],
            "sitename": e.get("sitename"), "description": e.get("description"),
            "categories": e.get("categories") or [], "tags": e.get("tags") or [], "text": text,
            "html_lang": e.get("html_lang"), "page_date": e.get("page_date"),
            "page_date_source": e.get("page_date_source"), "page_timestamp": e.get("page_timestamp"),
            "byline_authors": byline.get("byline_authors") or [], "text_date": byline.get("text_date"),
            "dateline_place": byline.get("dateline_place"),
            "extractor": EXTRACTOR, "extractor_version": EXTRACTOR_VERSION,
        })
    articles = build_articles(pl.DataFrame(extracted_rows, schema=EXTRACTED_SCHEMA))
    pages = pl.DataFrame(page_rows, schema=PAGE_SCHEMA)
    outcomes = pl.DataFrame(outcome_rows, schema=OUTCOME_SCHEMA)
    return BatchFrames(articles, pages, outcomes, counts, field_frames(field_rows))


def load_frames(settings: Settings, frames: BatchFrames) -> None:
    """Load one batch, waiting up to ``load_wait`` for a warehouse held by a reader. If it stays busy
    the batch is spooled to disk (loaded by the next run, so nothing is fetched twice) and the run
    fails with the reason."""
    urls = frames.outcomes["url"].to_list()
    try:
        with open_warehouse(settings.warehouse, wait=settings.load_wait,
                            memory_limit=settings.load_memory_limit or None,
                            threads=settings.load_threads or None) as con:
            load_batch(con, frames.articles, frames.pages, frames.outcomes, frames.fields)
    except WarehouseBusy:
        where = spool_batch(settings.warehouse, frames.tables())
        PageCache(settings.warehouse).drop(urls)
        raise WarehouseBusy(f"warehouse {settings.warehouse} stayed busy for {settings.load_wait:g}s; "
                            f"the batch is kept in {where} and loads with the next run") from None
    except (duckdb.Error, BodyStoreError) as exc:  # e.g. a full disk: nothing of this batch is committed,
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__  # its pages stay cached
        raise WarehouseError(f"cannot write to warehouse {settings.warehouse}: {first} "
                             "(the fetched pages are kept for the next run)") from None
    PageCache(settings.warehouse).drop(urls)


# -- orchestration --------------------------------------------------------------------------------------
@dataclass
class PlainSteps:
    """The step implementations ``run_pipeline`` composes; ``flows.ingest`` swaps in Prefect tasks."""

    discover: Any = discover_all
    fetch: Any = fetch_batch
    extract: Any = extract_batch
    transform: Any = transform_batch
    load: Any = load_frames


PLAIN_STEPS = PlainSteps()


def host_policies(sources: list[Source], candidates: list[Candidate]) -> dict[str, HostPolicy]:
    """Per-source politeness overrides apply to the source's own host and its articles' hosts."""
    by_name = {s.name: s for s in sources}
    policies: dict[str, HostPolicy] = {}

    def apply(host: str, s: Source) -> None:
        if s.concurrency is None and s.delay is None:
            return
        current = policies.get(host)
        conc = s.concurrency if s.concurrency is not None else (current.concurrency if current else 0)
        delay = s.delay if s.delay is not None else (current.delay if current else -1.0)
        if current:  # two sources on one host: the more careful setting wins
            conc = min(c for c in (conc, current.concurrency) if c > 0) if conc > 0 or current.concurrency > 0 else 0
            delay = max(delay, current.delay)
        policies[host] = HostPolicy(conc, delay)

    for s in sources:
        apply(host_of(s.url), s)
    for c in candidates:
        owner = by_name.get(c.source)
        if owner is not None:
            apply(host_of(c.url), owner)
    return policies


def _fill_policies(policies: dict[str, HostPolicy], settings: Settings) -> dict[str, HostPolicy]:
    return {
        h: HostPolicy(p.concurrency if p.concurrency > 0 else settings.host_concurrency,
                      p.delay if p.delay >= 0 else settings.host_delay)
        for h, p in policies.items()
    }


async def run_pipeline(settings: Settings, sources: list[Source], steps: Any = PLAIN_STEPS,
                       run_id: str | None = None, flow_name: str = "ingest",
                       progress: Callable[[str], None] | None = None,
                       lock_wait: float | None = None, due_at: datetime | None = None) -> IngestReport:
    """Run one ingest over ``sources`` into the configured warehouse and return its report.

    Runs against one warehouse never overlap: when another run holds it longer than ``lock_wait``
    (default ``settings.run_lock_wait``), this run is recorded as ``skipped`` and returns.
    A scheduled run passes ``due_at``: if, once it holds the lock, every one of its sources has run
    since then, it is recorded as ``caught_up`` and does nothing (a backlog of late runs after
    downtime becomes one run of real work).
    Raises WarehouseError when the warehouse cannot be opened or written.
    """
    report = IngestReport(run_id or uuid.uuid4().hex)
    say = progress or (lambda msg: log.info(msg))
    enabled = [s for s in sources if s.enabled]
    report.counts["sources"] = len(enabled)
    params = {"sources": [s.name for s in enabled], "warehouse": settings.warehouse}
    wait = settings.run_lock_wait if lock_wait is None else lock_wait
    try:
        with run_lock(settings.warehouse, wait, f"{flow_name} {report.run_id}"):
            await _locked_run(settings, enabled, steps, report, params, flow_name, say, due_at)
    except RunLockBusy as exc:
        report.status, report.error, report.ended_at = "skipped", str(exc), datetime.now(UTC)
        say(f"skipped: {exc}")
        record_run(settings, report.run_id, flow_name, "skipped", params, report.error, report.started_at)
    return report


def record_run(settings: Settings, run_id: str, flow_name: str, status: str, params: dict[str, Any],
               reason: str | None, started_at: datetime | None = None) -> None:
    """A run that did no work (skipped, caught up) still leaves its row."""
    started = started_at or datetime.now(UTC)
    rid = run_id or uuid.uuid4().hex
    with open_warehouse(settings.warehouse, wait=settings.load_wait) as con:
        start_run(con, rid, flow_name, started, params)
        finish_run(con, rid, datetime.now(UTC), status, {}, {}, reason)


async def _locked_run(settings: Settings, enabled: list[Source], steps: Any, report: IngestReport,
                      params: dict[str, Any], flow_name: str, say: Callable[[str], None],
                      due_at: datetime | None = None) -> None:
    with open_warehouse(settings.warehouse, wait=settings.load_wait) as con:
        spooled = load_spool(con, settings.warehouse)
        if spooled:
            say(f"loaded {spooled} batch(es) kept from an earlier run")
        state = source_health(con)
    if due_at is not None and enabled and all(
        (last := state.get(s.name, {}).get("last_run_at")) is not None and last >= due_at for s in enabled
    ):
        report.status, report.error, report.ended_at = "caught_up", "a later run already covered these sources", \
            datetime.now(UTC)
        say(f"caught up: {', '.join(s.name for s in enabled)} ran after this run was due")
        record_run(settings, report.run_id, flow_name, "caught_up", params, report.error, report.started_at)
        return
    PageCache(settings.warehouse).prune()
    with open_warehouse(settings.warehouse, wait=settings.load_wait) as con:
        start_run(con, report.run_id, flow_name, report.started_at, params)
    now = datetime.now(UTC)
    resting = [s for s in enabled if (until := backoff_until(state.get(s.name), settings)) and until > now]
    for s in resting:
        say(f"source {s.name} is backing off after {state[s.name]['consecutive_failures']} failures in a row")
    active = [s for s in enabled if s not in resting]
    report.counts["backoff"] = len(resting)
    try:
        await _ingest(settings, active, steps, report, state, say)
        report.status = "completed"
    except BaseException as exc:
        report.status = "failed"
        report.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        raise
    finally:
        report.ended_at = datetime.now(UTC)
        try:
            with open_warehouse(settings.warehouse, wait=settings.load_wait if report.status == "completed"
                                else settings.busy_timeout, memory_limit=settings.load_memory_limit or None,
                                threads=settings.load_threads or None) as con:
                finish_run(con, report.run_id, report.ended_at, report.status, dict(report.counts),
                           dict(report.outcomes), report.error)
                if report.sources:
                    save_source_state(con, report.sources)
                if report.counts.get("loaded") and settings.search_index == "after_run":
                    refresh_search_index(con)
        except Exception as exc:  # the run's own failure is more informative; keep it
            if report.status == "completed":
                raise
            spool_run_record(settings.warehouse, {
                "run_id": report.run_id, "flow": flow_name, "started_at": report.started_at,
                "ended_at": report.ended_at, "status": report.status, "error": report.error})
            log.warning("could not record the failed run in the warehouse (%s); it is spooled", exc)


def source_health(con: Any) -> dict[str, dict[str, Any]]:
    rows = con.execute(
        "SELECT source, url, etag, last_modified, consecutive_failures, last_run_at FROM source_state"
    ).fetchall()
    return {r[0]: {"url": r[1], "etag": r[2], "last_modified": r[3], "consecutive_failures": r[4] or 0,
                   "last_run_at": r[5]} for r in rows}


FAILURES_BEFORE_BACKOFF = 3


def backoff_until(state: dict[str, Any] | None, settings: Settings) -> datetime | None:
    """When a failing source may be tried again: after 3 failures in a row, wait ``failure_backoff``,
    doubling with each further failure, at most a day."""
    if not state or state.get("consecutive_failures", 0) < FAILURES_BEFORE_BACKOFF or not state.get("last_run_at"):
        return None
    extra = state["consecutive_failures"] - FAILURES_BEFORE_BACKOFF
    delay = min(settings.failure_backoff * (2**extra), 86400.0)
    last: datetime = state["last_run_at"]
    return last + timedelta(seconds=delay)


def triage(settings: Settings, planned: list[Planned], report: IngestReport, retry_outcomes: frozenset[str],
           force: bool = False) -> tuple[list[Planned], list[dict[str, Any]], set[str]]:
    """Split planned URLs into those to process and those already decided.

    One keyed lookup against the warehouse decides which URLs earlier runs settled (their outcome is
    not in ``retry_outcomes``); those are counted as ``known`` and get no new outcome. With ``force``
    nothing counts as settled (re-fetch or re-extract everything).
    """
    to_fetch = [p for p in planned if p.outcome is None]
    known_raw: set[str] = set()
    known_canon: set[str] = set()
    if not force:
        with open_warehouse(settings.warehouse, wait=settings.busy_timeout) as con:
            known_raw, known_canon = known_urls(
                con, [p.candidate.url for p in planned], [p.canonical for p in to_fetch if p.canonical],
                retry_outcomes,
            )
    decided_rows = []
    queue: list[Planned] = []
    for p in planned:
        if p.candidate.url in known_raw:
            report.counts["known"] += 1
        elif p.outcome is not None:
            decided_rows.append(outcome_row(p, p.outcome, report.run_id, detail=p.detail))
        elif p.canonical in known_canon:
            decided_rows.append(outcome_row(p, "duplicate", report.run_id, detail=f"{p.canonical} already stored"))
        else:
            queue.append(p)
    return queue, decided_rows, known_canon


async def process_queue(settings: Settings, steps: Any, fetcher: PageSource, extractor: Extractor,
                        queue: list[Planned], decided_rows: list[dict[str, Any]], report: IngestReport,
                        seen_articles: set[str], say: Callable[[str], None],
                        stop: Callable[[], bool] | None = None,
                        on_batch: Callable[[BatchFrames], None] | None = None,
                        window: int = 2, batches: list[list[Planned]] | None = None,
                        on_start: Callable[[int], None] | None = None,
                        on_write: Callable[[list[int]], None] | None = None) -> bool:
    """Fetch, extract, transform and load ``queue`` in batches.

    Up to ``window`` batches are in flight: while one batch is transformed here, the next is
    fetched and extracted in the worker pool, so the cores never wait for the loader. Transformed
    batches are loaded in order, several at a time: once ``settings.load_batch_size`` URLs are
    waiting, once ``settings.load_interval`` seconds have passed since the last write, when only the
    last batch is still being extracted, and at the end (every write of the warehouse ends with a
    checkpoint whose cost barely depends on its size, so fewer, larger writes are much cheaper).
    Each write runs in a thread, one at a time, while this loop goes on fetching and extracting.
    Pages stay in the page cache until their batch is written.
    Returns False when ``stop()`` asked to stop (batches already started are finished and loaded
    first).

    ``batches`` replaces the even cut of ``queue`` (a backfill cuts at partition-group boundaries);
    ``on_start(i)`` is called as batch ``i`` is started, ``on_batch(frames)`` after a batch is
    written (with its outcomes and counts; its other frames are released before the write), and
    ``on_write(indexes)`` after each write with the indexes of the batches it stored."""
    if batches is None:
        batches = [queue[i : i + settings.batch_size] for i in range(0, len(queue), settings.batch_size)]
    if decided_rows and not batches:
        batches = [[]]

    async def produce(batch: list[Planned]) -> tuple[list[Fetched], list[dict[str, Any]]]:
        fetched = await steps.fetch(fetcher, batch)
        return fetched, await steps.extract(extractor, fetched)

    def start(index: int) -> asyncio.Future[tuple[list[Fetched], list[dict[str, Any]]]]:
        if on_start is not None:
            on_start(index)
        return asyncio.ensure_future(produce(batches[index]))

    in_flight: collections.deque[asyncio.Future[tuple[list[Fetched], list[dict[str, Any]]]]] = collections.deque(
        start(i) for i in range(min(window, len(batches)))
    )
    waiting: list[tuple[int, BatchFrames]] = []
    last_write = time.monotonic()
    writer: asyncio.Future[None] | None = None  # the write in progress, if any

    async def write_parts(parts: list[tuple[int, BatchFrames]]) -> None:
        # the warehouse write runs in a thread, so this loop keeps the workers fed meanwhile (a write
        # of a thousand URLs takes about a second, longer than the chunks queued for the workers last)
        merged = merge_frames([frames for _, frames in parts])
        # only the batches' outcomes and counts are read after the write: their other frames are let
        # go now, so that a write holds one copy of its rows while the next batches are transformed
        parts = [(index, BatchFrames(pl.DataFrame(), pl.DataFrame(), frames.outcomes, frames.counts))
                 for index, frames in parts]
        await asyncio.to_thread(steps.load, settings, merged)
        del merged
        for index, frames in parts:
            report.counts.update(frames.counts)
            batch_outcomes = Counter(frames.outcomes["outcome"].to_list())
            report.outcomes.update(batch_outcomes)
            if on_batch is not None:
                on_batch(frames)
            say(f"batch {index + 1}/{len(batches)}: {batch_outcomes.get('loaded', 0)} loaded, "
                f"{sum(batch_outcomes.values())} URLs settled")
        if on_write is not None:
            await asyncio.to_thread(on_write, [index for index, _ in parts])

    async def write() -> None:
        """Start writing the waiting batches once the previous write is done (writes stay in order)."""
        nonlocal writer, last_write
        await settle()
        if not waiting:
            return
        parts = list(waiting)
        waiting.clear()
        last_write = time.monotonic()
        writer = asyncio.ensure_future(write_parts(parts))

    async def settle() -> None:
        nonlocal writer
        if writer is not None:
            # shielded, and forgotten only once it has ended: a cancelled run still waits for the
            # write under way (its thread cannot be stopped) and never starts another beside it; a
            # failed write raises again wherever it is awaited, so nothing is written after it
            await asyncio.shield(writer)
            writer = None

    started = len(in_flight)
    stopped = False
    try:
        for index in range(len(batches)):
            if not in_flight:
                break
            # popped, so a finished batch's pages are freed once it is loaded
            fetched, extracted = await in_flight.popleft()
            if started < len(batches) and not stopped:
                if stop and stop():
                    stopped = True
                else:
                    in_flight.append(start(started))
                    started += 1
            frames = steps.transform(fetched, extracted, report.run_id, settings, seen_articles)
            del fetched, extracted
            if index == 0 and decided_rows:
                frames.outcomes = pl.concat([frames.outcomes, pl.DataFrame(decided_rows, schema=OUTCOME_SCHEMA)])
            waiting.append((index, frames))
            if (sum(f.outcomes.height for _, f in waiting) >= settings.load_batch_size
                    or time.monotonic() - last_write >= settings.load_interval
                    or (len(in_flight) == 1 and (started == len(batches) or stopped))):
                # the last condition: only the last batch is still to come, so what is waiting is
                # written while it is extracted, and the final write (with idle workers) holds it alone
                await write()
    except BaseException:
        # a later batch failed: what is already transformed is still written (unless a write
        # itself is what failed: then nothing more is), then the failure goes on
        for future in in_flight:
            future.cancel()
        with contextlib.suppress(Exception):
            await settle()
        if waiting:
            with contextlib.suppress(Exception):
                await write()
                await settle()
        raise
    await write()
    await settle()
    return not stopped or started == len(batches)


def merge_frames(parts: list[BatchFrames]) -> BatchFrames:
    """Several transformed batches as one (for one warehouse write)."""
    if len(parts) == 1:
        return parts[0]

    def stack(frames: list[pl.DataFrame]) -> pl.DataFrame:
        frames = [f for f in frames if f.width]
        return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()

    counts: Counter[str] = Counter()
    for part in parts:
        counts.update(part.counts)
    names = sorted({name for part in parts for name in part.fields})
    return BatchFrames(
        articles=stack([p.articles for p in parts]), pages=stack([p.pages for p in parts]),
        outcomes=stack([p.outcomes for p in parts]), counts=counts,
        fields={name: stack([p.fields[name] for p in parts if name in p.fields]) for name in names})


def finish_counts(report: IngestReport) -> None:
    report.counts["loaded"] = report.outcomes.get("loaded", 0)
    report.counts["duplicates"] = report.outcomes.get("duplicate", 0)
    report.counts["failed"] = sum(n for o, n in report.outcomes.items() if o not in ("loaded", "duplicate"))


async def _ingest(settings: Settings, sources: list[Source], steps: Any, report: IngestReport,
                  state: dict[str, dict[str, Any]], say: Callable[[str], None]) -> None:
    source_policies = _fill_policies(host_policies(sources, []), settings)
    async with Fetcher(settings, source_policies) as fetcher:
        discoveries = await steps.discover(fetcher, sources, state)
        by_name = {s.name: s for s in sources}
        candidates = [c for d in discoveries for c in d.candidates]
        fetcher.host_policies.update(_fill_policies(host_policies(sources, candidates), settings))
        planned = plan_candidates(candidates)
        report.counts["discovered"] = len(planned)
        say(f"discovered {len(planned)} URLs from {len(sources)} sources")
        queue, decided_rows, known_canon = triage(settings, planned, report, TRANSIENT_OUTCOMES)
        per_source_new: Counter[str] = Counter(p.candidate.source for p in queue)
        per_source_loaded: Counter[str] = Counter()

        def count_loaded(frames: BatchFrames) -> None:
            for src, outcome in zip(frames.outcomes["source"].to_list(), frames.outcomes["outcome"].to_list(),
                                    strict=True):
                if outcome == "loaded":
                    per_source_loaded[src] += 1

        with Extractor(settings.worker_count if len(queue) > 8 else 1, settings.extraction_mode) as extractor:
            extractor.warm()  # the workers start up while the first batch is fetched
            await process_queue(settings, steps, fetcher, extractor, queue, decided_rows, report, set(known_canon),
                                say, on_batch=count_loaded)

    finish_counts(report)
    now = datetime.now(UTC)
    for d in discoveries:
        s = by_name[d.source]
        report.sources.append({
            "source": s.name, "kind": s.kind, "url": s.url, "run_id": report.run_id, "at": now,
            "status": d.status, "detail": d.detail or None, "discovered": len(d.candidates),
            "new": per_source_new.get(s.name, 0), "loaded": per_source_loaded.get(s.name, 0),
            "etag": d.etag, "last_modified": d.last_modified,
        })
