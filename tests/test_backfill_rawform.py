"""WARC backfills store each page's WARC record as found in the archive (its gzip member) instead of
compressing the body again; stored pages read back to the very bytes that were extracted, and
``--from raw`` re-extracts them without the archive."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path

import duckdb

from tests.conftest import needs_corpus
from tests.test_backfill import planted_records, settings_for
from warehouse import open_warehouse

pytestmark = needs_corpus


def _backfill(settings, **request):
    from flows.backfill import BackfillRequest, run_backfill

    return asyncio.run(run_backfill(settings, BackfillRequest(**request), []))


def test_stored_warc_records_read_back_and_reprocess_without_the_archive(tmp_path: Path):
    from bench.corpus import build_warc
    from flows.backfill import RAW_FORM_HEADER, WARC_GZIP_FORM, stored_body

    records = planted_records(12)
    warc = build_warc(tmp_path / "c.warc.gz", records)
    wh = str(tmp_path / "w.duckdb")
    s = settings_for(wh, batch_size=5)
    first = _backfill(s, since=date(2000, 1, 1), until=date(2030, 1, 1), origin="warc", warc=[str(warc)])
    assert first.counts["loaded"] > 0
    with open_warehouse(wh, read_only=True) as con:
        pages = con.execute("SELECT p.url, p.headers, b.body_gz, p.body_bytes "
                            "FROM pages p JOIN page_bodies b USING (canonical_url)").fetchall()
        articles = con.execute("SELECT url, title, text, published_date FROM articles ORDER BY url").fetchall()
    html = {url: body for url, body, _ in records}
    assert len(pages) == len(records)
    for url, headers, body_gz, body_bytes in pages:
        assert json.loads(headers)[RAW_FORM_HEADER] == WARC_GZIP_FORM
        assert body_gz[:2] == b"\x1f\x8b"  # the archive's own gzip member
        assert stored_body(body_gz) == html[url]
        assert body_bytes == len(html[url])
    warc.unlink()  # reprocessing needs only the warehouse
    again = _backfill(s, since=date(1900, 1, 1), until=date(2999, 12, 31), origin="raw", reprocess="all")
    assert again.counts["loaded"] == first.counts["loaded"]
    con = duckdb.connect(wh, read_only=True)
    assert con.execute("SELECT url, title, text, published_date FROM articles ORDER BY url").fetchall() == articles
    con.close()


def test_zlib_pages_still_read_back():
    import zlib

    from flows.backfill import stored_body

    body = b"<html><body><p>a page stored by an ingest run</p></body></html>"
    assert stored_body(zlib.compress(body, 1)) == body


def test_warc_over_http_is_spooled_and_removed(tmp_path: Path):
    from bench.corpus import build_warc
    from flows.siteserver import LoopbackServer, Response

    records = planted_records(6)
    payload = build_warc(tmp_path / "r.warc.gz", records).read_bytes()
    spools = set(Path(__import__("tempfile").gettempdir()).glob("newsdesk-warc-*.spool"))
    with LoopbackServer(lambda path, headers: Response(200, payload, {"Content-Type": "application/warc"})) as server:
        wh = str(tmp_path / "w.duckdb")
        report = _backfill(settings_for(wh, allow_hosts=(server.host,)), since=date(2000, 1, 1),
                           until=date(2030, 1, 1), origin="warc", warc=[f"{server.base}/r.warc.gz"])
    assert sum(report.outcomes.values()) == len(records)
    assert report.outcomes["loaded"] > 0
    assert set(Path(__import__("tempfile").gettempdir()).glob("newsdesk-warc-*.spool")) == spools


def test_pages_served_gzip_are_stored_as_the_server_sent_them(site_settings, site):
    """A page sent with Content-Encoding: gzip is stored as that gzip stream (no second compression);
    it reads back to the decoded page, and --from raw re-extracts it to the same article."""
    from flows.backfill import stored_body
    from flows.pipeline import run_pipeline
    from flows.sources import read_sources

    server, handler = site
    report = asyncio.run(run_pipeline(site_settings, read_sources(site_settings.sources)))
    assert report.status == "completed"
    with open_warehouse(site_settings.warehouse, read_only=True) as con:
        pages = con.execute("SELECT p.final_url, b.body_gz, p.body_bytes FROM pages p "
                            "JOIN page_bodies b USING (canonical_url) ORDER BY p.url").fetchall()
        before = con.execute("SELECT url, content_hash, title FROM articles ORDER BY url").fetchall()
    gzipped = [p for p in pages if p[1][:2] == b"\x1f\x8b"]
    assert gzipped, "the sample site gzips its pages, so some were stored in that form"
    for final_url, body_gz, body_bytes in gzipped:
        body = stored_body(body_gz)
        assert len(body) == body_bytes
        assert b"<html" in body.lower() and server.base.encode() in body, final_url
    _backfill(site_settings, since=date(2000, 1, 1), until=date(2030, 12, 31), origin="raw", reprocess="all")
    con = duckdb.connect(site_settings.warehouse, read_only=True)
    try:
        assert con.execute("SELECT url, content_hash, title FROM articles ORDER BY url").fetchall() == before
    finally:
        con.close()
