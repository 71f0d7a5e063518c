"""Hostile feeds and sitemaps (flows/discover.py), served by the fault server on loopback: entity
expansion and external entities, malformed documents, oversized and cyclic sitemaps, other hosts'
entries, implausible dates."""

from __future__ import annotations

import asyncio
import gzip
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from flows import discover
from flows.config import Settings, load_settings
from flows.discover import (
    MAX_SITEMAP_URLS,
    MAX_SITEMAPS,
    Discovery,
    declares_entities,
    discover_source,
    parse_feed,
)
from flows.fetch import Fetcher
from flows.sources import Source
from tests.faultserver import FaultServer

MARKER = "MARKER-e7c1f0-NOT-FOR-FEEDS"
SM_NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
XML = {"Content-Type": "application/xml"}


@pytest.fixture
def srv() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text(MARKER)
    return path


def make_settings(server: FaultServer) -> Settings:
    return load_settings(env={}, allow_hosts=(server.host,), host_delay=0.0, request_deadline=3.0, read_timeout=2.0,
                         max_retries=0, backoff_base=0.01)


def discover_all(server: FaultServer, sources: list[Source], **kw: object) -> dict[str, Discovery]:
    async def go() -> list[Discovery]:
        async with Fetcher(make_settings(server)) as fetcher:
            return list(await asyncio.gather(*(discover_source(fetcher, s, **kw) for s in sources)))  # type: ignore[arg-type]

    return {d.source: d for d in asyncio.run(go())}


def rss(items: list[tuple[str, str]], doctype: str = "") -> bytes:
    body = "".join(f"<item><title>{t}</title><link>{link}</link><pubDate>{d}</pubDate></item>"
                   for (link, t), d in zip(items, ["Mon, 06 Jan 2025 10:00:00 GMT"] * len(items), strict=True))
    return f'<?xml version="1.0"?>{doctype}<rss version="2.0"><channel><title>T</title>{body}</channel></rss>'.encode()


def laughs_doctype(root: str) -> str:
    ents = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
    ]
    return f"<!DOCTYPE {root} [{''.join(ents)}]>"


def xxe_doctype(root: str, target: str) -> str:
    return f'<!DOCTYPE {root} [<!ENTITY xxe SYSTEM "{target}">]>'


def all_text(d: Discovery) -> str:
    return " ".join(f"{c.url} {c.title} {c.guid}" for c in d.candidates) + d.detail


# -- entity expansion and external entities -------------------------------------------------------------------


def test_billion_laughs_rss_is_refused_and_other_sources_unaffected(srv):
    srv.page("laughs.xml", rss([(srv.url("/a"), "&lol9;")], laughs_doctype("rss")), XML)
    srv.page("good.xml", rss([(srv.url("/b"), "Good")]), XML)
    found = discover_all(srv, [Source("laughs", "rss", srv.url("/page/laughs.xml")),
                               Source("good", "rss", srv.url("/page/good.xml"))])
    assert found["laughs"].status == "bad_feed" and "entities" in found["laughs"].detail
    assert found["laughs"].candidates == []
    assert found["good"].status == "ok" and [c.title for c in found["good"].candidates] == ["Good"]


def test_billion_laughs_sitemap_is_refused(srv):
    body = f'<?xml version="1.0"?>{laughs_doctype("urlset")}<urlset {SM_NS}><url><loc>{srv.url("/")}&lol9;</loc></url></urlset>'
    srv.page("laughs-sm.xml", body.encode(), XML)
    d = discover_all(srv, [Source("sm", "sitemap", srv.url("/page/laughs-sm.xml"))])["sm"]
    assert d.status == "bad_feed" and d.candidates == [] and "entities" in d.detail


@pytest.mark.parametrize("kind", ["rss", "sitemap"])
def test_external_entities_read_no_file_and_make_no_request(srv, secret, kind):
    with FaultServer() as bystander:  # an external entity pointing at a server: it must see nothing
        file_ent = xxe_doctype("rss" if kind == "rss" else "urlset", secret.as_uri())
        http_ent = xxe_doctype("rss" if kind == "rss" else "urlset", bystander.url("/dtd"))
        for name, doctype in (("file", file_ent), ("http", http_ent)):
            if kind == "rss":
                body = rss([(srv.url("/a"), "x &xxe;")], doctype)
            else:
                body = f'<?xml version="1.0"?>{doctype}<urlset {SM_NS}><url><loc>{srv.url("/a")}?&xxe;</loc></url></urlset>'.encode()
            srv.page(f"{kind}-{name}.xml", body, XML)
        found = discover_all(srv, [Source(f"{kind}-{n}", kind, srv.url(f"/page/{kind}-{n}.xml")) for n in ("file", "http")])
        for d in found.values():
            assert d.status == "bad_feed"
            assert MARKER not in all_text(d)
        assert bystander.connections == 0


