"""The fetcher: one httpx.AsyncClient, politeness per host, bounded retries, bounded bodies, robots.txt.

Failures are sorted into three kinds. Permanent ones (404, not HTML, too large, robots) end as an
outcome at once; transient ones (timeouts, dropped connections, 429 and 5xx) are retried with
backoff that honours Retry-After up to a cap, and then end as an outcome that the next run may
retry; anything else is a bug and propagates.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import ssl
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import httpcore
import httpx

from flows import zcodec
from flows.config import Settings
from flows.netguard import BlockedAddress, GuardedBackend, HostAllowList, literal_blocked_reason
from flows.urls import host_of

__all__ = ["FetchResult", "Fetcher", "HostPolicy", "TRANSIENT_OUTCOMES", "BoundedDecoder", "TooLarge"]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# outcomes that a later run should try again
TRANSIENT_OUTCOMES = frozenset(
    {"timeout", "network_error", "robots_unavailable", "host_backoff", "http_429", "http_500",
     "http_502", "http_503", "http_504"}
)
KEPT_HEADERS = ("content-type", "content-encoding", "content-length", "etag", "last-modified", "date",
                "content-language", "x-robots-tag")
HTML_TYPES = ("text/html", "application/xhtml+xml")
_BINARY_MAGIC = (b"%PDF", b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"PK\x03\x04", b"RIFF", b"\x00\x00\x01\x00",
                 b"OggS", b"ID3", b"\x1a\x45\xdf\xa3", b"wOFF", b"wOF2")
HOST_FAILURE_LIMIT = 5  # consecutive transient failures before a host is left alone for the run
ROBOTS_MAX_REDIRECTS = 5  # RFC 9309 2.3.1.2
_DEFAULT_PORTS = {"http": 80, "https": 443}


class TooLarge(Exception):
    pass


class _Stage(Protocol):
    @property
    def unconsumed_tail(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int, /) -> bytes: ...

    def flush(self) -> bytes: ...


class BoundedDecoder:
    """Decodes a Content-Encoding chain while never producing more than ``limit`` bytes."""

    def __init__(self, encodings: list[str], limit: int) -> None:
        self.limit = limit
        self.produced = 0
        self.stages: list[_Stage] = []
        for enc in reversed(encodings):  # the last applied encoding is undone first
            if enc in ("gzip", "x-gzip"):
                self.stages.append(_GzipMembers())
            elif enc == "deflate":
                self.stages.append(_DeflateAuto())
            elif enc in ("identity", ""):
                continue
            else:
                raise ValueError(f"unsupported content encoding {enc!r}")

    def feed(self, data: bytes) -> bytes:
        for stage in self.stages:
            data = stage.decompress(data, self.limit - self.produced + 1)
            if stage.unconsumed_tail:
                raise TooLarge("decoded body exceeds the size cap")
        self.produced += len(data)
        if self.produced > self.limit:
            raise TooLarge("decoded body exceeds the size cap")
        return data

    def flush(self) -> bytes:
        out = b""
        for stage in self.stages:
            if out:
                out = stage.decompress(out, self.limit - self.produced + 1)
                if stage.unconsumed_tail:
                    raise TooLarge("decoded body exceeds the size cap")
            out += stage.flush()
        self.produced += len(out)
        if self.produced > self.limit:
            raise TooLarge("decoded body exceeds the size cap")
        return out


class _DeflateAuto:
    """'deflate' is zlib-wrapped by the standard but raw in practice; accept both, deciding once
    two bytes have arrived."""

    def __init__(self) -> None:
        self._obj: Any = None
        self._head = b""
        self.unconsumed_tail = b""

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._obj is None:
            self._head += data
            if len(self._head) < 2:
                return b""
            data, self._head = self._head, b""
            zlib_wrapped = (data[0] & 0x0F) == 8 and int.from_bytes(data[:2], "big") % 31 == 0
            self._obj = zcodec.decompressobj(zcodec.MAX_WBITS if zlib_wrapped else -zcodec.MAX_WBITS)
        out: bytes = self._obj.decompress(data, max_length)
        self.unconsumed_tail = self._obj.unconsumed_tail
        return out

    def flush(self) -> bytes:
        if self._obj is None:
            if self._head:
                raise zlib.error("truncated deflate stream")
            return b""
        out: bytes = self._obj.flush()
        return out


class _GzipMembers:
    """gzip that continues into further members, as concatenated gzip files decode."""

    def __init__(self) -> None:
        self._obj: Any = zcodec.decompressobj(16 + zcodec.MAX_WBITS)
        self.unconsumed_tail = b""

    def decompress(self, data: bytes, max_length: int) -> bytes:
        out = self._obj.decompress(data, max_length)
        self.unconsumed_tail = self._obj.unconsumed_tail
        while self._obj.eof and self._obj.unused_data and not self.unconsumed_tail:
            rest = self._obj.unused_data
            self._obj = zcodec.decompressobj(16 + zcodec.MAX_WBITS)
            room = max_length - len(out)
            if room <= 0:
                self.unconsumed_tail = rest
                break
            out += self._obj.decompress(rest, room)
            self.unconsumed_tail = self._obj.unconsumed_tail
        return bytes(out)

    def flush(self) -> bytes:
        out: bytes = self._obj.flush()
        return out


GUNZIP_ERRORS: tuple[type[BaseException], ...] = (TooLarge, *zcodec.ERRORS)  # what gunzip_bounded raises on bad input


def gunzip_bounded(data: bytes, limit: int) -> bytes:
    decoder = BoundedDecoder(["gzip"], limit)
    return decoder.feed(data) + decoder.flush()


@dataclass
class FetchResult:
    url: str
    final_url: str
    outcome: str  # "ok" or a failure outcome
    status: int | None = None
    detail: str = ""
    attempts: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # decoded body, only when outcome == "ok"
    # the body exactly as the server gzip-compressed it (Content-Encoding: gzip), kept so that the
    # raw page can be stored without compressing it again
    body_gzip: bytes | None = None
    fetched_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


@dataclass
class HostPolicy:
    concurrency: int
    delay: float


@dataclass
class _HostState:
    sem: asyncio.Semaphore
    delay: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    next_start: float = 0.0
    robots: RobotFileParser | None = None
    robots_error: str | None = None
    robots_loaded: bool = False
    robots_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    failures: int = 0
    backoff_until: float = 0.0  # monotonic time before which the host is not asked again (Retry-After over the cap)
    backoff_reason: str = ""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _is_tls_error(exc: BaseException) -> bool:
    """True when a transport error was caused by TLS (handshake, certificate, protocol)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError | ssl.CertificateError):
            return True
        text = str(current).upper()
        if "CERTIFICATE" in text or "SSL" in text or "TLS" in text:
            return True
        current = current.__cause__ or current.__context__
    return False


