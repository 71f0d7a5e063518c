"""Cleaning: trafilatura over fetched HTML in a process pool (extraction is CPU-bound).

``extract_page`` is a plain function of bytes in, fields out; ``Extractor`` runs it across a pool
sized to the cores, a chunk of pages per task so that inter-process traffic stays small.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import multiprocessing
import os
import re
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

from flows import zcodec
from flows.fastrules import native_rules

__all__ = ["EXTRACTOR", "EXTRACTOR_VERSION", "decode_html", "extract_page", "extract_chunk", "Extractor",
           "extract_chunk_guarded", "PageTimeout", "MAX_HTML_BYTES", "MAX_HTML_TAGS", "PAGE_TIME_LIMIT"]

EXTRACTOR = "trafilatura"
EXTRACTOR_VERSION = version("trafilatura")

# bounds on one page's extraction: pages past them are recorded as extract_error, never parsed
MAX_HTML_BYTES = 8 * 1024 * 1024  # a news article is rarely over 2 MB; 20 MB one-liners are attacks
MAX_HTML_TAGS = 250_000  # '<' count; extraction time grows with elements (a million take about a minute)
PAGE_TIME_LIMIT = 30.0  # seconds per page (SIGALRM in the worker); a worker stuck in C is killed later
HARD_GRACE = 60.0  # beyond the per-page limits, before a chunk's worker is deemed hung and the pool killed

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.I)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_\-:.]+)", re.I)
_URL_DATE = re.compile(r"/((?:19|20)\d{2})[/_-](0?[1-9]|1[0-2])[/_-](0?[1-9]|[12]\d|3[01])(?:/|[_-]|\.|$)")
_LD_ARTICLE = re.compile(rb'"@type"\s*:\s*\[?\s*"(?:\w*Article|BlogPosting|Report|LiveBlogPosting)"')
_HTML_LANG = re.compile(rb"<html[^>]*\blang\s*=\s*[\"']?([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]+)?", re.I)
_FULL_TS_PATTERNS = [
    re.compile(rb"""<meta[^>]+(?:property|name|itemprop)\s*=\s*["'](?:article:published_time|datePublished|pubdate|publishdate|og:published_time|dc\.date\.issued|parsely-pub-date|sailthru\.date)["'][^>]*content\s*=\s*["']([^"']{10,40})["']""", re.I),
    re.compile(rb"""<meta[^>]+content\s*=\s*["']([^"']{10,40})["'][^>]*(?:property|name|itemprop)\s*=\s*["'](?:article:published_time|datePublished|pubdate|og:published_time)["']""", re.I),
    re.compile(rb""""datePublished"\s*:\s*"([^"]{10,40})\""""),
]

logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
logging.getLogger("htmldate").setLevel(logging.CRITICAL)


# labels that browsers decode as windows-1252 (WHATWG Encoding Standard)
_AS_CP1252 = {"latin_1", "iso8859-1", "iso-8859-1", "ascii", "us-ascii", "iso8859_1", "cp819"}
_TEXT_CODEC_BLOCKLIST = {"unicode_escape", "raw_unicode_escape", "utf_7", "punycode", "idna", "rot_13",
                         "base64_codec", "hex_codec", "zlib_codec", "bz2_codec", "quopri_codec", "uu_codec"}


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        codec = codecs.lookup(name.strip().lower()).name
    except LookupError:
        return None
    if codec in _AS_CP1252:
        return "cp1252"
    if codec in _TEXT_CODEC_BLOCKLIST or codec.startswith("utf_16") or codec.startswith("utf-16"):
        return None
    return codec


def decode_html(body: bytes, content_type: str = "") -> tuple[str, str]:
    """Decode with BOM, then valid UTF-8, then the declared charset (header, then meta), then
    detection; invalid bytes are replaced. Returns (text, encoding used)."""
    for bom, enc in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if body.startswith(bom):
            return body.decode(enc, "replace").lstrip("\ufeff"), enc + "-bom"
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    match = _HEADER_CHARSET.search(content_type or "")
    declared = _codec(match.group(1)) if match else None
    if declared is None:
        meta = _META_CHARSET.search(body[:4096])
        declared = _codec(meta.group(1).decode("ascii", "replace")) if meta else None
    if declared and declared not in ("utf-8", "utf_8"):
        try:
            return body.decode(declared), declared
        except (UnicodeDecodeError, LookupError):
            pass
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(body[:65536]).best()
        if best is not None and best.encoding:
            return body.decode(best.encoding, "replace"), best.encoding
    except Exception:  # detection is best effort; replacement decoding follows
        pass
    return body.decode(declared or "cp1252", "replace"), (declared or "cp1252") + "-replace"


def url_date(url: str) -> str | None:
    match = _URL_DATE.search(url)
    if not match:
        return None
    try:
        return datetime(int(match.group(1)), int(match.group(2)), int(match.group(3))).strftime("%Y-%m-%d")
    except ValueError:
        return None


def _full_timestamp(head: bytes, day: str) -> str | None:
    """The page's own timestamp (with time and offset) when it agrees with the extracted day."""
    for pattern in _FULL_TS_PATTERNS:
        for match in pattern.finditer(head):
            value = match.group(1).decode("ascii", "replace").strip()
            if value[:10] == day:
                try:
                    datetime.fromisoformat(value.replace("Z", "+00:00"))
                except ValueError:
                    continue
                return value
    return None


def _raw_form(item: dict[str, Any]) -> bytes | None:
    """The page as stored in ``pages.body_gz`` (zlib of the body), unless the caller keeps the raw page
    itself (``keep_body`` false: a WARC record's own gzip member is stored instead, or the page came
    from storage): then None, and no CPU is spent compressing."""
    if not item.get("keep_body", True):
        return None
    return zcodec.compress(item.get("body") or b"", 1)


_CONTROL_BYTES = bytes(range(0x00, 0x09)) + b"\x0b\x0c" + bytes(range(0x0E, 0x20))
_NONCHARACTER = re.compile(rb"\xef\xbf[\xbe\xbf]")  # U+FFFE, U+FFFF in UTF-8


def _has_noncharacter(body: bytes) -> bool:
    """Whether the UTF-8 ``body`` holds U+FFFE or U+FFFF. Their lead byte 0xEF is rare in most pages
    and a one-byte search is a memchr, about 20 times faster than searching for both sequences."""
    at = body.find(b"\xef")
    for _ in range(64):
        if at < 0:
            return False
        if body[at + 1 : at + 3] in (b"\xbf\xbe", b"\xbf\xbf"):
            return True
        at = body.find(b"\xef", at + 1)
    return at >= 0 and _NONCHARACTER.search(body, at) is not None  # a page full of U+F000-U+FFFF characters


_PARSERS: dict[int, Any] = {}


def _tree_parser(model: Any) -> Any:
    """A parser with ``model``'s options whose elements are all lxml.html's HtmlElement, chosen in C.

    lxml.html's own parsers pick each element's class in a Python method (forms and inputs get
    their own classes), called for every element object created: about 1 ms of an extraction.
    trafilatura uses none of those form classes' extras."""
    parser = _PARSERS.get(id(model))
    if parser is None:
        from lxml import etree, html

        parser = model.copy()  # the same options
        parser.set_element_class_lookup(etree.ElementDefaultClassLookup(
            element=html.HtmlElement, comment=html.HtmlComment, pi=html.HtmlProcessingInstruction))
        _PARSERS[id(model)] = parser
    return parser


def html_tree(body: bytes, html_text: str, encoding: str) -> Any:
    """The page as trafilatura would parse it, or ``html_text`` itself when trafilatura must do it.

    trafilatura's loader first deletes control characters from the whole text with a regular
    expression, which costs about 4% of an extraction although nearly every page has none. For a
    UTF-8 page whose bytes hold no control character, no U+FFFE/U+FFFF, no doctype or <html/>
    needing repair, that deletion changes nothing, so the text is parsed here with trafilatura's
    own parser into the same tree. Any other page (or a parse that looks off) goes to trafilatura
    as text, down its usual path."""
    from lxml.html import fromstring

    try:
        from trafilatura.utils import DOCTYPE_TAG, HTML_PARSER
    except ImportError:  # a trafilatura without these: its own loader does everything
        return html_text
    if encoding != "utf-8" or len(body.translate(None, _CONTROL_BYTES)) != len(body):
        return html_text
    if _has_noncharacter(body):
        return html_text
    beginning = html_text[:50].lower()
    if "doctype" in beginning and DOCTYPE_TAG.search(html_text.partition("\n")[0]):
        return html_text
    if any("<html" in line and line.endswith("/>") for line in html_text[:4096].splitlines()[:4]):
        return html_text
    try:
        tree = fromstring(html_text, parser=_tree_parser(HTML_PARSER))
    except Exception:  # noqa: BLE001 - e.g. an encoding declaration in the text: trafilatura's path handles it
        return html_text
    if tree is None or len(tree) < 2:  # trafilatura's fallbacks and checks apply to near-empty trees
        return html_text
    return tree


def _no_license(tree: Any) -> None:
    return None


@contextlib.contextmanager
def _license_search_off() -> Any:
    """trafilatura looks for a license in every page (rel=license links, then every link in footer
    blocks: about 1.5 ms a page, 4% of an extraction). newsdesk stores no license, so the search is
    switched off for the duration of its own extraction calls; nothing newsdesk keeps changes."""
    import trafilatura.metadata as metadata

    original = getattr(metadata, "extract_license", None)
    if original is None:  # a trafilatura without it: nothing to switch off
        yield
        return
    metadata.extract_license = _no_license
    try:
        yield
    finally:
        metadata.extract_license = original


def extract_page(item: dict[str, Any], mode: str = "precision") -> dict[str, Any]:
    """Extract one page. ``item`` has url, final_url, body (bytes), content_type, has_source_date, and
    optionally keep_body (default true: return the compressed body as ``body_gz``)."""
    import htmldate
    import trafilatura

    body: bytes = item["body"]
    out: dict[str, Any] = {"url": item["url"], "extract_error": None}
    html_text, encoding = decode_html(body, item.get("content_type", ""))
    out["encoding"] = encoding
    out["body_gz"] = _raw_form(item)
    page_url = item.get("final_url") or item["url"]
    if len(body) > MAX_HTML_BYTES:
        out["extract_error"] = f"page too large to extract: {len(body)} bytes (cap {MAX_HTML_BYTES})"
        return out
    tags = body.count(b"<") if len(body) > MAX_HTML_TAGS else 0  # a shorter page cannot hold more tags
    if tags > MAX_HTML_TAGS:
        out["extract_error"] = f"page has too many elements to extract: {tags} tags (cap {MAX_HTML_TAGS})"
        return out
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    date_params = {"extensive_search": False, "original_date": True, "max_date": today,
                   "deferred_url_extractor": True}
    try:
        with _license_search_off(), native_rules():
            doc = trafilatura.bare_extraction(
                html_tree(body, html_text, encoding),
                url=page_url,
                with_metadata=True,
                include_comments=False,
                include_tables=True,
                favor_precision=mode == "precision",
                favor_recall=mode == "recall",
                date_extraction_params=date_params,
            )
    except Exception as exc:  # trafilatura raised on a hostile page (RecursionError, lxml errors): recorded, not fatal
        out["extract_error"] = f"{type(exc).__name__}: {exc}"[:300]
        return out
    if doc is None:
        out["text"] = ""
        return out
    fields = doc if isinstance(doc, dict) else {k: getattr(doc, k, None) for k in doc.__slots__}
    out["title"] = fields.get("title")
    author = fields.get("author") or ""
    out["authors"] = [a.strip() for a in re.split(r";|\s+and\s+|,\s*(?=[A-Z])", author) if a.strip()]
    out["sitename"] = fields.get("sitename")
    out["description"] = fields.get("description")
    out["categories"] = [c for c in (fields.get("categories") or []) if c]
    out["tags"] = [t for t in (fields.get("tags") or []) if t]
    out["text"] = fields.get("text") or ""
    out["canonical"] = fields.get("url")
    out["pagetype"] = (fields.get("pagetype") or "").lower() or None
    out["ld_article"] = bool(_LD_ARTICLE.search(body))
    lang_match = _HTML_LANG.search(body[:8192])
    out["html_lang"] = lang_match.group(1).decode("ascii").lower() if lang_match else None

    # publication date with provenance: page metadata, else the URL, else the page text
    meta_date = fields.get("date")
    in_url = url_date(page_url) or (url_date(out["canonical"]) if out["canonical"] else None)
    date_value, date_source = None, None
    head = body[:65536]
    stamp = _full_timestamp(head, meta_date) if meta_date else None
    if meta_date and meta_date == in_url and stamp is None:
        # the URL may have supplied it (no published-time tag in the head says that day): ask again
        # without the URL to tell them apart
        without_url = htmldate.find_date(html_text, extensive_search=False, original_date=True, url="",
                                         max_date=today)
        date_value, date_source = (meta_date, "metadata") if without_url == meta_date else (in_url, "url")
    elif meta_date:
        date_value, date_source = meta_date, "metadata"
    elif in_url:
        date_value, date_source = in_url, "url"
    elif not item.get("has_source_date"):
        found = htmldate.find_date(html_text, extensive_search=True, original_date=True, url="", max_date=today)
        if found:
            date_value, date_source = found, "text"
    out["page_date"] = date_value
    out["page_date_source"] = date_source
    out["page_timestamp"] = stamp if date_source == "metadata" and date_value == meta_date else None
    out["fields"] = structured_fields(out.get("text") or "", out.get("title"), out.get("authors") or [])
    return out


def structured_fields(text: str, title: str | None, authors: list[str]) -> dict[str, Any] | None:
    """Quotes, entities, amounts and byline of the clean text, computed here in the worker with the
    extraction (per-article Python). None for an empty text."""
    if not text.strip():
        return None
    from transforms.fields import article_fields

    return article_fields(text, title, authors)


def extract_chunk(items: list[dict[str, Any]], mode: str = "precision") -> list[dict[str, Any]]:
    return [extract_page(item, mode) for item in items]


_IN_WORKER = False  # set in pool workers: only there may a page's SIGALRM timer run


def _ready() -> None:
    """A no-op task: submitted to start a pool's workers (their initializer warms them)."""


def _warm() -> None:
    global _IN_WORKER
    _IN_WORKER = True
    import htmldate  # noqa: F401
    import trafilatura  # noqa: F401

    from transforms.fields import warm

    warm()


class PageTimeout(BaseException):  # noqa: N818 - BaseException so library code's "except Exception" cannot swallow it
    """A page's extraction ran past its time limit."""


def _on_alarm(signum: int, frame: object) -> None:
    raise PageTimeout


def _failed_row(item: dict[str, Any], error: str) -> dict[str, Any]:
    """What ``extract_page`` returns for a page it could not extract (the raw page is still kept)."""
    return {"url": item["url"], "extract_error": error[:300], "encoding": None, "body_gz": _raw_form(item)}


def _extract_limited(item: dict[str, Any], mode: str, time_limit: float) -> dict[str, Any]:
    """``extract_page`` under a per-page time limit (a SIGALRM timer, in a pool worker's main thread
    with no other SIGALRM handler; never in the caller's process, where a late alarm could land in
    unrelated code); any escaping error becomes the page's extract_error."""
    use_timer = (
        _IN_WORKER
        and time_limit > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)
    )
    previous: Any = None
    if use_timer:
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, time_limit)
    try:
        return extract_page(item, mode)
    except PageTimeout:
        return _failed_row(item, f"extraction took over {time_limit:g}s")
    except Exception as exc:  # outside trafilatura (decoding, date search): recorded, not fatal
        return _failed_row(item, f"{type(exc).__name__}: {exc}")
    finally:
        if use_timer:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def extract_chunk_guarded(items: list[dict[str, Any]], mode: str = "precision",
                          time_limit: float = PAGE_TIME_LIMIT) -> list[dict[str, Any]]:
    """The pool's task: every page bounded in time and size, one row per page whatever happens."""
    rows = []
    for item in items:
        try:
            rows.append(_extract_limited(item, mode, time_limit))
        except PageTimeout:  # the alarm fired between the page's end and the timer's reset
            rows.append(_failed_row(item, f"extraction took over {time_limit:g}s"))
    return rows


