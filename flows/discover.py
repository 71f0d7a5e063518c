"""Discovery: turn a source (feed, sitemap, URL list) into candidate article URLs.

Feeds and sitemaps are fetched by our own client and parsed from bytes; each candidate keeps what
the source said about it (title, date and where the date came from, guid).
"""

from __future__ import annotations

import calendar
import io
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urljoin

import feedparser
from lxml import etree

from flows.fetch import Fetcher, FetchResult, TooLarge, gunzip_bounded
from flows.sources import Source

__all__ = ["Candidate", "Discovery", "discover_source", "parse_feed", "parse_sitemap", "parse_url_list",
           "parse_datetime"]

MAX_SITEMAPS = 100  # child sitemaps followed per source
MAX_SITEMAP_DEPTH = 3


@dataclass
class Candidate:
    source: str
    url: str
    title: str | None = None
    published: datetime | None = None
    date_source: str | None = None  # 'feed' or 'sitemap'
    guid: str | None = None


@dataclass
class Discovery:
    source: str
    status: str  # 'ok', 'not_modified', or a failure outcome
    detail: str = ""
    candidates: list[Candidate] = field(default_factory=list)
    etag: str | None = None
    last_modified: str | None = None
    documents: int = 0  # feeds or sitemaps fetched


def parse_datetime(text: str | None) -> datetime | None:
    """ISO 8601 dates and datetimes as found in sitemaps (W3C datetime); naive values are UTC."""
    if not text:
        return None
    value = text.strip()
    if not value:
        return None
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = datetime.strptime(value[:10], "%Y-%m-%d")
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _struct_to_dt(value: object) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None


def parse_feed(body: bytes, feed_url: str, source: str) -> tuple[list[Candidate], str | None]:
    """RSS or Atom from bytes. Returns candidates and an error when the document is not a feed."""
    parsed = feedparser.parse(io.BytesIO(body), response_headers={"content-location": feed_url})
    if parsed.bozo and not parsed.entries:
        exc = parsed.get("bozo_exception")
        return [], f"not a feed: {type(exc).__name__ if exc else 'unparseable'}"
    out = []
    for entry in parsed.entries:
        link = entry.get("link")
        if not link:
            for alt in entry.get("links", []):
                if alt.get("rel", "alternate") == "alternate" and alt.get("href"):
                    link = alt["href"]
                    break
        if not link:
            continue
        published = _struct_to_dt(entry.get("published_parsed")) or _struct_to_dt(entry.get("updated_parsed"))
        out.append(
            Candidate(
                source=source,
                url=urljoin(feed_url, link.strip()),
                title=(entry.get("title") or None),
                published=published,
                date_source="feed" if published else None,
                guid=entry.get("id") or None,
            )
        )
    return out, None


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, recover=True)


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def parse_sitemap(body: bytes, sitemap_url: str, source: str) -> tuple[list[Candidate], list[str], str | None]:
    """A urlset or sitemap index from bytes: (candidates, child sitemap URLs, error)."""
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        return [], [], f"not a sitemap: {exc}"
    if root is None:
        return [], [], "not a sitemap: empty document"
    kind = _local(root.tag)
    if kind == "sitemapindex":
        children = []
        for node in root:
            if _local(node.tag) == "sitemap":
                for child in node:
                    if _local(child.tag) == "loc" and child.text:
                        children.append(urljoin(sitemap_url, child.text.strip()))
        return [], children, None
    if kind != "urlset":
        return [], [], f"not a sitemap: root element <{kind}>"
    out = []
    for node in root:
        if _local(node.tag) != "url":
            continue
        loc = lastmod = news_date = title = None
        for child in node.iter():
            name = _local(child.tag)
            text = (child.text or "").strip()
            if name == "loc" and loc is None:
                loc = text
            elif name == "lastmod":
                lastmod = text
            elif name == "publication_date":
                news_date = text
            elif name == "title" and child.getparent() is not None and _local(child.getparent().tag) == "news":
                title = text
        if not loc:
            continue
        published = parse_datetime(news_date) or parse_datetime(lastmod)
        out.append(Candidate(source, urljoin(sitemap_url, loc), title or None, published,
                             "sitemap" if published else None))
    return out, [], None


def parse_url_list(body: bytes, list_url: str, source: str) -> list[Candidate]:
    out = []
    for line in body.decode("utf-8", "replace").splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        out.append(Candidate(source, urljoin(list_url, text.split()[0])))
    return out


def _maybe_gunzip(result: FetchResult, limit: int) -> bytes:
    body = result.body or b""
    if body[:2] == b"\x1f\x8b":
        return gunzip_bounded(body, limit)
    return body


async def discover_source(
    fetcher: Fetcher, source: Source, validators: dict[str, str] | None = None
) -> Discovery:
    """Fetch and parse one source. ``validators`` holds the previous ETag/Last-Modified."""
    headers: dict[str, str] = {}
    if validators:
        if validators.get("etag"):
            headers["If-None-Match"] = validators["etag"]
        if validators.get("last_modified"):
            headers["If-Modified-Since"] = validators["last_modified"]
    first = await fetcher.fetch(source.url, headers=headers)
    disc = Discovery(source.name, "ok", documents=1)
    disc.etag = first.headers.get("etag")
    disc.last_modified = first.headers.get("last-modified")
    if first.outcome == "not_modified":
        disc.status, disc.etag, disc.last_modified = "not_modified", None, None
        if validators:
            disc.etag, disc.last_modified = validators.get("etag"), validators.get("last_modified")
        return disc
    if not first.ok:
        disc.status, disc.detail = first.outcome, first.detail
        return disc
    limit = fetcher.settings.max_bytes
    try:
        body = _maybe_gunzip(first, limit)
    except (TooLarge, zlib.error) as exc:
        disc.status, disc.detail = "bad_feed", f"cannot decompress: {exc}"
        return disc
    if source.kind == "rss":
        disc.candidates, error = parse_feed(body, first.final_url, source.name)
        if error:
            disc.status, disc.detail = "bad_feed", error
        return disc
    if source.kind == "urls":
        disc.candidates = parse_url_list(body, first.final_url, source.name)
        return disc
    # sitemap: follow indexes breadth-first, bounded
    queue: list[tuple[str, bytes | None, int]] = [(first.final_url, body, 0)]
    seen = {first.final_url}
    errors = []
    while queue:
        url, data, depth = queue.pop(0)
        if data is None:
            result = await fetcher.fetch(url)
            disc.documents += 1
            if not result.ok:
                errors.append(f"{url}: {result.outcome}")
                continue
            try:
                data = _maybe_gunzip(result, limit)
            except (TooLarge, zlib.error) as exc:
                errors.append(f"{url}: cannot decompress ({exc})")
                continue
        cands, children, error = parse_sitemap(data, url, source.name)
        if error:
            errors.append(f"{url}: {error}")
        disc.candidates.extend(cands)
        if depth < MAX_SITEMAP_DEPTH:
            for child in children:
                if child not in seen and len(seen) < MAX_SITEMAPS:
                    seen.add(child)
                    queue.append((child, None, depth + 1))
    if errors:
        disc.detail = "; ".join(errors)[:500]
        if not disc.candidates:
            disc.status = "bad_feed"
    return disc
