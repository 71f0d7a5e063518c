"""Discovery: turn a source (feed, sitemap, URL list) into candidate article URLs.

Feeds and sitemaps are fetched by our own client and parsed from bytes; each candidate keeps what
the source said about it (title, date and where the date came from, guid).
"""

from __future__ import annotations

import calendar
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin

import feedparser
from lxml import etree

from flows.fetch import GUNZIP_ERRORS, Fetcher, FetchResult, gunzip_bounded
from flows.sources import Source
from flows.urls import host_of

__all__ = ["Candidate", "Discovery", "discover_source", "parse_feed", "parse_sitemap", "parse_url_list",
           "parse_datetime", "read_sitemap", "SitemapDoc", "declares_entities", "plausible_date"]

MAX_SITEMAPS = 100  # child sitemaps followed per source
MAX_SITEMAP_DEPTH = 3
MAX_SITEMAP_URLS = 50_000  # per sitemap document (the sitemaps.org limit)
MAX_SITEMAP_BYTES = 50 * 1024 * 1024  # per sitemap document, decoded (the sitemaps.org limit)
MAX_SOURCE_URLS = 250_000  # candidates per source and run
EARLIEST_DATE = datetime(1995, 1, 1, tzinfo=UTC)  # before the web had news sites: a placeholder, not a date
FUTURE_SLACK = timedelta(days=2)  # time zones and scheduled posts; beyond that a date is not trusted


@dataclass
class Candidate:
    source: str
    url: str
    title: str | None = None
    published: datetime | None = None
    date_source: str | None = None  # 'feed' or 'sitemap'
    guid: str | None = None
    flagged_date: str | None = None  # a stated date refused as implausible (decades old, or in the future)


@dataclass
class Discovery:
    source: str
    status: str  # 'ok', 'not_modified', or a failure outcome
    detail: str = ""
    candidates: list[Candidate] = field(default_factory=list)
    etag: str | None = None
    last_modified: str | None = None
    documents: int = 0  # feeds or sitemaps fetched
    notes: Counter[str] = field(default_factory=Counter)  # what was capped, cut, dropped or flagged

    def render_detail(self, errors: list[str]) -> str:
        """Counts first (they survive truncation), then per-document errors."""
        labels = {
            "implausible_dates": "implausible dates ignored",
            "urls_over_cap": f"URLs over the {MAX_SITEMAP_URLS} per-sitemap cap dropped",
            "source_over_cap": f"URLs over the {MAX_SOURCE_URLS} per-source cap dropped",
            "cycles": "sitemap cycles cut",
            "children_over_cap": f"child sitemaps over the {MAX_SITEMAPS} cap not followed",
            "too_deep": f"child sitemaps deeper than {MAX_SITEMAP_DEPTH} not followed",
            "cross_host": "cross-host entries dropped",
        }
        parts = [f"{n} {labels.get(k, k)}" for k, n in sorted(self.notes.items()) if n]
        return "; ".join(parts + errors)[:1000]


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


def plausible_date(value: datetime | None, now: datetime | None = None) -> bool:
    """A stated publication date we can use: not before 1995 and at most two days ahead."""
    if value is None:
        return True
    now = now or datetime.now(UTC)
    return EARLIEST_DATE <= value <= now + FUTURE_SLACK


def _vet_date(cand: Candidate, now: datetime) -> bool:
    """Drops an implausible date (keeping it in ``flagged_date``); True when one was dropped."""
    if cand.published is None or plausible_date(cand.published, now):
        return False
    cand.flagged_date = cand.published.isoformat()
    cand.published, cand.date_source = None, None
    return True


_DOCTYPE = re.compile(rb"<!DOCTYPE", re.I)
_FIRST_ELEMENT = re.compile(rb"<[A-Za-z_:]")
_ENTITY_DECL = re.compile(rb"<!ENTITY", re.I)


