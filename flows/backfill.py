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
import contextlib
import dataclasses
import io
import json
import logging
import os
import tempfile
import threading
import uuid
import zlib
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import duckdb
import httpx

from flows import zcodec
from flows.clean import EXTRACTOR_VERSION, Extractor, url_date
from flows.config import Settings
from flows.discover import Candidate, discover_source
from flows.fetch import TRANSIENT_OUTCOMES, Fetcher, FetchResult, gunzip_bounded
from flows.pipeline import (
    PLAIN_STEPS,
    BatchFrames,
    Fetched,
    IngestReport,
    Planned,
    extract_batch,
    finish_counts,
    plan_candidates,
    process_queue,
    triage,
)
from flows.sources import Source
from transforms import TRANSFORM_VERSION
from warehouse.bodystore import read_bodies, store_dir
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


_READ_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, EOFError, *zcodec.ERRORS)
_STORED_ERRORS: tuple[type[BaseException], ...] = (ValueError, EOFError, *zcodec.ERRORS)
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
    parallel: int = 4  # partitions worked at once (a group; groups follow each other through one pipeline)
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
    """Stands in for the fetcher when pages are already at hand (WARC records, stored raw pages).

    Pending pages are read here, a batch at a time. ``raw_forms`` keeps, per URL read, the raw form
    that will be stored for it when it exists already compressed (the WARC record's gzip member), or
    None when nothing is to be stored (a page from storage); the extraction workers then spend no
    time compressing the body (see ``extract_stored``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.results: dict[str, FetchResult | PendingPage] = {}
        self.raw_forms: dict[str, bytes | None] = {}
        self.files = _Files()

    async def fetch_many(self, urls: list[str], headers: Any = None) -> list[FetchResult]:
        out = []
        for url in urls:
            page = self.results.pop(url)
            if isinstance(page, PendingPage):
                page, raw = page.read(self.files)
                if raw is not None or page.headers.get("x-newsdesk-origin") == "raw":
                    self.raw_forms[url] = raw
            out.append(page)
        return out

    def clear(self) -> None:
        self.results.clear()
        self.raw_forms.clear()

    def close(self) -> None:
        self.clear()
        self.files.close()


def extract_stored(stored: StoredPages) -> Callable[[Extractor, list[Fetched]], Awaitable[list[dict[str, Any]]]]:
    """The extract step for pages at hand: ``extract_batch``'s items, but a page whose raw form is
    already compressed (or not to be stored again) is not compressed by the worker; its stored form
    is attached to the row here."""

    async def extract_stored_batch(extractor: Extractor, fetched: list[Fetched]) -> list[dict[str, Any]]:
        items = []
        for f in fetched:
            if not f.result.ok:
                continue
            url = f.planned.candidate.url
            items.append({"url": url, "final_url": f.result.final_url, "body": f.result.body,
                          "content_type": f.result.headers.get("content-type", ""),
                          "has_source_date": f.planned.candidate.published is not None,
                          "keep_body": url not in stored.raw_forms})
        rows = await extractor.extract(items)
        for row in rows:
            if row.get("body_gz") is None:
                row["body_gz"] = stored.raw_forms.pop(row["url"], None)
        return rows

    return extract_stored_batch


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


class PendingPage:
    """A page at hand but not read yet: the first pass keeps only where it is, and ``read`` loads it
    when its batch is extracted, so a backfill holds the bodies of the batches in flight only.

    ``read`` returns the page and its raw form to store in ``pages.body_gz`` when that form already
    exists compressed (a WARC record's own gzip member), else None."""

    url: str

    def read(self, files: _Files) -> tuple[FetchResult, bytes | None]:
        raise NotImplementedError


Item = tuple[Candidate, FetchResult | PendingPage | None, datetime | None]  # candidate, page at hand, planning date

RAW_FORM_HEADER = "x-newsdesk-raw-form"  # in pages.headers: what pages.body_gz holds when not zlib of the body
WARC_GZIP_FORM = "warc-record-gzip"  # the page's whole WARC record, one gzip member as found in the archive


class _Files:
    """Read-only descriptors of the archives (and spool files) that pending pages point into."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}
        self.spools: list[str] = []

    def pread(self, path: str, length: int, offset: int) -> bytes:
        fd = self._fds.get(path)
        if fd is None:
            fd = self._fds[path] = os.open(path, os.O_RDONLY)
        data = os.pread(fd, length, offset)
        if len(data) != length:
            raise OSError(f"{path}: short read at {offset}")
        return data

    def spool(self) -> tuple[str, BinaryIO]:
        """A temporary file for the gzip members of a WARC read over HTTP (read again in the second pass)."""
        handle, path = tempfile.mkstemp(prefix="newsdesk-warc-", suffix=".spool")
        self.spools.append(path)
        return path, os.fdopen(handle, "wb")

    def close(self) -> None:
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        for path in self.spools:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self.spools.clear()


class WarcPage(PendingPage):
    """A WARC response record found by the first pass: record ``index`` of the gzip member at ``offset``
    (``length`` bytes) of ``path`` (the archive, or the spool of an archive read over HTTP)."""

    __slots__ = ("url", "path", "offset", "length", "index", "crawled")

    def __init__(self, url: str, path: str, offset: int, length: int, index: int, crawled: datetime | None) -> None:
        self.url, self.path, self.offset, self.length, self.index, self.crawled = url, path, offset, length, index, crawled

    def read(self, files: _Files) -> tuple[FetchResult, bytes | None]:
        try:
            member = files.pread(self.path, self.length, self.offset)
            record, alone = _member_record(member, self.index)
            if record is None:
                raise ValueError("record not found")
            _url, status, ctype, crawled, body = record
        except _READ_ERRORS as exc:
            return FetchResult(self.url, self.url, "decode_error", None,
                               detail=f"WARC record unreadable on the second read: {exc}"[:300],
                               fetched_at=self.crawled or datetime.now(UTC)), None
        headers = {"content-type": ctype, "x-newsdesk-origin": "warc"}
        if alone:
            headers[RAW_FORM_HEADER] = WARC_GZIP_FORM
        result = FetchResult(self.url, self.url, "ok", status, headers=headers, body=body, attempts=0,
                             fetched_at=crawled or self.crawled or datetime.now(UTC))
        return result, member if alone else None


class StoredBody(PendingPage):
    """A page stored in the warehouse, still compressed: decompressed when its batch is extracted."""

    __slots__ = ("url", "final_url", "headers", "body_gz", "fetched_at")

    def __init__(self, url: str, final_url: str, headers: dict[str, str], body_gz: bytes,
                 fetched_at: datetime) -> None:
        self.url, self.final_url, self.headers, self.body_gz, self.fetched_at = url, final_url, headers, body_gz, fetched_at

    def read(self, files: _Files) -> tuple[FetchResult, bytes | None]:
        try:
            body = stored_body(self.body_gz)
        except _STORED_ERRORS as exc:
            return FetchResult(self.url, self.final_url, "decode_error", None, detail=f"stored page unreadable: {exc}",
                               fetched_at=self.fetched_at), None
        return FetchResult(self.url, self.final_url, "ok", 200, headers=self.headers, body=body, attempts=0,
                           fetched_at=self.fetched_at), None


def stored_body(body_gz: bytes) -> bytes:
    """The page body from ``pages.body_gz``, which holds one of three forms: zlib of the body; the body
    gzip-compressed as the server sent it (Content-Encoding: gzip); or (WARC backfills) the page's
    whole WARC record as the archive's gzip member (``x-newsdesk-raw-form: warc-record-gzip`` in
    ``pages.headers``). A zlib stream never starts with the gzip magic, and a gzip stream holds a WARC
    record exactly when it starts with ``WARC/``, so the bytes tell the forms apart."""
    if body_gz[:3] != _GZIP_MAGIC:
        return zcodec.decompress(body_gz)
    head = zcodec.decompressobj(16 + zcodec.MAX_WBITS).decompress(body_gz, 8)
    if not head.startswith(b"WARC/"):
        return gunzip_bounded(body_gz, WARC_MAX_RECORD + 65536)
    record, _alone = _member_record(body_gz, 0)
    if record is None:
        raise ValueError("no WARC record in the stored page")
    return record[4]


_GZIP_MAGIC = b"\x1f\x8b\x08"
_READ = 1 << 20

Record = tuple[str, int, str, "datetime | None", bytes]  # url, HTTP status, content type, crawl time, body


def _record_fields(record: Any) -> Record | None:
    """A WARC response's fields and body (at most WARC_MAX_RECORD + 1 bytes), or None for other records."""
    if record.rec_type != "response" or record.http_headers is None:
        return None
    url = record.rec_headers.get_header("WARC-Target-URI") or ""
    status = int(record.http_headers.get_statuscode() or 0)
    ctype = record.http_headers.get_header("Content-Type") or ""
    crawled = _parse_warc_date(record.rec_headers.get_header("WARC-Date") or "")
    body = record.content_stream().read(WARC_MAX_RECORD + 1)
    return url, status, ctype, crawled, body


