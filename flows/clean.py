"""Cleaning: trafilatura over fetched HTML in a process pool (extraction is CPU-bound).

``extract_page`` is a plain function of bytes in, fields out; ``Extractor`` runs it across a pool
sized to the cores, a chunk of pages per task so that inter-process traffic stays small.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import multiprocessing
import os
import re
import zlib
from concurrent.futures import Executor, ProcessPoolExecutor
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

__all__ = ["EXTRACTOR", "EXTRACTOR_VERSION", "decode_html", "extract_page", "extract_chunk", "Extractor"]

EXTRACTOR = "trafilatura"
EXTRACTOR_VERSION = version("trafilatura")

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


def extract_page(item: dict[str, Any], mode: str = "precision") -> dict[str, Any]:
    """Extract one page. ``item`` has url, final_url, body (bytes), content_type, has_source_date."""
    import htmldate
    import trafilatura

    body: bytes = item["body"]
    out: dict[str, Any] = {"url": item["url"], "extract_error": None}
    html_text, encoding = decode_html(body, item.get("content_type", ""))
    out["encoding"] = encoding
    out["body_gz"] = zlib.compress(body, 6)
    page_url = item.get("final_url") or item["url"]
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    date_params = {"extensive_search": False, "original_date": True, "max_date": today,
                   "deferred_url_extractor": True}
    try:
        doc = trafilatura.bare_extraction(
            html_text,
            url=page_url,
            with_metadata=True,
            include_comments=False,
            include_tables=True,
            favor_precision=mode == "precision",
            favor_recall=mode == "recall",
            date_extraction_params=date_params,
        )
    except Exception as exc:  # trafilatura raised on a hostile page: recorded, not fatal
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
    if meta_date and meta_date == in_url:
        # the URL may have supplied it; ask again without the URL to tell them apart
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
    out["page_timestamp"] = _full_timestamp(body[:65536], date_value) if date_source == "metadata" and date_value else None
    return out


def extract_chunk(items: list[dict[str, Any]], mode: str = "precision") -> list[dict[str, Any]]:
    return [extract_page(item, mode) for item in items]


def _warm() -> None:
    import htmldate  # noqa: F401
    import trafilatura  # noqa: F401


class Extractor:
    """A process pool for extraction; ``workers=1`` runs in-process (no pool)."""

    def __init__(self, workers: int, mode: str = "precision") -> None:
        self.workers = max(1, workers)
        self.mode = mode
        self._pool: Executor | None = None

    def _get_pool(self) -> Executor | None:
        if self.workers == 1:
            return None
        if self._pool is None:
            ctx = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_warm)
        return self._pool

    async def extract(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not items:
            return []
        pool = self._get_pool()
        if pool is None:
            return extract_chunk(items, self.mode)
        loop = asyncio.get_running_loop()
        size = max(1, -(-len(items) // (self.workers * 2)))
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        results = await asyncio.gather(*(loop.run_in_executor(pool, extract_chunk, c, self.mode) for c in chunks))
        return [row for chunk in results for row in chunk]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Extractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
