"""Backfills: any date range, from sitemaps, WARC archives or the warehouse's stored pages.

Work is split into partitions, one per (source, publication day) as the sitemap, archive or stored
page dates it ("undated" when no date is known). Each partition's state lives in
``backfill_partitions``; a rerun skips partitions that are done, so a killed backfill resumes where
it stopped, and every write merges on stable keys, so running a backfill twice changes nothing.
Each article is stored under the publication date found in its page (``articles.published_date``
with ``published_at_source``), which may differ from the date used to plan its partition.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
import uuid
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import duckdb
import httpx

from flows.clean import EXTRACTOR_VERSION, Extractor, url_date
from flows.config import Settings
from flows.discover import Candidate, discover_source
from flows.fetch import TRANSIENT_OUTCOMES, Fetcher, FetchResult
from flows.pipeline import (
    PLAIN_STEPS,
    BatchFrames,
    IngestReport,
    finish_counts,
    plan_candidates,
    process_queue,
    triage,
)
from flows.sources import Source
from transforms import TRANSFORM_VERSION
from warehouse.connection import open_warehouse
from warehouse.load import finish_run, start_run
from warehouse.lock import run_lock

__all__ = ["BackfillRequest", "PartitionPlan", "run_backfill", "plan_backfill", "BackfillError", "ORIGINS", "MODES",
           "read_warc_records"]

log = logging.getLogger("newsdesk")

ORIGINS = ("sitemap", "warc", "raw")
MODES = ("missing", "failed", "all")
UNDATED = "undated"
WARC_MAX_RECORD = 20 * 1024 * 1024


STOP = threading.Event()  # set by a signal handler: stop cleanly after the current batch


class BackfillError(ValueError):
    """A backfill request that cannot be carried out (bad range, unknown source, unreadable WARC)."""


@dataclass
class BackfillRequest:
    since: date
    until: date
    origin: str = "sitemap"
    sources: list[str] = field(default_factory=list)  # names; empty = all eligible
    warc: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)  # WARC host filter
    reprocess: str = "missing"
    newest_first: bool = False
    parallel: int = 4  # partitions worked at once
    dry_run: bool = False
    include_undated: bool = True
    outdated_only: bool = False  # raw: only rows made by older extractor/transform versions

    def validate(self) -> None:
        if self.until < self.since:
            raise BackfillError(f"--until {self.until} is before --since {self.since}")
        if self.origin not in ORIGINS:
            raise BackfillError(f"--from must be one of {', '.join(ORIGINS)}")
        if self.reprocess not in MODES:
            raise BackfillError(f"--reprocess must be one of {', '.join(MODES)}")
        if self.origin == "warc" and not self.warc:
            raise BackfillError("--from warc needs at least one --warc PATH_OR_URL")
        if self.parallel < 1:
            raise BackfillError("--parallel must be at least 1")


@dataclass
class PartitionPlan:
    source: str
    day: str
    items: list[Item] = field(default_factory=list)
    previous_state: str | None = None
    action: str = "run"  # run | skip

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.day)


class StoredPages:
    """Stands in for the fetcher when pages are already at hand (WARC records, stored raw pages)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.results: dict[str, FetchResult] = {}

    async def fetch_many(self, urls: list[str], headers: Any = None) -> list[FetchResult]:
        return [self.results.pop(u) for u in urls]


def _day_of(value: datetime | None) -> str:
    return value.date().isoformat() if value is not None else UNDATED


def _in_range(day: str, request: BackfillRequest) -> bool:
    if day == UNDATED:
        return request.include_undated
    return request.since.isoformat() <= day <= request.until.isoformat()


# -- discovery per origin ---------------------------------------------------------------------------------
async def discover_sitemaps(fetcher: Fetcher, sources: list[Source]) -> list[Candidate]:
    cross = fetcher.settings.sitemap_cross_host
    found = await asyncio.gather(*(discover_source(fetcher, s, cross_host=cross) for s in sources))
    out: list[Candidate] = []
    for disc in found:
        if disc.status not in ("ok", "not_modified"):
            log.warning("source %s: %s %s", disc.source, disc.status, disc.detail)
        out.extend(disc.candidates)
    return out