def declares_entities(body: bytes) -> bool:
    """True when the document's DOCTYPE declares entities (billion laughs, external entities). Feeds and
    sitemaps have no use for them, so such documents are refused before any parser sees them."""
    head = body
    if body[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in body[:4]:
        for enc in ("utf-16", "utf-16-le", "utf-16-be", "utf-32"):
            try:
                head = body.decode(enc).encode("utf-8")
                break
            except UnicodeDecodeError:
                continue
    doctype = _DOCTYPE.search(head)
    if doctype is None:
        return False
    first = _FIRST_ELEMENT.search(head)
    if first is not None and first.start() < doctype.start():
        return False  # "<!DOCTYPE" after the root element is text (e.g. inside CDATA), not a declaration
    return _ENTITY_DECL.search(head, doctype.start()) is not None and _entity_in_prolog(head, doctype.start())


def _entity_in_prolog(head: bytes, start: int) -> bool:
    """An entity declaration inside the DOCTYPE's internal subset (before its closing ``]>``)."""
    entity = _ENTITY_DECL.search(head, start)
    if entity is None:
        return False
    subset_end = re.compile(rb"\]\s*>").search(head, start)
    return subset_end is None or entity.start() < subset_end.start()


def _struct_to_dt(value: object) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None


def parse_feed(body: bytes, feed_url: str, source: str) -> tuple[list[Candidate], str | None]:
    """RSS or Atom from bytes. Returns candidates and an error when the document is not a feed.
    Implausible dates are dropped (kept in ``Candidate.flagged_date``)."""
    if not body.strip():
        return [], "not a feed: empty document"
    if declares_entities(body):
        return [], "not a feed: declares XML entities (refused unparsed)"
    parsed = feedparser.parse(io.BytesIO(body), response_headers={"content-location": feed_url})
    if parsed.bozo and not parsed.entries:
        exc = parsed.get("bozo_exception")
        return [], f"not a feed: {type(exc).__name__ if exc else 'unparseable'}"
    out = []
    now = datetime.now(UTC)
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
        cand = Candidate(
            source=source,
            url=urljoin(feed_url, link.strip()),
            title=(entry.get("title") or None),
            published=published,
            date_source="feed" if published else None,
            guid=entry.get("id") or None,
        )
        _vet_date(cand, now)
        out.append(cand)
    return out, None


_PARSER_OPTIONS = {"resolve_entities": False, "no_network": True, "huge_tree": False, "recover": True,
                   "load_dtd": False}


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


@dataclass
class SitemapDoc:
    candidates: list[Candidate] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    error: str | None = None
    urls_seen: int = 0  # <url> entries, kept or not
    over_cap: int = 0  # entries beyond MAX_SITEMAP_URLS


def read_sitemap(body: bytes, sitemap_url: str, source: str, max_urls: int = MAX_SITEMAP_URLS) -> SitemapDoc:
    """A urlset or sitemap index, streamed (memory stays small for 50 MB documents): at most ``max_urls``
    entries are kept; entity declarations are refused before parsing."""
    doc = SitemapDoc()
    if not body.strip():
        doc.error = "not a sitemap: empty document"
        return doc
    if declares_entities(body):
        doc.error = "not a sitemap: declares XML entities (refused unparsed)"
        return doc
    kind = ""
    now = datetime.now(UTC)
    try:
        for event, node in etree.iterparse(io.BytesIO(body), events=("start", "end"), **_PARSER_OPTIONS):
            if event == "start":
                if not kind:
                    kind = _local(node.tag)
                    if kind not in ("urlset", "sitemapindex"):
                        doc.error = f"not a sitemap: root element <{kind}>"
                        return doc
                continue
            name = _local(node.tag)
            if kind == "sitemapindex" and name == "sitemap":
                for child in node:
                    if _local(child.tag) == "loc" and child.text and child.text.strip():
                        if len(doc.children) < max_urls:
                            doc.children.append(urljoin(sitemap_url, child.text.strip()))
                        else:
                            doc.over_cap += 1
                        break
                node.clear()
            elif kind == "urlset" and name == "url":
                doc.urls_seen += 1
                if len(doc.candidates) >= max_urls:
                    doc.over_cap += 1
                else:
                    cand = _url_entry(node, sitemap_url, source)
                    if cand is not None:
                        _vet_date(cand, now)
                        doc.candidates.append(cand)
                node.clear()
    except etree.XMLSyntaxError as exc:
        if not kind:
            doc.error = f"not a sitemap: {exc}"
        elif not (doc.candidates or doc.children):
            doc.error = f"malformed sitemap: {exc}"
    if not kind and doc.error is None:
        doc.error = "not a sitemap: no elements"
    return doc


def _url_entry(node: etree._Element, sitemap_url: str, source: str) -> Candidate | None:
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
        return None
    published = parse_datetime(news_date) or parse_datetime(lastmod)
    return Candidate(source, urljoin(sitemap_url, loc), title or None, published, "sitemap" if published else None)


def parse_sitemap(body: bytes, sitemap_url: str, source: str) -> tuple[list[Candidate], list[str], str | None]:
    """A urlset or sitemap index from bytes: (candidates, child sitemap URLs, error)."""
    doc = read_sitemap(body, sitemap_url, source)
    return doc.candidates, doc.children, doc.error


def _site(url: str) -> str:
    host = host_of(url)
    return host[4:] if host.startswith("www.") else host


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
    fetcher: Fetcher, source: Source, validators: dict[str, str] | None = None, *, cross_host: bool = False
) -> Discovery:
    """Fetch and parse one source. ``validators`` holds the previous ETag/Last-Modified. Sitemap entries
    (child sitemaps and URLs) on another host than the sitemap are dropped unless ``cross_host``."""
    headers: dict[str, str] = {}
    if validators:
        if validators.get("etag"):
            headers["If-None-Match"] = validators["etag"]
        if validators.get("last_modified"):
            headers["If-Modified-Since"] = validators["last_modified"]
    limit = MAX_SITEMAP_BYTES if source.kind == "sitemap" else fetcher.settings.max_bytes
    first = await fetcher.fetch(source.url, headers=headers, limit=limit)
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
    try:
        body = _maybe_gunzip(first, limit)
    except GUNZIP_ERRORS as exc:
        disc.status, disc.detail = "bad_feed", f"cannot decompress: {exc or 'over the size cap'}"
        return disc
    if source.kind == "rss":
        disc.candidates, error = parse_feed(body, first.final_url, source.name)
        disc.notes["implausible_dates"] = sum(c.flagged_date is not None for c in disc.candidates)
        if len(disc.candidates) > MAX_SOURCE_URLS:
            disc.notes["source_over_cap"] = len(disc.candidates) - MAX_SOURCE_URLS
            del disc.candidates[MAX_SOURCE_URLS:]
        if error:
            disc.status = "bad_feed"
        disc.detail = disc.render_detail([error] if error else [])
        return disc
    if source.kind == "urls":
        disc.candidates = parse_url_list(body, first.final_url, source.name)[:MAX_SOURCE_URLS]
        return disc
    await _walk_sitemaps(fetcher, source, first.final_url, body, disc, cross_host)
    return disc