ChunkFunc = Callable[[list[dict[str, Any]], str, float], list[dict[str, Any]]]


def _kill(pool: ProcessPoolExecutor) -> None:
    for proc in list(getattr(pool, "_processes", {}).values()):  # no public way to stop a busy worker
        with contextlib.suppress(OSError, AttributeError):
            proc.kill()
    pool.shutdown(wait=False, cancel_futures=True)


class Extractor:
    """A process pool for extraction; ``workers=1`` runs in-process (no pool).

    Each page is bounded: size and element caps before parsing, ``page_timeout`` seconds of extraction
    (SIGALRM in the worker). A worker that dies (segfault, OOM kill) or hangs in C past the per-page
    limits plus ``hard_grace`` is replaced; the pages of the chunks it took down are retried once, one
    at a time in a separate single-worker pool, so a page that kills its worker again is recorded as
    ``extract_error`` and the pages innocently caught with it are extracted. ``chunk_func`` replaces the
    task run in the workers (tests use it to crash a worker on purpose).
    """

    def __init__(self, workers: int, mode: str = "precision", *, page_timeout: float = PAGE_TIME_LIMIT,
                 hard_grace: float = HARD_GRACE, chunk_func: ChunkFunc | None = None) -> None:
        self.workers = max(1, workers)
        self.mode = mode
        self.page_timeout = page_timeout
        self.hard_grace = hard_grace
        self._chunk_func: ChunkFunc = chunk_func or extract_chunk_guarded
        self._pool: ProcessPoolExecutor | None = None
        self._solo: ProcessPoolExecutor | None = None  # the retry pool: one worker, one page at a time
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None  # see extract()
        self.replaced = 0  # pools replaced because a worker died or hung

    @staticmethod
    def _new_pool(workers: int) -> ProcessPoolExecutor:
        ctx = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
        return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_warm)

    def _get_pool(self) -> ProcessPoolExecutor | None:
        if self.workers == 1:
            return None
        if self._pool is None:
            self._pool = self._new_pool(self.workers)
        return self._pool

    def _discard(self, pool: ProcessPoolExecutor, kill: bool) -> None:
        if kill:
            _kill(pool)
        else:
            pool.shutdown(wait=False, cancel_futures=True)
        if self._pool is pool:
            self._pool = None
            self.replaced += 1
        if self._solo is pool:
            self._solo = None
            self.replaced += 1

    def _hard_limit(self, pages: int) -> float:
        return self.page_timeout * pages + self.hard_grace if self.page_timeout > 0 else self.hard_grace * pages

    def warm(self) -> None:
        """Start the workers now (they import trafilatura and warm the field extractors, about a second
        each) so that start-up overlaps the caller's own preparation; returns at once."""
        pool = self._get_pool()
        if pool is not None:
            for _ in range(self.workers):
                pool.submit(_ready)

    async def extract(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not items:
            return []
        pool = self._get_pool()
        if pool is None:
            return self._chunk_func(items, self.mode, self.page_timeout)
        size = max(1, min(10, -(-len(items) // (self.workers * 2))))  # small chunks: no core idles at a batch's end
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            # two chunks per worker submitted at a time, shared by the batches in flight: a worker that
            # finishes a chunk finds the next one queued, even while the caller's event loop is busy
            # (transforming or loading the previous batch) and cannot submit more
            self._slots = (loop, asyncio.Semaphore(self.workers * 2))
        solo_lock = asyncio.Lock()
        results = await asyncio.gather(*(self._run_chunk(c, self._slots[1], solo_lock, size) for c in chunks))
        return [row for chunk in results for row in chunk]

    async def _run_chunk(self, chunk: list[dict[str, Any]], slots: asyncio.Semaphore, solo_lock: asyncio.Lock,
                         size: int) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        async with slots:
            pool = self._get_pool()
            assert pool is not None
            try:
                future = loop.run_in_executor(pool, self._chunk_func, chunk, self.mode, self.page_timeout)
                # a submitted chunk may wait behind one queued chunk per worker: its watchdog allows for that
                return await asyncio.wait_for(future, self._hard_limit(len(chunk)) + self._hard_limit(size))
            except BrokenProcessPool:
                reason = "an extraction worker died"
                self._discard(pool, kill=False)
            except TimeoutError:
                reason = "an extraction worker hung"
                self._discard(pool, kill=True)
        async with solo_lock:
            return await self._retry_alone(chunk, reason)

    async def _retry_alone(self, chunk: list[dict[str, Any]], reason: str) -> list[dict[str, Any]]:
        """The one retry of a lost chunk: page by page in a one-worker pool, so a page that kills or hangs
        its worker again is identified and recorded, and only it."""
        loop = asyncio.get_running_loop()
        rows: list[dict[str, Any]] = []
        for item in chunk:
            if self._solo is None:
                self._solo = self._new_pool(1)
            solo = self._solo
            try:
                future = loop.run_in_executor(solo, self._chunk_func, [item], self.mode, self.page_timeout)
                rows.extend(await asyncio.wait_for(future, self._hard_limit(1)))
            except BrokenProcessPool:
                self._discard(solo, kill=False)
                rows.append(_failed_row(item, f"{reason}; retried alone, its worker died again"))
            except TimeoutError:
                self._discard(solo, kill=True)
                rows.append(_failed_row(item, f"{reason}; retried alone, its worker hung again"))
        return rows

    def close(self) -> None:
        for pool in (self._pool, self._solo):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._pool = self._solo = None

    def __enter__(self) -> Extractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