class _StreamReader(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def _open_warc(location: str, settings: Settings) -> tuple[BinaryIO, Callable[[], None]]:
    """A WARC as a byte stream: a local file, or an http(s) URL streamed (never read whole)."""
    if location.startswith(("http://", "https://")):
        _check_address(location, settings)
        client = httpx.Client(timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
                              headers={"User-Agent": settings.user_agent, "Accept-Encoding": "identity"},
                              follow_redirects=False)
        response_cm = client.stream("GET", location)
        try:
            response = response_cm.__enter__()
        except httpx.HTTPError as exc:
            client.close()
            raise BackfillError(f"cannot read WARC {location}: {exc}") from None
        if response.status_code != 200:
            response_cm.__exit__(None, None, None)
            client.close()
            raise BackfillError(f"cannot read WARC {location}: HTTP {response.status_code}")
        reader = io.BufferedReader(_StreamReader(response.iter_raw(65536)), 1 << 20)

        def close() -> None:
            response_cm.__exit__(None, None, None)
            client.close()

        return reader, close
    path = Path(location)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise BackfillError(f"cannot read WARC {location}: {exc.strerror}") from None
    return handle, handle.close


def _check_address(location: str, settings: Settings) -> None:
    """The same address policy as page fetching, applied to a WARC URL before streaming it."""
    import ipaddress
    import socket

    from flows.netguard import HostAllowList, address_blocked_reason, parse_host_literal

    parts = urlsplit(location)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if HostAllowList(settings.allow_hosts).allows(host, port):
        return
    literal = parse_host_literal(host)
    try:
        addresses = [str(literal)] if literal else [
            str(i[4][0]) for i in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
    except OSError as exc:
        raise BackfillError(f"cannot resolve the WARC host {host}: {exc}") from None
    for address in addresses:
        reason = address_blocked_reason(ipaddress.ip_address(address))
        if reason:
            raise BackfillError(f"WARC {location}: {host} is a {reason} address; allow it with --allow-host")


Item = tuple[Candidate, FetchResult | None, datetime | None]  # candidate, page at hand, planning date


_GZIP_MAGIC = b"\x1f\x8b\x08"
_READ = 1 << 20


def _gzip_members(stream: BinaryIO, problems: Counter[str]) -> Iterator[bytes]:
    """Decompressed gzip members of a record-at-a-time gzipped WARC, each bounded in size. A corrupt
    member is counted and skipped by resynchronising on the next gzip header."""
    buf = b""
    eof = False
    resyncing = False  # after a corrupt member, the bytes up to the next header belong to it

    def fill() -> bool:
        nonlocal buf, eof
        chunk = stream.read(_READ)
        if not chunk:
            eof = True
            return False
        buf += chunk
        return True

    while True:
        if len(buf) < 3 and not eof:
            fill()
            continue
        if not buf:
            return
        if not buf.startswith(_GZIP_MAGIC):
            at = buf.find(_GZIP_MAGIC, 1)
            if at < 0:
                buf = buf[-2:] if not eof else b""
                if eof:
                    if not resyncing:
                        problems["corrupt_record"] += 1
                    return
                fill()
                continue
            if not resyncing:
                problems["corrupt_record"] += 1
            resyncing = False
            buf = buf[at:]
            continue
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        parts: list[bytes] = []
        size = 0
        pos = 0
        try:
            while not decoder.eof:
                if pos >= len(buf):
                    if eof or not fill():
                        raise zlib.error("truncated gzip member")
                    continue
                chunk = buf[pos : pos + 65536]
                pos += len(chunk)
                out = decoder.decompress(chunk, WARC_MAX_RECORD + 65536 - size)
                size += len(out)
                parts.append(out)
                if decoder.unconsumed_tail:
                    raise zlib.error("record over the size cap")
        except zlib.error as exc:
            problems["corrupt_record"] += 1
            log.warning("WARC: skipping a corrupt gzip member (%s)", exc)
            buf = buf[1:]
            resyncing = True
            continue
        resyncing = False
        buf = buf[pos - len(decoder.unused_data) :]
        yield b"".join(parts)


def _warc_records(stream: BinaryIO, problems: Counter[str]) -> Iterator[Any]:
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    head = stream.peek(3)[:3] if hasattr(stream, "peek") else b""
    if head == _GZIP_MAGIC:
        for member in _gzip_members(stream, problems):
            try:
                yield from ArchiveIterator(io.BytesIO(member), check_digests=False)
            except (ArchiveLoadFailed, ValueError, EOFError) as exc:
                problems["corrupt_record"] += 1
                log.warning("WARC: skipping an unreadable record (%s)", exc)
        return
    try:
        yield from ArchiveIterator(stream, check_digests=False)
    except (ArchiveLoadFailed, ValueError, zlib.error, EOFError) as exc:
        problems["corrupt_record"] += 1
        log.warning("WARC: unreadable record in an uncompressed file (%s); the rest of it is skipped", exc)


def read_warc_records(location: str, settings: Settings, source: str, hosts: list[str],
                      problems: Counter[str]) -> Iterator[Item]:
    """Stream HTML responses from a WARC file or URL (gzip per record, or uncompressed). Records
    that cannot be read are counted in ``problems`` and skipped; the rest are used."""
    from warcio.exceptions import ArchiveLoadFailed

    raw, close = _open_warc(location, settings)
    stream = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw, _READ)  # type: ignore[type-var]
    wanted_hosts = {h.lower() for h in hosts}
    try:
        for record in _warc_records(stream, problems):
            try:
                if record.rec_type != "response" or record.http_headers is None:
                    continue
                url = record.rec_headers.get_header("WARC-Target-URI") or ""
                if not url.startswith(("http://", "https://")):
                    continue
                if wanted_hosts and (urlsplit(url).hostname or "").lower() not in wanted_hosts:
                    continue
                status = int(record.http_headers.get_statuscode() or 0)
                ctype = record.http_headers.get_header("Content-Type") or ""
                crawled = _parse_warc_date(record.rec_headers.get_header("WARC-Date") or "")
                body = record.content_stream().read(WARC_MAX_RECORD + 1)
            except (ArchiveLoadFailed, ValueError, zlib.error, EOFError) as exc:
                problems["corrupt_record"] += 1
                log.warning("WARC %s: skipping a corrupt record (%s)", location, exc)
                continue
            if status != 200:
                problems[f"http_{status}"] += 1
                continue
            if len(body) > WARC_MAX_RECORD:
                problems["too_large"] += 1
                continue
            in_url = url_date(url)
            hint = datetime.fromisoformat(in_url).replace(tzinfo=UTC) if in_url else crawled
            candidate = Candidate(source=source, url=url, guid=record.rec_headers.get_header("WARC-Record-ID"))
            result = FetchResult(url, url, "ok", 200, headers={"content-type": ctype, "x-newsdesk-origin": "warc"},
                                 body=body, attempts=0, fetched_at=crawled or datetime.now(UTC))
            yield candidate, result, hint
    finally:
        close()


def _parse_warc_date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def read_raw_pages(settings: Settings, request: BackfillRequest) -> Iterator[Item]:
    """Stored pages, with the article's stored publication date as the planning hint."""
    where = ["p.body_gz IS NOT NULL"]
    params: list[Any] = []
    if request.sources:
        where.append("list_contains(?, p.source)")
        params.append(request.sources)
    if request.outdated_only:
        where.append("(a.article_id IS NULL OR a.extractor_version IS DISTINCT FROM ? OR a.transform_version IS DISTINCT FROM ?)")
        params += [EXTRACTOR_VERSION, TRANSFORM_VERSION]
    sql = (
        "SELECT p.url, p.final_url, p.source, p.headers, p.body_gz, p.fetched_at, a.published_date, "
        "o.feed_title, o.feed_published, o.feed_date_source, o.guid "
        "FROM pages p LEFT JOIN articles a ON a.url = p.canonical_url "
        "LEFT JOIN url_outcomes o ON o.url = p.url WHERE " + " AND ".join(where)
    )
    with open_warehouse(settings.warehouse, wait=settings.busy_timeout) as con:
        rows = con.execute(sql, params).fetchall()
    for url, final_url, source, headers, body_gz, fetched_at, pub_day, f_title, f_pub, f_src, guid in rows:
        headers_dict = json.loads(headers) if headers else {}
        headers_dict["x-newsdesk-origin"] = "raw"
        body = zlib.decompress(body_gz)
        candidate = Candidate(source, url, f_title, f_pub, f_src, guid)
        hint = datetime(pub_day.year, pub_day.month, pub_day.day, tzinfo=UTC) if pub_day else None
        result = FetchResult(url, final_url or url, "ok", 200, headers=headers_dict, body=body, attempts=0,
                             fetched_at=fetched_at)
        yield candidate, result, hint


# -- planning -----------------------------------------------------------------------------------------------
def _load_states(settings: Settings) -> dict[tuple[str, str], str]:
    path = Path(settings.warehouse)
    if not path.exists():
        return {}
    with open_warehouse(settings.warehouse, read_only=True, wait=settings.busy_timeout) as con:
        try:
            rows = con.execute("SELECT source, day, state FROM backfill_partitions").fetchall()
        except duckdb.CatalogException:  # a warehouse from before backfills existed
            return {}
        return {(r[0], r[1]): r[2] for r in rows}


def _should_run(state: str | None, mode: str) -> bool:
    if mode == "all":
        return True
    if state == "done":
        return False
    if state == "failed":
        return mode == "failed"
    return True  # never run, pending, or left running by a killed process


def plan_backfill(settings: Settings, request: BackfillRequest, items: list[Item]) -> list[PartitionPlan]:
    """Group candidates into in-range partitions and decide for each whether it runs."""
    states = _load_states(settings)
    groups: dict[tuple[str, str], PartitionPlan] = {}
    for candidate, result, hint in items:
        day = _day_of(hint)
        if not _in_range(day, request):
            continue
        key = (candidate.source, day)
        plan = groups.get(key)
        if plan is None:
            plan = groups[key] = PartitionPlan(candidate.source, day, previous_state=states.get(key))
            plan.action = "run" if _should_run(plan.previous_state, request.reprocess) else "skip"
        plan.items.append((candidate, result, hint))
    ordered = sorted(groups.values(), key=lambda p: (p.day == UNDATED, p.day, p.source), reverse=False)
    if request.newest_first:
        dated = [p for p in ordered if p.day != UNDATED][::-1]
        ordered = dated + [p for p in ordered if p.day == UNDATED]
    return ordered


# -- running ------------------------------------------------------------------------------------------------
@dataclass
class BackfillReport(IngestReport):
    partitions: list[dict[str, Any]] = field(default_factory=list)
    stopped: bool = False
    problems: Counter[str] = field(default_factory=Counter)


def _save_partitions(settings: Settings, rows: list[dict[str, Any]]) -> None:
    with open_warehouse(settings.warehouse, wait=settings.busy_timeout) as con:
        for r in rows:
            con.execute(
                """
                INSERT INTO backfill_partitions (source, day, origin, state, run_id, candidates, known, loaded,
                    duplicates, failed, outcomes, error, started_at, finished_at, updated_at)
                VALUES ($source, $day, $origin, $state, $run_id, $candidates, $known, $loaded, $duplicates, $failed,
                        $outcomes, $error, $started_at, $finished_at, $updated_at)
                ON CONFLICT (source, day) DO UPDATE SET origin = excluded.origin, state = excluded.state,
                    run_id = excluded.run_id, candidates = excluded.candidates, known = excluded.known,
                    loaded = excluded.loaded, duplicates = excluded.duplicates, failed = excluded.failed,
                    outcomes = excluded.outcomes, error = excluded.error,
                    started_at = coalesce(excluded.started_at, backfill_partitions.started_at),
                    finished_at = excluded.finished_at, updated_at = excluded.updated_at
                """,
                r,
            )


def _partition_row(plan: PartitionPlan, origin: str, state: str, run_id: str, counts: Counter[str],
                   outcomes: Counter[str], started: datetime | None, finished: datetime | None,
                   error: str | None = None) -> dict[str, Any]:
    return {
        "source": plan.source, "day": plan.day, "origin": origin, "state": state, "run_id": run_id,
        "candidates": len(plan.items), "known": counts.get("known", 0), "loaded": outcomes.get("loaded", 0),
        "duplicates": outcomes.get("duplicate", 0),
        "failed": sum(n for o, n in outcomes.items() if o not in ("loaded", "duplicate")),
        "outcomes": json.dumps(dict(sorted(outcomes.items()))), "error": error, "started_at": started,
        "finished_at": finished, "updated_at": datetime.now(UTC),
    }


async def run_backfill(settings: Settings, request: BackfillRequest, sources: list[Source],
                       steps: Any = PLAIN_STEPS, run_id: str | None = None,
                       stop: Callable[[], bool] | None = None,
                       progress: Callable[[str, dict[str, Any]], None] | None = None,
                       lock_wait: float = 6 * 3600.0) -> BackfillReport:
    """Plan partitions for the request, then work them (unless ``dry_run``), ``request.parallel`` at a time.

    A backfill waits (up to ``lock_wait``) for any other run on the warehouse to finish first."""
    request.validate()
    if request.dry_run:
        return await _run_backfill(settings, request, sources, steps, run_id, stop, progress)
    with run_lock(settings.warehouse, lock_wait, f"backfill {run_id or ''}"):
        return await _run_backfill(settings, request, sources, steps, run_id, stop, progress)


async def _run_backfill(settings: Settings, request: BackfillRequest, sources: list[Source], steps: Any,
                        run_id: str | None, stop: Callable[[], bool] | None,
                        progress: Callable[[str, dict[str, Any]], None] | None) -> BackfillReport:
    report = BackfillReport(run_id or uuid.uuid4().hex)
    notify = progress or (lambda event, data: log.info("%s %s", event, data))
    items = await _collect(settings, request, sources, report)
    plans = plan_backfill(settings, request, items)
    report.partitions = [
        {"source": p.source, "day": p.day, "urls": len(p.items), "previous_state": p.previous_state or "new",
         "action": p.action}
        for p in plans
    ]
    if request.dry_run:
        report.status = "dry_run"
        return report
    todo = [p for p in plans if p.action == "run"]
    notify("plan", {"partitions": len(plans), "to_run": len(todo), "urls": sum(len(p.items) for p in todo)})
    params = {"since": request.since.isoformat(), "until": request.until.isoformat(), "origin": request.origin,
              "sources": request.sources, "reprocess": request.reprocess}
    with open_warehouse(settings.warehouse, wait=settings.busy_timeout) as con:
        start_run(con, report.run_id, "backfill", report.started_at, params)
    try:
        await _work(settings, request, todo, steps, report, stop or (lambda: False), notify)
        report.status = "stopped" if report.stopped else "completed"
    except BaseException as exc:
        report.status = "failed"
        report.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        raise
    finally:
        report.ended_at = datetime.now(UTC)
        finish_counts(report)
        try:
            with open_warehouse(settings.warehouse, wait=settings.busy_timeout) as con:
                finish_run(con, report.run_id, report.ended_at, report.status, dict(report.counts),
                           dict(report.outcomes), report.error)
        except Exception as exc:
            if report.status == "completed":
                raise
            log.warning("could not record the backfill run: %s", exc)
    return report


async def _collect(settings: Settings, request: BackfillRequest, sources: list[Source],
                   report: BackfillReport) -> list[Item]:
    if request.origin == "sitemap":
        chosen = [s for s in sources if s.kind == "sitemap" and (not request.sources or s.name in request.sources)]
        if request.sources:
            unknown = set(request.sources) - {s.name for s in sources}
            if unknown:
                raise BackfillError(f"unknown source(s): {', '.join(sorted(unknown))}")
            not_sitemaps = [s.name for s in sources if s.name in request.sources and s.kind != "sitemap"]
            if not_sitemaps:
                raise BackfillError(f"source(s) {', '.join(not_sitemaps)} have no history to backfill "
                                    "(only sitemap sources do; use --from warc or --from raw)")
        if not chosen:
            raise BackfillError("no sitemap sources to backfill from (use --from warc or --from raw)")
        async with Fetcher(settings) as fetcher:
            candidates = await discover_sitemaps(fetcher, chosen)
        return [(c, None, c.published) for c in candidates]
    if request.origin == "warc":
        out: list[Item] = []
        for location in request.warc:
            name = request.sources[0] if request.sources else "warc:" + (Path(urlsplit(location).path).name or location)
            for item in read_warc_records(location, settings, name, request.hosts, report.problems):
                if _in_range(_day_of(item[2]), request):
                    out.append(item)
        return out
    return list(read_raw_pages(settings, request))


async def _work(settings: Settings, request: BackfillRequest, todo: list[PartitionPlan], steps: Any,
                report: BackfillReport, stop: Callable[[], bool],
                notify: Callable[[str, dict[str, Any]], None]) -> None:
    force = request.reprocess == "all" or request.origin == "raw"
    retry = TRANSIENT_OUTCOMES if request.reprocess == "missing" else frozenset(
        TRANSIENT_OUTCOMES | {"http_404", "http_410", "not_html", "no_text", "not_article", "too_large",
                              "extract_error", "decode_error", "timeout"})
    stored = StoredPages(settings)
    async with Fetcher(settings) as fetcher:
        with Extractor(settings.worker_count, settings.extraction_mode) as extractor:
            for start in range(0, len(todo), request.parallel):
                if stop():
                    report.stopped = True
                    break
                chunk = todo[start : start + request.parallel]
                await _work_chunk(settings, request, chunk, steps, report, stop, notify, fetcher, stored, extractor,
                                  force, retry)
                if report.stopped:
                    break


async def _work_chunk(settings: Settings, request: BackfillRequest, chunk: list[PartitionPlan], steps: Any,
                      report: BackfillReport, stop: Callable[[], bool], notify: Callable[[str, dict[str, Any]], None],
                      fetcher: Fetcher, stored: StoredPages, extractor: Extractor, force: bool,
                      retry: frozenset[str]) -> None:
    started = datetime.now(UTC)
    owner: dict[str, tuple[str, str]] = {}
    counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    outcomes: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    candidates: list[Candidate] = []
    for plan in chunk:
        for candidate, result, _hint in plan.items:
            owner[candidate.url] = plan.key
            candidates.append(candidate)
            if result is not None:
                stored.results[candidate.url] = result
    _save_partitions(settings, [_partition_row(p, request.origin, "running", report.run_id, Counter(), Counter(),
                                               started, None) for p in chunk])
    planned = plan_candidates(candidates)
    report.counts["discovered"] += len(planned)
    before_known = report.counts.get("known", 0)
    known_report = IngestReport(report.run_id)
    queue, decided, known_canon = triage(settings, planned, known_report, retry, force=force)
    # known URLs: count them against their partitions
    decided_urls = {row["url"] for row in decided}
    queued_urls = {p.candidate.url for p in queue}
    for p in planned:
        if p.candidate.url not in decided_urls and p.candidate.url not in queued_urls:
            counts[owner[p.candidate.url]]["known"] += 1
            stored.results.pop(p.candidate.url, None)
    report.counts["known"] = before_known + known_report.counts.get("known", 0)
    for p in planned:  # dropped as repeats within the batch: their stored page is not needed
        if p.outcome is not None:
            stored.results.pop(p.candidate.url, None)
    on_web = [p for p in queue if p.candidate.url not in stored.results]
    prefetched = [p for p in queue if p.candidate.url in stored.results]

    def tally(frames: BatchFrames) -> None:
        for url, outcome in zip(frames.outcomes["url"].to_list(), frames.outcomes["outcome"].to_list(), strict=True):
            key = owner.get(url)
            if key is not None:
                outcomes[key][outcome] += 1
        notify("batch", {"loaded": int((frames.outcomes["outcome"] == "loaded").sum()),
                         "settled": frames.outcomes.height})

    seen: set[str] = set() if force else set(known_canon)
    finished = True
    if prefetched or decided:
        finished = await process_queue(settings, steps, stored, extractor, prefetched, decided, report, seen,
                                       lambda m: log.info(m), stop, tally)
        decided = []
    if finished and on_web:
        finished = await process_queue(settings, steps, fetcher, extractor, on_web, decided, report, seen,
                                       lambda m: log.info(m), stop, tally)
    stored.results.clear()
    done_at = datetime.now(UTC)
    rows = []
    for plan in chunk:
        state = "done" if finished else "pending"
        got = outcomes[plan.key]
        if finished and any(o in TRANSIENT_OUTCOMES for o in got):
            state = "failed"
        rows.append(_partition_row(plan, request.origin, state, report.run_id, counts[plan.key], got, started,
                                   done_at if finished else None))
    _save_partitions(settings, rows)
    for row in rows:
        notify("partition", row)
    if not finished:
        report.stopped = True


def partition_status(settings: Settings) -> tuple[list[str], list[tuple[Any, ...]]]:
    columns = ["source", "day", "origin", "state", "candidates", "known", "loaded", "duplicates", "failed",
               "run_id", "updated_at"]
    with open_warehouse(settings.warehouse, read_only=True, wait=settings.busy_timeout) as con:
        try:
            rows = con.execute(f"SELECT {', '.join(columns)} FROM backfill_partitions ORDER BY day DESC, source").fetchall()
        except duckdb.CatalogException:  # a warehouse from before backfills existed
            rows = []
    return columns, rows