def test_feedparser_itself_does_not_expand_entities(secret):
    # defence in depth: even without our refusal, the parsers we use neither read files nor expand
    xxe = rss([("http://127.0.0.1:9/a", "x &xxe;")], xxe_doctype("rss", secret.as_uri()))
    parsed = feedparser.parse(io.BytesIO(xxe))
    assert MARKER not in repr(parsed)
    laughs = feedparser.parse(io.BytesIO(rss([("http://127.0.0.1:9/a", "&lol9;")], laughs_doctype("rss"))))
    assert all(len(e.get("title", "")) < 1000 for e in laughs.entries)


def test_lxml_sitemap_parser_itself_does_not_expand_entities(secret):
    body = f'<?xml version="1.0"?>{xxe_doctype("urlset", secret.as_uri())}<urlset><url><loc>&xxe;</loc></url></urlset>'
    texts = [n.text or "" for _, n in etree.iterparse(io.BytesIO(body.encode()), **discover._PARSER_OPTIONS)]
    assert MARKER not in " ".join(texts)


def test_entity_check_ignores_doctype_text_inside_content():
    body = rss([("http://127.0.0.1:9/a", "<![CDATA[how <!DOCTYPE x [<!ENTITY a 'b'>]> attacks work]]>")])
    assert not declares_entities(body)
    cands, error = parse_feed(body, "http://127.0.0.1:9/", "s")
    assert error is None and len(cands) == 1


def test_utf16_document_with_entities_is_refused():
    body = ('<?xml version="1.0" encoding="UTF-16"?>' + laughs_doctype("rss") + "<rss/>").encode("utf-16")
    assert declares_entities(body)


# -- malformed, HTML, empty -----------------------------------------------------------------------------------


def test_malformed_feed_is_parsed_leniently(srv):
    body = rss([(srv.url("/a"), "One"), (srv.url("/b"), "Two")])[:-40]  # cut mid-document
    srv.page("cut.xml", body, XML)
    d = discover_all(srv, [Source("cut", "rss", srv.url("/page/cut.xml"))])["cut"]
    assert [c.title for c in d.candidates][:1] == ["One"]


@pytest.mark.parametrize("kind", ["rss", "sitemap"])
@pytest.mark.parametrize(
    ("name", "body", "ctype"),
    [("html", b"<!doctype html><html><body><h1>Welcome</h1></body></html>", "text/html"),
     ("empty", b"", "application/xml"),
     ("garbage", b"\x00\x01 not xml at all {}", "application/xml")],
)
def test_not_a_feed_is_rejected_with_a_reason(srv, kind, name, body, ctype):
    srv.page(name, body, {"Content-Type": ctype})
    d = discover_all(srv, [Source("s", kind, srv.url(f"/page/{name}"))])["s"]
    assert d.status == "bad_feed" and d.candidates == []
    assert "not a" in d.detail


# -- sitemap caps, cycles, other hosts ------------------------------------------------------------------------


def urlset(urls: list[str], lastmods: list[str] | None = None) -> bytes:
    rows = []
    for i, u in enumerate(urls):
        lm = f"<lastmod>{lastmods[i]}</lastmod>" if lastmods else ""
        rows.append(f"<url><loc>{u}</loc>{lm}</url>")
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset {SM_NS}>{"".join(rows)}</urlset>'.encode()


def index(children: list[str]) -> bytes:
    rows = "".join(f"<sitemap><loc>{c}</loc></sitemap>" for c in children)
    return f'<?xml version="1.0" encoding="UTF-8"?><sitemapindex {SM_NS}>{rows}</sitemapindex>'.encode()


def test_sitemap_over_50000_urls_is_capped_and_recorded(srv):
    n = MAX_SITEMAP_URLS + 1234
    srv.page("huge.xml", gzip.compress(urlset([srv.url(f"/a/{i}") for i in range(n)]), 1), XML)
    d = discover_all(srv, [Source("sm", "sitemap", srv.url("/page/huge.xml"))])["sm"]
    assert len(d.candidates) == MAX_SITEMAP_URLS
    assert d.notes["urls_over_cap"] == 1234 and "1234 URLs over the 50000" in d.detail


def test_sitemap_over_the_byte_cap_is_refused_and_recorded(srv, monkeypatch):
    monkeypatch.setattr(discover, "MAX_SITEMAP_BYTES", 200_000)  # stands for 50 MB
    srv.page("big.xml", urlset([srv.url(f"/article/{i:08d}") for i in range(6000)]), XML)
    srv.page("bigz.xml", gzip.compress(urlset([srv.url(f"/article/{i:08d}") for i in range(6000)])), XML)
    srv.page("idx.xml", index([srv.url("/page/bigz.xml")]), XML)
    found = discover_all(srv, [Source("plain", "sitemap", srv.url("/page/big.xml")),
                               Source("viaindex", "sitemap", srv.url("/page/idx.xml"))])
    assert found["plain"].status == "too_large"
    assert found["viaindex"].status == "bad_feed" and "size cap" in found["viaindex"].detail