def _member_record(member: bytes, index: int) -> tuple[Record | None, bool]:
    """Record ``index`` of one gzip member, and whether it is the member's only record."""
    from warcio.archiveiterator import ArchiveIterator

    decoder = zcodec.decompressobj(16 + zcodec.MAX_WBITS)
    data = decoder.decompress(member, WARC_MAX_RECORD + 65536)
    if decoder.unconsumed_tail:
        raise ValueError("record over the size cap")
    found: Record | None = None
    count = 0
    for i, record in enumerate(ArchiveIterator(io.BytesIO(data), check_digests=False)):
        count += 1
        if i == index:
            found = _record_fields(record)
    return found, count == 1


def _gzip_members(stream: BinaryIO, problems: Counter[str], keep: bool = False) -> Iterator[tuple[int, int, bytes, bytes]]:
    """Gzip members of a record-at-a-time gzipped WARC: (offset, compressed length, decompressed bytes,
    the compressed bytes when ``keep`` else b""), each bounded in size. A corrupt member is counted and
    skipped by resynchronising on the next gzip header."""
    buf = b""
    base = 0  # offset of buf[0] in the stream
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
                if eof:
                    if not resyncing:
                        problems["corrupt_record"] += 1
                    return
                base += max(0, len(buf) - 2)
                buf = buf[-2:]
                fill()
                continue
            if not resyncing:
                problems["corrupt_record"] += 1
            resyncing = False
            base += at
            buf = buf[at:]
            continue
        decoder = zcodec.decompressobj(16 + zcodec.MAX_WBITS)
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
        except zcodec.ERRORS as exc:
            problems["corrupt_record"] += 1
            log.warning("WARC: skipping a corrupt gzip member (%s)", exc)
            base += 1
            buf = buf[1:]
            resyncing = True
            continue
        resyncing = False
        end = pos - len(decoder.unused_data)
        yield base, end, b"".join(parts), buf[:end] if keep else b""
        base += end
        buf = buf[end:]


