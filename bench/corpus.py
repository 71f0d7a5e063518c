"""Serve the shared corpus (``../shared/corpus``) over loopback, with generated feeds and lists.

Page paths mirror the original URLs (``/<host>/<path>``), so a page keeps its real path (and the
date in it, where there is one). ``replicas`` serves each page again under ``/r<k>/...`` to build
larger workloads out of the same HTML.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import escape

from flows.siteserver import Response, shared_dir

CORPORA = {
    "aeb": ("ground-truth.json", "html/{key}.html.gz"),
    "fundus": ("ground_truth.json", "html/{key}.html.gz"),
}


@dataclass
class CorpusPage:
    corpus: str
    key: str
    url: str  # original URL
    path: str  # served path
    file: Path
    truth: dict


def corpus_dir() -> Path:
    return shared_dir() / "corpus"


def load_pages(corpus: str) -> list[CorpusPage]:
    """Pages of one corpus with their ground truth, in a stable order."""
    truth_name, pattern = CORPORA[corpus]
    base = corpus_dir() / corpus
    truth = json.loads((base / truth_name).read_text(encoding="utf-8"))
    pages = []
    for key in sorted(truth):
        entry = truth[key]
        stem = key[:-8] if key.endswith(".html.gz") else key
        file = base / pattern.format(key=stem)
        if not file.exists():
            continue
        parts = urlsplit(entry["url"])
        path = "/" + parts.netloc + (parts.path or "/")
        if parts.query:
            path += "?" + parts.query
        pages.append(CorpusPage(corpus, stem, entry["url"], quote(path, safe="/?=&%:+,;@"), file, entry))
    return pages


class CorpusHandler:
    """Route handler: pages at their mirrored paths, plus /feeds/all.xml, /sitemaps/all.xml,
    /lists/all.txt over every page (and replica)."""

    def __init__(self, pages: list[CorpusPage], replicas: int = 1) -> None:
        self.pages = pages
        self.replicas = max(1, replicas)
        self.by_path = {p.path: p for p in pages}
        self.base = ""
        self._cache: dict[Path, bytes] = {}

    def bind(self, base: str) -> CorpusHandler:
        self.base = base
        return self

    def paths(self) -> list[str]:
        out: list[str] = []
        for k in range(self.replicas):
            prefix = "" if k == 0 else f"/r{k}"
            out.extend(prefix + p.path for p in self.pages)
        return out

    def urls(self) -> list[str]:
        return [self.base + p for p in self.paths()]

    def page_for(self, path: str) -> CorpusPage | None:
        if path.startswith("/r") and path[2:3].isdigit():
            path = "/" + path.split("/", 2)[2]
        return self.by_path.get(path)

    def body(self, page: CorpusPage) -> bytes:
        data = self._cache.get(page.file)
        if data is None:
            data = gzip.decompress(page.file.read_bytes())
            self._cache[page.file] = data
        return data

    def __call__(self, raw_path: str, headers: dict[str, str]) -> Response:
        if raw_path == "/robots.txt":
            return Response(200, b"User-agent: *\nAllow: /\n", {"Content-Type": "text/plain"})
        if raw_path == "/lists/all.txt":
            return Response(200, "\n".join(self.urls()).encode(), {"Content-Type": "text/plain; charset=utf-8"})
        if raw_path == "/sitemaps/all.xml":
            items = "".join(f"<url><loc>{escape(u)}</loc></url>" for u in self.urls())
            xml = f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{items}</urlset>'
            return Response(200, xml.encode(), {"Content-Type": "application/xml"})
        if raw_path == "/feeds/all.xml":
            now = format_datetime(datetime(2024, 1, 1, tzinfo=UTC), usegmt=True)
            items = "".join(f"<item><title>page {i}</title><link>{escape(u)}</link><guid>{escape(u)}</guid></item>"
                            for i, u in enumerate(self.urls()))
            xml = (f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>corpus</title>'
                   f"<link>{self.base}/</link><description>corpus</description><lastBuildDate>{now}</lastBuildDate>"
                   f"{items}</channel></rss>")
            return Response(200, xml.encode(), {"Content-Type": "application/rss+xml"})
        page = self.page_for(raw_path)
        if page is None:
            return Response(404, b"not found", {"Content-Type": "text/plain"})
        return Response(200, self.body(page), {"Content-Type": "text/html"})


def load_dated_pages() -> list[tuple[str, Path, str]]:
    """htmldate-news pages: (original URL, file, true publication date YYYY-MM-DD)."""
    base = corpus_dir() / "htmldate-news"
    dates = json.loads((base / "dates.json").read_text(encoding="utf-8"))
    out = []
    for url, entry in sorted(dates.items()):
        candidates = [base / "html" / (entry["file"] + ".gz"), base / "html" / entry["file"]]
        file = next((c for c in candidates if c.exists()), None)
        if file is not None and isinstance(entry.get("date"), str):
            out.append((url, file, entry["date"]))
    return out


def read_page(file: Path) -> bytes:
    data = file.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def build_warc(target: Path, records: list[tuple[str, bytes, datetime]], compress: bool = True) -> Path:
    """Write HTTP response records (url, html, crawl time) as a WARC, gzip per record when ``compress``."""
    from io import BytesIO

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    with target.open("wb") as handle:
        writer = WARCWriter(handle, gzip=compress)
        for url, html, crawled in records:
            http_headers = StatusAndHeaders(
                "200 OK",
                [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(html))),
                 ("Server", "nginx"), ("Date", format_datetime(crawled, usegmt=True))],
                protocol="HTTP/1.1",
            )
            record = writer.create_warc_record(
                url, "response", payload=BytesIO(html), http_headers=http_headers,
                warc_headers_dict={"WARC-Date": crawled.strftime("%Y-%m-%dT%H:%M:%SZ")},
            )
            writer.write_record(record)
    return target