def _declared_too_large(declared: str | None, limit: int) -> bool:
    """A Content-Length that cannot decode to ``limit`` bytes or fewer: compression never grows data by
    more than a small fraction, so an encoded body this long is over the cap decoded too."""
    if not declared or not declared.strip().isdigit():
        return False
    return int(declared) > limit + limit // 64 + 65536


_LOCATION = "x-newsdesk-location"


async def _stash_location(response: httpx.Response) -> None:
    """Move Location aside before httpx looks at it: even with redirects off, httpx builds the next
    request from it and raises on hostile values (``data:``, broken URLs). We judge it ourselves."""
    if "location" in response.headers:
        response.headers[_LOCATION] = response.headers["location"]
        del response.headers["location"]


def looks_binary(body: bytes) -> bool:
    head = body[:16]
    return any(head.startswith(m) for m in _BINARY_MAGIC)


def looks_html(body: bytes) -> bool:
    head = body[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<!--")) or b"<html" in head or b"<body" in head


class Fetcher:
    """Fetches URLs politely. Use as ``async with Fetcher(settings) as f: await f.fetch_many(urls)``."""

    def __init__(self, settings: Settings, host_policies: dict[str, HostPolicy] | None = None) -> None:
        self.settings = settings
        self.host_policies = dict(host_policies or {})
        self._hosts: dict[str, _HostState] = {}
        self._global = asyncio.Semaphore(settings.concurrency)
        self._client: httpx.AsyncClient | None = None
        self.allow = HostAllowList(settings.allow_hosts)

    async def __aenter__(self) -> Fetcher:
        s = self.settings
        limits = httpx.Limits(max_connections=s.concurrency, max_keepalive_connections=s.concurrency)
        transport = httpx.AsyncHTTPTransport(limits=limits, retries=0)
        ssl_context = ssl.create_default_context()
        # connect only to checked addresses: swap in a pool with the guarded network backend
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=s.concurrency,
            max_keepalive_connections=s.concurrency,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(self.allow),
        )
        self._client = httpx.AsyncClient(
            transport=transport,
            # proxies from the environment would get their own, unguarded transports
            trust_env=False,
            follow_redirects=False,
            event_hooks={"response": [_stash_location]},
            timeout=httpx.Timeout(s.read_timeout, connect=s.connect_timeout),
            headers={
                "User-Agent": s.user_agent,
                "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.5",
                "Accept-Encoding": "gzip, deflate",
            },
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- politeness -----------------------------------------------------------------------------
    def _host(self, host: str) -> _HostState:
        state = self._hosts.get(host)
        if state is None:
            policy = self.host_policies.get(host)
            conc = policy.concurrency if policy else self.settings.host_concurrency
            delay = policy.delay if policy else self.settings.host_delay
            state = _HostState(sem=asyncio.Semaphore(conc), delay=delay)
            self._hosts[host] = state
        return state

    async def _wait_turn(self, state: _HostState) -> None:
        async with state.lock:
            now = time.monotonic()
            wait = state.next_start - now
            state.next_start = max(now, state.next_start) + state.delay
        if wait > 0:
            await asyncio.sleep(wait)

    # -- robots.txt -----------------------------------------------------------------------------
    async def robots_check(self, url: str) -> tuple[bool, str]:
        """(allowed, reason). reason is 'robots_disallowed' or 'robots_unavailable' when refused."""
        if not self.settings.respect_robots:
            return True, ""
        host = host_of(url)
        state = self._host(host)
        async with state.robots_lock:
            if not state.robots_loaded:
                await self._load_robots(url, state)
        if state.robots_error:
            return False, "robots_unavailable"
        if state.robots is not None and not state.robots.can_fetch(self.settings.user_agent, url):
            return False, "robots_disallowed"
        return True, ""

    async def _load_robots(self, url: str, state: _HostState) -> None:
        parts = urlsplit(url)
        robots_url = f"{parts.scheme}://{parts.netloc}/robots.txt"
        result = await self._fetch_raw(robots_url, limit=self.settings.robots_max_bytes, truncate=True)
        # follow up to five redirects (http -> https, www); a chain that goes nowhere counts as no robots.txt
        hops = 0
        while result.outcome == "redirect" and hops < ROBOTS_MAX_REDIRECTS:
            hops += 1
            target = urljoin(robots_url, result.detail)
            if urlsplit(target).scheme.lower() not in ("http", "https"):
                break
            blocked = self._literal_refusal(target)
            if blocked:
                result = FetchResult(target, target, "blocked_address", None, blocked)
                break
            robots_url = target
            result = await self._fetch_raw(robots_url, limit=self.settings.robots_max_bytes, truncate=True)
        state.robots_loaded = True
        if result.outcome == "redirect":
            state.robots = None  # RFC 9309: an unfollowable redirect chain is treated as unavailable (allow)
            return
        if result.outcome == "ok" and result.status == 200 and result.body is not None:
            parser = RobotFileParser()
            parser.parse(result.body.decode("utf-8", "replace").splitlines())
            state.robots = parser
            crawl_delay = parser.crawl_delay(self.settings.user_agent)
            if crawl_delay:
                state.delay = max(state.delay, min(float(crawl_delay), self.settings.retry_after_cap))
        elif result.status is not None and 400 <= result.status < 500:
            state.robots = None  # no robots.txt: everything allowed
        elif result.outcome in ("blocked_address", "tls_error", "bad_url"):
            state.robots = None  # the page fetch fails too, and is recorded with the right outcome
        else:
            state.robots_error = result.outcome
            state.robots_loaded = result.outcome != "host_backoff"

    # -- fetching -------------------------------------------------------------------------------
    async def fetch_many(self, urls: list[str], headers: dict[str, dict[str, str]] | None = None) -> list[FetchResult]:
        headers = headers or {}
        return list(await asyncio.gather(*(self.fetch(u, headers=headers.get(u)) for u in urls)))

    async def fetch(self, url: str, headers: dict[str, str] | None = None, limit: int | None = None) -> FetchResult:
        """Fetch one URL following redirects; checks robots.txt and the address policy for every hop.
        ``limit`` overrides the decoded body cap (``settings.max_bytes``), e.g. for sitemaps."""
        async with self._global:
            return await self._fetch_following(url, headers or {}, limit or self.settings.max_bytes)

    def _literal_refusal(self, url: str) -> str | None:
        """Refuse an address-literal host before any connection is attempted (in every spelling,
        also those the URL parser would reject)."""
        parts = urlsplit(url)
        try:
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 0)
        except ValueError:
            return None  # a bad port: the client reports bad_url
        return literal_blocked_reason(parts.hostname or "", port, self.allow)

    async def _fetch_following(self, url: str, headers: dict[str, str], limit: int) -> FetchResult:
        seen = {url}
        current = url
        total_attempts = 0
        for _hop in range(self.settings.max_redirects + 1):
            blocked = self._literal_refusal(current)
            if blocked:
                return FetchResult(url, current, "blocked_address", None, blocked, total_attempts)
            allowed, reason = await self.robots_check(current)
            if not allowed:
                return FetchResult(url, current, reason, attempts=total_attempts, detail=host_of(current))
            result = await self._fetch_raw(current, limit=limit, extra_headers=headers)
            total_attempts += result.attempts
            result.attempts = total_attempts
            result.url = url
            if result.outcome != "redirect":
                return result
            location = result.detail
            target = urljoin(current, location)
            scheme = urlsplit(target).scheme.lower()
            if scheme not in ("http", "https"):
                return FetchResult(url, current, "bad_redirect", result.status, f"to {scheme}: URL", total_attempts)
            if target in seen:
                return FetchResult(url, target, "redirect_loop", result.status, target, total_attempts)
            seen.add(target)
            current = target
        return FetchResult(url, current, "too_many_redirects", None, f"more than {self.settings.max_redirects}", total_attempts)

    async def _fetch_raw(self, url: str, limit: int, extra_headers: dict[str, str] | None = None,
                         truncate: bool = False) -> FetchResult:
        """One URL, no redirect following, with retries. outcome 'redirect' carries Location in detail."""
        assert self._client is not None, "use Fetcher as an async context manager"
        host = host_of(url)
        state = self._host(host)
        last: FetchResult | None = None
        for attempt in range(self.settings.max_retries + 1):
            refusal = self._host_refusal(state, host, url, attempt)
            if refusal is not None:
                return refusal
            async with state.sem:
                await self._wait_turn(state)
                # checked again once our turn comes: requests queued behind a failing host stop here
                refusal = self._host_refusal(state, host, url, attempt)
                if refusal is not None:
                    return refusal
                result = await self._attempt(url, limit, extra_headers or {}, truncate)
            result.attempts = attempt + 1
            last = result
            retry_after: float | None = None
            if result.outcome in ("timeout", "network_error"):
                state.failures += 1
            elif result.status in RETRY_STATUSES:
                state.failures += 1
                retry_after = parse_retry_after(result.headers.get("retry-after"))
            else:
                if result.status is not None:
                    state.failures = 0
                return result
            if retry_after is not None and retry_after > self.settings.retry_after_cap:
                # asked to stay away longer than we wait: do not come back early, neither for this URL
                # nor for the host's others; the outcome is transient, so a later run tries again
                state.backoff_until = max(state.backoff_until, time.monotonic() + retry_after)
                state.backoff_reason = f"{host} asked for {retry_after:.0f}s (Retry-After) with {result.status}"
                result.detail = f"Retry-After {retry_after:.0f}s is over the {self.settings.retry_after_cap:g}s cap"
                break
            if attempt == self.settings.max_retries:
                break
            backoff = self.settings.backoff_base * (2**attempt) * (1 + random.random() * 0.25)
            wait = max(backoff, retry_after or 0.0)
            # the host waits too: later requests to it do not start before the retry
            async with state.lock:
                state.next_start = max(state.next_start, time.monotonic() + wait)
            await asyncio.sleep(wait)
        assert last is not None
        return last

    def _host_refusal(self, state: _HostState, host: str, url: str, attempts: int) -> FetchResult | None:
        if state.failures >= HOST_FAILURE_LIMIT:
            return FetchResult(url, url, "host_backoff", None,
                               f"{host} failed {state.failures} times in a row this run", attempts)
        if state.backoff_until > time.monotonic():
            return FetchResult(url, url, "host_backoff", None, state.backoff_reason, attempts)
        return None

    async def _attempt(self, url: str, limit: int, extra_headers: dict[str, str], truncate: bool) -> FetchResult:
        assert self._client is not None
        try:
            async with asyncio.timeout(self.settings.request_deadline):
                return await self._attempt_inner(url, limit, extra_headers, truncate)
        except TimeoutError:
            return FetchResult(url, url, "timeout", None, f"no complete response within {self.settings.request_deadline:g}s")
        except httpx.TimeoutException as exc:
            return FetchResult(url, url, "timeout", None, type(exc).__name__)
        except BlockedAddress as exc:
            return FetchResult(url, url, "blocked_address", None, str(exc))
        except (httpx.TransportError, httpx.DecodingError) as exc:
            # never retried without verification: a TLS failure is settled as tls_error
            if url.lower().startswith("https:") and _is_tls_error(exc):
                return FetchResult(url, url, "tls_error", None, f"{type(exc).__name__}: {exc}"[:300])
            return FetchResult(url, url, "network_error", None, f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__)
        except httpx.InvalidURL as exc:
            return FetchResult(url, url, "bad_url", None, str(exc)[:300])

    async def _attempt_inner(self, url: str, limit: int, extra_headers: dict[str, str], truncate: bool) -> FetchResult:
        assert self._client is not None
        async with self._client.stream("GET", url, headers=extra_headers) as response:
            status = response.status_code
            headers = {k: response.headers[k] for k in KEPT_HEADERS if k in response.headers}
            if "retry-after" in response.headers:
                headers["retry-after"] = response.headers["retry-after"]
            base = FetchResult(url, str(response.url), "ok", status, "", headers=headers)
            if status in (301, 302, 303, 307, 308):
                location = response.headers.get(_LOCATION)
                if not location:
                    base.outcome, base.detail = f"http_{status}", "redirect without Location"
                    return base
                base.outcome, base.detail = "redirect", location
                return base
            if status == 304:
                base.outcome = "not_modified"
                return base
            if status != 200:
                base.outcome = f"http_{status}"
                return base
            declared = response.headers.get("content-length")
            if not truncate and _declared_too_large(declared, limit):
                base.outcome, base.detail = "too_large", f"Content-Length {declared} over the {limit}-byte cap"
                return base
            encodings = [e.strip().lower() for e in response.headers.get("content-encoding", "").split(",") if e.strip()]
            try:
                decoder = BoundedDecoder(encodings, limit)
            except ValueError as exc:
                base.outcome, base.detail = "decode_error", str(exc)
                return base
            chunks: list[bytes] = []
            keep_raw = not truncate and encodings in (["gzip"], ["x-gzip"])
            raw_chunks: list[bytes] = []
            try:
                async for raw in response.aiter_raw():
                    chunks.append(decoder.feed(raw))
                    if keep_raw:
                        raw_chunks.append(raw)
                chunks.append(decoder.flush())
            except TooLarge:
                if truncate:
                    base.body = b"".join(chunks)[:limit]
                    return base
                base.outcome, base.detail = "too_large", f"over {limit} bytes decoded"
                return base
            except zcodec.ERRORS as exc:
                base.outcome, base.detail = "decode_error", f"bad {','.join(encodings)} stream: {exc}"
                return base
            base.body = b"".join(chunks)
            if keep_raw:
                base.body_gzip = b"".join(raw_chunks)
            return base


def classify_page(result: FetchResult, limit: int) -> FetchResult:
    """Decide whether a fetched page goes to extraction; binary or non-HTML bodies are refused."""
    if not result.ok or result.body is None:
        return result
    body = result.body
    if body[:2] == b"\x1f\x8b":  # gzip served without Content-Encoding
        try:
            body = gunzip_bounded(body, limit)
        except TooLarge:
            result.outcome, result.detail, result.body = "too_large", "gzip body over the size cap", None
            return result
        except zcodec.ERRORS:
            result.outcome, result.detail, result.body = "not_html", "corrupt gzip body", None
            return result
        result.body_gzip, result.body = result.body, body
    ctype = result.content_type
    if looks_binary(body):
        result.outcome, result.detail, result.body = "not_html", f"binary content ({ctype or 'no type'})", None
        return result
    if ctype in HTML_TYPES or (ctype in ("", "text/plain", "application/octet-stream") and looks_html(body)):
        return result
    result.outcome, result.detail, result.body = "not_html", ctype or "no content type", None
    return result