def _warc_records(stream: BinaryIO, problems: Counter[str], keep: bool) -> Iterator[tuple[Any, Any]]:
    """WARC records with, for a record-at-a-time gzipped WARC, where each one is:
    (offset, compressed length, index in its member, the member's bytes when ``keep``); None otherwise."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    head = stream.peek(3)[:3] if hasattr(stream, "peek") else b""
    if head == _GZIP_MAGIC:
        for offset, length, member, raw in _gzip_members(stream, problems, keep):
            try:
                for index, record in enumerate(ArchiveIterator(io.BytesIO(member), check_digests=False)):
                    yield record, (offset, length, index, raw)
            except (ArchiveLoadFailed, ValueError, EOFError) as exc:
                problems["corrupt_record"] += 1
                log.warning("WARC: skipping an unreadable record (%s)", exc)
        return
    try:
        for record in ArchiveIterator(stream, check_digests=False):
            yield record, None
    except (ArchiveLoadFailed, ValueError, EOFError, *zcodec.ERRORS) as exc:
        problems["corrupt_record"] += 1
        log.warning("WARC: unreadable record in an uncompressed file (%s); the rest of it is skipped", exc)


def read_warc_records(location: str, settings: Settings, source: str, hosts: list[str],
                      problems: Counter[str], files: _Files | None = None) -> Iterator[Item]:
    """Stream HTML responses from a WARC file or URL (gzip per record, or uncompressed). Records
    that cannot be read are counted in ``problems`` and skipped; the rest are used.

    With ``files`` (the first of two passes), records of a gzipped WARC come as ``WarcPage``s: where
    the record is, not its body (an archive read over HTTP is spooled to a temporary file for the
    second pass); records of an uncompressed WARC, and all records without ``files``, come with
    their body."""
    from warcio.exceptions import ArchiveLoadFailed

    raw, close = _open_warc(location, settings)
    stream = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw, _READ)  # type: ignore[type-var]
    remote = location.startswith(("http://", "https://"))
    spool_path, spool = files.spool() if files is not None and remote else (None, None)
    spooled, spooled_from = 0, -1  # bytes in the spool; archive offset of the member last spooled
    wanted_hosts = {h.lower() for h in hosts}
    try:
        for record, where in _warc_records(stream, problems, keep=spool is not None):
            try:
                fields = _record_fields(record)
                if fields is None:
                    continue
                url, status, ctype, crawled, body = fields
                if not url.startswith(("http://", "https://")):
                    continue
                if wanted_hosts and (urlsplit(url).hostname or "").lower() not in wanted_hosts:
                    continue
            except (ArchiveLoadFailed, ValueError, EOFError, *zcodec.ERRORS) as exc:
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
            page: FetchResult | PendingPage
            if files is not None and where is not None:
                offset, length, index, member = where
                if spool is not None:
                    if offset != spooled_from:  # once per member: its later records share the copy
                        spool.write(member)
                        spooled, spooled_from = spooled + length, offset
                    offset = spooled - length
                page = WarcPage(url, spool_path or str(Path(location).resolve()), offset, length, index, crawled)
            else:
                page = FetchResult(url, url, "ok", 200, headers={"content-type": ctype, "x-newsdesk-origin": "warc"},
                                   body=body, attempts=0, fetched_at=crawled or datetime.now(UTC))
            yield candidate, page, hint
    finally:
        if spool is not None:
            spool.close()
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
    """Stored pages (kept compressed until their batch), with the article's stored publication date
    as the planning hint. Bodies in the store's files are read one file at a time as the pages are
    taken, so memory holds one file's bodies, not the warehouse's."""
    where = ["(p.body_gz IS NOT NULL OR p.body_file IS NOT NULL)"]
    params: list[Any] = []
    if request.sources:
        where.append("list_contains(?, p.source)")
        params.append(request.sources)
    if request.outdated_only:
        where.append("(a.article_id IS NULL OR a.extractor_version IS DISTINCT FROM ? OR a.transform_version IS DISTINCT FROM ?)")
        params += [EXTRACTOR_VERSION, TRANSFORM_VERSION]
    sql = (
        "SELECT p.canonical_url, p.body_file, p.url, p.final_url, p.source, p.headers, p.body_gz, p.fetched_at, "
        "a.published_date, o.feed_title, o.feed_published, o.feed_date_source, o.guid "
        "FROM pages p LEFT JOIN articles a ON a.url = p.canonical_url "
        "LEFT JOIN url_outcomes o ON o.url = p.url WHERE " + " AND ".join(where) +
        " ORDER BY p.body_file NULLS FIRST, p.canonical_url"
    )
    with open_warehouse(settings.warehouse, wait=settings.busy_timeout) as con:
        rows = con.execute(sql, params).fetchall()
    root = store_dir(settings.warehouse)
    in_files = ((r[1], r[0]) for r in rows if r[6] is None)
    from_files = read_bodies(root, in_files)
    for canon, body_file, url, final_url, source, headers, body_gz, fetched_at, pub_day, f_title, f_pub, f_src, guid in rows:
        if body_gz is None:
            name, got_canon, body_gz = next(from_files)
            assert (name, got_canon) == (body_file, canon), "stored bodies came out of order"
            if body_gz is None:
                continue  # its file is gone or damaged (logged): nothing to reprocess
        headers_dict = json.loads(headers) if headers else {}
        headers_dict["x-newsdesk-origin"] = "raw"
        headers_dict.pop(RAW_FORM_HEADER, None)  # describes the stored bytes, not the page
        candidate = Candidate(source, url, f_title, f_pub, f_src, guid)
        hint = datetime(pub_day.year, pub_day.month, pub_day.day, tzinfo=UTC) if pub_day else None
        yield candidate, StoredBody(url, final_url or url, headers_dict, body_gz, fetched_at), hint

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


_PARTITION_COLUMNS = ("source", "day", "origin", "state", "run_id", "candidates", "known", "loaded", "duplicates",
                      "failed", "outcomes", "error", "started_at", "finished_at", "updated_at")


def _save_partitions(settings: Settings, rows: list[dict[str, Any]]) -> None:
    """Upsert partition rows, all in one statement."""
    if not rows:
        return
    one = "(" + ", ".join("?" * len(_PARTITION_COLUMNS)) + ")"
    params = [r[c] for r in rows for c in _PARTITION_COLUMNS]
    with open_warehouse(settings.warehouse, wait=settings.busy_timeout) as con:
        con.execute(
            f"""
            INSERT INTO backfill_partitions ({", ".join(_PARTITION_COLUMNS)})
            VALUES {", ".join([one] * len(rows))}
            ON CONFLICT (source, day) DO UPDATE SET origin = excluded.origin, state = excluded.state,
                run_id = excluded.run_id, candidates = excluded.candidates, known = excluded.known,
                loaded = excluded.loaded, duplicates = excluded.duplicates, failed = excluded.failed,
                outcomes = excluded.outcomes, error = excluded.error,
                started_at = coalesce(excluded.started_at, backfill_partitions.started_at),
                finished_at = excluded.finished_at, updated_at = excluded.updated_at
            """,
            params,
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
    stored = StoredPages(settings)
    with contextlib.ExitStack() as stack:
        stack.callback(stored.close)
        extractor = None
        if not request.dry_run:
            extractor = stack.enter_context(Extractor(settings.worker_count, settings.extraction_mode))
            extractor.warm()  # the workers start up while the pages are listed
        return await _plan_and_work(settings, request, sources, steps, stop, notify, report, stored, extractor)


async def _plan_and_work(settings: Settings, request: BackfillRequest, sources: list[Source], steps: Any,
                         stop: Callable[[], bool] | None, notify: Callable[[str, dict[str, Any]], None],
                         report: BackfillReport, stored: StoredPages, extractor: Extractor | None) -> BackfillReport:
    items = await _collect(settings, request, sources, report, stored.files)
    plans = plan_backfill(settings, request, items)
    del items
    report.partitions = [
        {"source": p.source, "day": p.day, "urls": len(p.items), "previous_state": p.previous_state or "new",
         "action": p.action}
        for p in plans
    ]
    if request.dry_run or extractor is None:
        report.status = "dry_run"
        return report
    todo = [p for p in plans if p.action == "run"]
    notify("plan", {"partitions": len(plans), "to_run": len(todo), "urls": sum(len(p.items) for p in todo)})
    params = {"since": request.since.isoformat(), "until": request.until.isoformat(), "origin": request.origin,
              "sources": request.sources, "reprocess": request.reprocess}
    with open_warehouse(settings.warehouse, wait=settings.busy_timeout) as con:
        start_run(con, report.run_id, "backfill", report.started_at, params)
    try:
        await _work(settings, request, todo, steps, report, stop or (lambda: False), notify, stored, extractor)
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
                   report: BackfillReport, files: _Files) -> list[Item]:
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
            for item in read_warc_records(location, settings, name, request.hosts, report.problems,
                                          None if request.dry_run else files):
                if _in_range(_day_of(item[2]), request):
                    out.append(item)
        return out
    return list(read_raw_pages(settings, request))


async def _work(settings: Settings, request: BackfillRequest, todo: list[PartitionPlan], steps: Any,
                report: BackfillReport, stop: Callable[[], bool],
                notify: Callable[[str, dict[str, Any]], None], stored: StoredPages, extractor: Extractor) -> None:
    """Work the partitions to run in groups of ``request.parallel``, all through one pipeline.

    Batches never span two groups, and the next group's batches follow in the same pipeline, so the
    cores never wait at a group boundary. Partition states are saved with each warehouse write
    (``load_batch_size`` URLs, or ``load_interval`` seconds): a group is running once its first batch
    has started and done (or failed) once its last batch is stored; a stopped run leaves its
    unfinished groups pending."""
    force = request.reprocess == "all" or request.origin == "raw"
    retry = TRANSIENT_OUTCOMES if request.reprocess == "missing" else frozenset(
        TRANSIENT_OUTCOMES | {"http_404", "http_410", "not_html", "no_text", "not_article", "too_large",
                              "extract_error", "decode_error", "timeout"})
    stored_steps = dataclasses.replace(steps, extract=_as_step(steps.extract, extract_stored(stored)))
    groups = [todo[i : i + request.parallel] for i in range(0, len(todo), request.parallel)]
    work = _GroupWork(settings, request, groups, report, notify)
    for plan in todo:
        for candidate, result, _hint in plan.items:
            work.owner[candidate.url] = plan.key
            if result is not None:
                stored.results[candidate.url] = result
    planned = plan_candidates([candidate for plan in todo for candidate, _result, _hint in plan.items])
    report.counts["discovered"] += len(planned)
    known_report = IngestReport(report.run_id)
    queue, decided, known_canon = triage(settings, planned, known_report, retry, force=force)
    report.counts["known"] += known_report.counts.get("known", 0)
    decided_urls = {row["url"] for row in decided}
    queued_urls = {p.candidate.url for p in queue}
    for p in planned:
        if p.candidate.url not in decided_urls and p.candidate.url not in queued_urls:
            work.counts[work.owner[p.candidate.url]]["known"] += 1  # settled by an earlier run
        if p.candidate.url not in queued_urls:
            stored.results.pop(p.candidate.url, None)  # known, or a repeat within the run: not read
    seen: set[str] = set() if force else set(known_canon)
    try:
        # pages at hand (WARC records, stored pages) first, then pages to fetch (sitemaps)
        at_hand = [p for p in queue if p.candidate.url in stored.results]
        on_web = [p for p in queue if p.candidate.url not in stored.results]
        finished = True
        cuts = [work.cut(at_hand), work.cut(on_web)]  # both cut first: a group ends when all its batches are written
        async with Fetcher(settings) as fetcher:
            for part, (batches, owners), part_steps, source in ((at_hand, cuts[0], stored_steps, stored),
                                                                (on_web, cuts[1], steps, fetcher)):
                if not finished or not (part or decided):
                    continue
                work.batch_group = owners
                finished = await process_queue(
                    settings, part_steps, source, extractor, part, decided, report, seen, lambda m: log.info(m),
                    stop, work.tally, batches=batches, on_start=work.started, on_write=work.written)
                decided = []
    finally:
        stored.clear()
    work.finish(finished)
    if not finished:
        report.stopped = True


class _GroupWork:
    """Partition bookkeeping for ``_work``: which batch belongs to which group, outcomes per
    partition, and the partition rows saved as groups start and finish."""

    def __init__(self, settings: Settings, request: BackfillRequest, groups: list[list[PartitionPlan]],
                 report: BackfillReport, notify: Callable[[str, dict[str, Any]], None]) -> None:
        self.settings, self.request, self.groups, self.report, self.notify = settings, request, groups, report, notify
        self.owner: dict[str, tuple[str, str]] = {}
        self.group_of = {plan.key: g for g, group in enumerate(groups) for plan in group}
        self.counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        self.outcomes: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        self.batch_group: list[int] = []  # of the current pipeline's batches
        self.left: Counter[int] = Counter()  # batches not yet written, per group
        self.started_at: dict[int, datetime] = {}
        self.closed: set[int] = set()  # groups whose partitions were saved as finished
        self.running: set[int] = set()  # groups whose partitions were saved as running

    def cut(self, queue: list[Planned]) -> tuple[list[list[Planned]], list[int]]:
        """``queue`` in batches of ``batch_size`` that never span two groups (in group order), and the
        group of each batch."""
        per_group: dict[int, list[Planned]] = defaultdict(list)
        for p in queue:
            per_group[self.group_of[self.owner[p.candidate.url]]].append(p)
        size = self.settings.batch_size
        batches: list[list[Planned]] = []
        owners: list[int] = []
        for g in sorted(per_group):
            items = per_group[g]
            for i in range(0, len(items), size):
                batches.append(items[i : i + size])
                owners.append(g)
                self.left[g] += 1
        return batches, owners

    def started(self, index: int) -> None:
        if index < len(self.batch_group):
            self.started_at.setdefault(self.batch_group[index], datetime.now(UTC))

    def tally(self, frames: BatchFrames) -> None:
        for url, outcome in zip(frames.outcomes["url"].to_list(), frames.outcomes["outcome"].to_list(), strict=True):
            key = self.owner.get(url)
            if key is not None:
                self.outcomes[key][outcome] += 1
        self.notify("batch", {"loaded": int((frames.outcomes["outcome"] == "loaded").sum()),
                              "settled": frames.outcomes.height})

    def written(self, indexes: list[int]) -> None:
        """After a warehouse write: the groups whose last batch it stored are finished; those started
        since the last write are running."""
        done = []
        for index in indexes:
            if index < len(self.batch_group):
                g = self.batch_group[index]
                self.left[g] -= 1
                if self.left[g] == 0:
                    done.append(g)
        self._save(done, "finished")
        # a copy: this runs in the write's thread while the event loop may start more groups
        self._save([g for g in list(self.started_at) if g not in self.closed and g not in self.running], "running")

    def _save(self, groups: list[int], state: str) -> None:
        """Save the partitions of ``groups`` as ``state``: finished (done, or failed when a transient
        outcome is left to retry), running, or pending (started, not finished, run stopped)."""
        rows, finished = [], []
        now = datetime.now(UTC)
        for g in groups:
            if g in self.closed:
                continue
            if state == "finished":
                self.closed.add(g)
            elif state == "running":
                self.running.add(g)
            for plan in self.groups[g]:
                got = self.outcomes[plan.key]
                saved = state
                if state == "finished":
                    saved = "failed" if any(o in TRANSIENT_OUTCOMES for o in got) else "done"
                row = _partition_row(plan, self.request.origin, saved, self.report.run_id, self.counts[plan.key], got,
                                     self.started_at.get(g, now), now if state == "finished" else None)
                rows.append(row)
                if state == "finished":
                    finished.append(row)
        _save_partitions(self.settings, rows)
        for row in finished:
            self.notify("partition", row)

    def finish(self, finished: bool) -> None:
        """At the end: every group left open is done when the run finished (groups with nothing to
        work); when it stopped, the groups started but not written go back to pending."""
        if finished:
            now = datetime.now(UTC)
            for g in range(len(self.groups)):
                self.started_at.setdefault(g, now)
            self._save([g for g in range(len(self.groups)) if g not in self.closed], "finished")
        else:
            self._save([g for g in self.started_at if g not in self.closed], "pending")


def _as_step(original: Any, fn: Callable[..., Awaitable[Any]]) -> Any:
    """``fn`` as a step of the same kind as ``original``: plain when the steps are the plain steps, else
    a Prefect task (called with its arguments quoted, so Prefect does not walk a batch's pages)."""
    if original is extract_batch:
        return fn
    from prefect import task
    from prefect.cache_policies import NO_CACHE
    from prefect.utilities.annotations import quote

    step = task(name="extract-batch", cache_policy=NO_CACHE, persist_result=False)(fn)

    async def call(*args: Any) -> Any:
        return await step(*(quote(a) for a in args))

    return call


def partition_status(settings: Settings) -> tuple[list[str], list[tuple[Any, ...]]]:
    columns = ["source", "day", "origin", "state", "candidates", "known", "loaded", "duplicates", "failed",
               "run_id", "updated_at"]
    with open_warehouse(settings.warehouse, read_only=True, wait=settings.busy_timeout) as con:
        try:
            rows = con.execute(f"SELECT {', '.join(columns)} FROM backfill_partitions ORDER BY day DESC, source").fetchall()
        except duckdb.CatalogException:  # a warehouse from before backfills existed
            rows = []
    return columns, rows