async def _walk_sitemaps(fetcher: Fetcher, source: Source, first_url: str, body: bytes, disc: Discovery,
                         cross_host: bool) -> None:
    """Follow sitemap indexes breadth-first: bounded in documents, depth and URLs; cycles cut; other hosts'
    entries dropped unless allowed; everything counted in ``disc.notes``."""
    root_site = _site(first_url)
    queue: list[tuple[str, bytes | None, int]] = [(first_url, body, 0)]
    seen = {first_url}
    errors: list[str] = []
    while queue:
        url, data, depth = queue.pop(0)
        if data is None:
            result = await fetcher.fetch(url, limit=MAX_SITEMAP_BYTES)
            disc.documents += 1
            if not result.ok:
                errors.append(f"{url}: {result.outcome}")
                continue
            try:
                data = _maybe_gunzip(result, MAX_SITEMAP_BYTES)
            except GUNZIP_ERRORS as exc:
                errors.append(f"{url}: cannot decompress ({exc or 'over the size cap'})")
                continue
        doc = read_sitemap(data, url, source.name)
        data = None
        if doc.error:
            errors.append(f"{url}: {doc.error}")
        disc.notes["urls_over_cap"] += doc.over_cap
        for cand in doc.candidates:
            if not cross_host and _site(cand.url) != root_site:
                disc.notes["cross_host"] += 1
                continue
            if len(disc.candidates) >= MAX_SOURCE_URLS:
                disc.notes["source_over_cap"] += 1
                continue
            if cand.flagged_date is not None:
                disc.notes["implausible_dates"] += 1
            disc.candidates.append(cand)
        for child in doc.children:
            if child in seen:
                disc.notes["cycles"] += 1
            elif not cross_host and _site(child) != root_site:
                disc.notes["cross_host"] += 1
            elif depth >= MAX_SITEMAP_DEPTH:
                disc.notes["too_deep"] += 1
            elif len(seen) > MAX_SITEMAPS:
                disc.notes["children_over_cap"] += 1
            else:
                seen.add(child)
                queue.append((child, None, depth + 1))
    if errors and not disc.candidates:
        disc.status = "bad_feed"
    disc.detail = disc.render_detail(errors)