def test_self_referencing_sitemap_index_is_cut(srv):
    srv.page("self.xml", index([srv.url("/page/self.xml"), srv.url("/page/leaf.xml")]), XML)
    srv.page("leaf.xml", index([srv.url("/page/self.xml")]), XML)  # and a longer cycle back
    d = discover_all(srv, [Source("sm", "sitemap", srv.url("/page/self.xml"))])["sm"]
    assert d.notes["cycles"] == 2 and "2 sitemap cycles cut" in d.detail
    assert srv.hits("/page/self.xml") == 1 and srv.hits("/page/leaf.xml") == 1


def test_thousands_of_child_sitemaps_are_capped(srv):
    srv.page("many.xml", index([srv.url(f"/page/child-{i}.xml") for i in range(3000)]), XML)
    for i in range(MAX_SITEMAPS + 5):
        srv.page(f"child-{i}.xml", urlset([srv.url(f"/c/{i}")]), XML)
    d = discover_all(srv, [Source("sm", "sitemap", srv.url("/page/many.xml"))])["sm"]
    assert d.documents == MAX_SITEMAPS + 1
    assert len(d.candidates) == MAX_SITEMAPS
    assert d.notes["children_over_cap"] == 3000 - MAX_SITEMAPS


def test_other_hosts_entries_are_dropped_by_default(srv):
    with FaultServer() as other:
        srv.page("mixed.xml", index([srv.url("/page/own.xml"), other.url("/sitemap.xml"),
                                     "http://169.254.169.254/latest/meta-data/"]), XML)
        srv.page("own.xml", urlset([srv.url("/a/1"), other.url("/a/2"), "http://10.0.0.1/x"]), XML)
        d = discover_all(srv, [Source("sm", "sitemap", srv.url("/page/mixed.xml"))])["sm"]
        assert [c.url for c in d.candidates] == [srv.url("/a/1")]
        assert d.notes["cross_host"] == 4 and "4 cross-host entries dropped" in d.detail
        assert other.connections == 0


def test_other_hosts_entries_can_be_allowed(srv):
    other = "http://127.0.0.2:9/a/2"  # listed only, never fetched
    srv.page("own.xml", urlset([srv.url("/a/1"), other]), XML)
    d = discover_all(srv, [Source("sm", "sitemap", srv.url("/page/own.xml"))], cross_host=True)["sm"]
    assert [c.url for c in d.candidates] == [srv.url("/a/1"), other]


# -- implausible dates ---------------------------------------------------------------------------------------


def test_implausible_sitemap_dates_are_flagged_not_trusted(srv):
    future = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d")
    soon = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    srv.page("dates.xml", urlset([srv.url(f"/d/{i}") for i in range(5)],
                                 ["1970-01-01", "1899-12-31", future, "2024-05-06", soon]), XML)
    d = discover_all(srv, [Source("sm", "sitemap", srv.url("/page/dates.xml"))])["sm"]
    by = {c.url.rsplit("/", 1)[1]: c for c in d.candidates}
    for i in ("0", "1", "2"):
        assert by[i].published is None and by[i].date_source is None and by[i].flagged_date
    assert by["3"].published == datetime(2024, 5, 6, tzinfo=UTC) and by["3"].date_source == "sitemap"
    assert by["4"].published is not None  # a day ahead is within the slack (time zones, embargoes)
    assert d.notes["implausible_dates"] == 3 and "3 implausible dates ignored" in d.detail


def test_implausible_feed_dates_are_flagged_not_trusted(srv):
    body = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
        f'<item><title>old</title><link>{srv.url("/old")}</link><pubDate>Thu, 01 Jan 1970 00:00:00 GMT</pubDate></item>'
        f'<item><title>future</title><link>{srv.url("/future")}</link><pubDate>Sat, 01 Jan 2100 00:00:00 GMT</pubDate></item>'
        f'<item><title>fine</title><link>{srv.url("/fine")}</link><pubDate>Mon, 06 Jan 2025 10:00:00 GMT</pubDate></item>'
        "</channel></rss>"
    ).encode()
    srv.page("dates.rss", body, XML)
    d = discover_all(srv, [Source("f", "rss", srv.url("/page/dates.rss"))])["f"]
    by = {c.title: c for c in d.candidates}
    assert by["old"].published is None and by["future"].published is None
    assert by["old"].date_source is None and by["future"].date_source is None
    assert by["fine"].date_source == "feed"
    assert d.status == "ok" and d.notes["implausible_dates"] == 2 and "2 implausible dates" in d.detail
