"""Fetch hardening against a fault-injecting loopback server (tests/faultserver.py): stalls, trickles,
retry storms, redirects, huge bodies, compression bombs, dropped connections, charsets, content types,
TLS failures and robots.txt. Everything runs on 127.0.0.1 with short timeouts."""

from __future__ import annotations

import asyncio
import codecs
import gzip
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from flows.clean import extract_page
from flows.config import Settings, load_settings
from flows.fetch import HOST_FAILURE_LIMIT, TRANSIENT_OUTCOMES, Fetcher, FetchResult, classify_page
from tests.faultserver import ARTICLE, MB, FaultServer, bomb, self_signed_context


@pytest.fixture
def srv() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def make_settings(server: FaultServer, **overrides: Any) -> Settings:
    base: dict[str, Any] = dict(
        allow_hosts=(server.host,), host_delay=0.0, connect_timeout=1.0, read_timeout=1.0, request_deadline=1.5,
        max_retries=1, backoff_base=0.05, retry_after_cap=3.0, max_bytes=MB,
    )
    base.update(overrides)
    return load_settings(env={}, **base)


def fetch_all(settings: Settings, urls: list[str]) -> list[FetchResult]:
    async def go() -> list[FetchResult]:
        async with Fetcher(settings) as fetcher:
            return await fetcher.fetch_many(urls)

    return asyncio.run(go())


def fetch_one(settings: Settings, url: str) -> FetchResult:
    return fetch_all(settings, [url])[0]


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:], strict=False)]


# -- slow servers: an overall deadline, bounded retries, then `timeout` ------------------------------------------


def test_stalled_server_times_out_after_bounded_retries(srv):
    started = time.monotonic()
    r = fetch_one(make_settings(srv), srv.url("/stall"))
    elapsed = time.monotonic() - started
    assert r.outcome == "timeout"
    assert r.attempts == 2 and srv.hits("/stall") == 2
    assert r.outcome in TRANSIENT_OUTCOMES
    assert elapsed < 4.5


def test_trickling_server_is_cut_by_the_overall_deadline(srv):
    # a byte every 0.3 s never trips the 1 s read timeout; only the 1.5 s deadline ends it
    started = time.monotonic()
    r = fetch_one(make_settings(srv), srv.url("/trickle?every=0.3"))
    elapsed = time.monotonic() - started
    assert r.outcome == "timeout"
    assert "1.5s" in r.detail
    assert r.attempts == 2 and srv.hits("/trickle") == 2
    assert r.body is None
    assert 3.0 <= elapsed < 5.0


# -- 429 / 503 and Retry-After ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds_is_waited(srv, status):
    r = fetch_one(make_settings(srv), srv.url(f"/status/{status}?retry_after=1"))
    assert r.outcome == f"http_{status}" and r.status == status
    assert r.attempts == 2 and srv.hits(f"/status/{status}") == 2
    assert gaps(srv.times(f"/status/{status}"))[0] >= 0.95


def test_retry_after_http_date_is_waited(srv):
    r = fetch_one(make_settings(srv), srv.url("/status/503?retry_in=2"))
    assert r.outcome == "http_503" and r.attempts == 2
    # an HTTP date has whole seconds: at least one second, at most two
    assert 0.95 <= gaps(srv.times("/status/503"))[0] < 2.6


def test_absurd_retry_after_is_not_obeyed_early_and_backs_the_host_off(srv):
    s = make_settings(srv, max_retries=3)

    async def go() -> tuple[FetchResult, FetchResult]:
        async with Fetcher(s) as fetcher:
            first = await fetcher.fetch(srv.url("/status/429?retry_after=86400"))
            second = await fetcher.fetch(srv.url("/ok"))
            return first, second

    started = time.monotonic()
    first, second = asyncio.run(go())
    assert time.monotonic() - started < 2
    assert first.outcome == "http_429" and first.attempts == 1 and "cap" in first.detail
    assert srv.hits("/status/429") == 1  # not retried after the cap instead of the day asked for
    assert second.outcome == "host_backoff" and srv.hits("/ok") == 0
    assert {first.outcome, second.outcome} <= TRANSIENT_OUTCOMES


def test_fast_error_replies_do_not_speed_us_up(srv):
    r = fetch_one(make_settings(srv, max_retries=2, backoff_base=0.25), srv.url("/status/503"))
    assert r.outcome == "http_503" and r.attempts == 3
    first, second = gaps(srv.times("/status/503"))
    assert first >= 0.24 and second >= 0.49  # exponential backoff although the server answers at once


def test_a_failing_host_is_backed_off_not_hammered(srv):
    s = make_settings(srv, host_concurrency=2)
    urls = [srv.url(f"/status/503?n={i}") for i in range(30)]
    results = fetch_all(s, urls)
    outcomes = {r.outcome for r in results}
    assert outcomes <= {"http_503", "host_backoff"} and "host_backoff" in outcomes
    assert all(r.outcome in TRANSIENT_OUTCOMES for r in results)
    # at most the failure limit, plus what was already in flight on the host's other slot
    assert srv.hits("/status/503") <= HOST_FAILURE_LIMIT + s.host_concurrency


@pytest.mark.parametrize("status", [401, 403, 404, 410, 451])
def test_permanent_statuses_are_not_retried(srv, status):
    r = fetch_one(make_settings(srv, max_retries=3), srv.url(f"/status/{status}"))
    assert r.outcome == f"http_{status}" and r.status == status
    assert r.attempts == 1 and srv.hits(f"/status/{status}") == 1
    assert r.outcome not in TRANSIENT_OUTCOMES


def test_flaky_page_succeeds_within_the_retry_budget(srv):
    r = fetch_one(make_settings(srv, max_retries=2), srv.url("/flaky?fails=2"))
    assert r.ok and r.attempts == 3 and r.body == ARTICLE


def test_flaky_page_beyond_the_budget_is_recorded(srv):
    r = fetch_one(make_settings(srv, max_retries=1), srv.url("/flaky?fails=2"))
    assert r.outcome == "http_503" and r.attempts == 2 and srv.hits("/flaky") == 2


# -- redirects -----------------------------------------------------------------------------------------------------


def test_redirect_loop_is_cut(srv):
    r = fetch_one(make_settings(srv), srv.url("/redirect/loop-a"))
    assert r.outcome == "redirect_loop"
    assert srv.hits("/redirect/loop-a") == 1 and srv.hits("/redirect/loop-b") == 1


def test_long_redirect_chain_stops_at_the_cap(srv):
    r = fetch_one(make_settings(srv, max_redirects=5), srv.url("/redirect/chain/20"))
    assert r.outcome == "too_many_redirects"
    assert sum(srv.hits(f"/redirect/chain/{n}") for n in range(21)) == 6


def test_short_redirect_chain_is_followed(srv):
    r = fetch_one(make_settings(srv, max_redirects=5), srv.url("/redirect/chain/3"))
    assert r.ok and r.final_url == srv.url("/ok")


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x", "data:text/html,<h1>hi</h1>",
                                    "gopher://127.0.0.1:70/x"])
def test_redirects_to_other_schemes_are_refused(srv, target):
    from urllib.parse import quote

    r = fetch_one(make_settings(srv), srv.url("/redirect/to?url=" + quote(target, safe="")))
    assert r.outcome == "bad_redirect"


# -- size caps and compression bombs: aborted while streaming, memory bounded ------------------------------------


def traced_peak(fn) -> tuple[object, int]:  # noqa: ANN001
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("path", ["/big/declared", "/big/chunked"])
def test_oversized_body_is_aborted_with_bounded_memory(srv, path):
    s = make_settings(srv, request_deadline=10.0, read_timeout=5.0)
    r, peak = traced_peak(lambda: fetch_one(s, srv.url(path)))
    assert isinstance(r, FetchResult)
    assert r.outcome == "too_large" and r.body is None
    assert r.attempts == 1  # not retried
    assert peak < 6 * MB, f"peak {peak / MB:.1f} MiB while the server offered 200+ MiB"


@pytest.mark.parametrize(
    ("kind", "layers", "header"),
    [("gzip", ("gzip",), "gzip"), ("deflate", ("deflate",), "deflate"),
     ("stacked", ("gzip", "gzip"), "gzip, gzip"), ("mixed", ("deflate", "gzip"), "deflate, gzip")],
)
def test_compression_bomb_is_bounded_while_decoding(srv, kind, layers, header):
    srv.bombs[kind] = (bomb(64 * MB, layers), header)
    s = make_settings(srv)
    r, peak = traced_peak(lambda: fetch_one(s, srv.url(f"/bomb/{kind}")))
    assert isinstance(r, FetchResult)
    assert r.outcome == "too_large" and r.body is None
    assert peak < 6 * MB, f"peak {peak / MB:.1f} MiB for a 64 MiB bomb"


def test_gzip_body_without_content_encoding_is_bounded_in_classification(srv):
    srv.bombs["bare"] = (bomb(64 * MB, ("gzip",)), "")
    s = make_settings(srv)

    def go() -> FetchResult:
        return classify_page(fetch_one(s, srv.url("/bomb/bare")), s.max_bytes)

    r, peak = traced_peak(go)
    assert isinstance(r, FetchResult)
    assert r.outcome == "too_large" and r.body is None
    assert peak < 6 * MB


def test_small_gzip_page_without_content_encoding_is_unwrapped(srv):
    url = srv.page("gz", gzip.compress(ARTICLE), {"Content-Type": "text/html"})
    s = make_settings(srv)
    r = classify_page(fetch_one(s, url), s.max_bytes)
    assert r.ok and r.body == ARTICLE


# -- dropped connections ------------------------------------------------------------------------------------------


def test_connection_dropped_mid_body_is_retried_and_never_stored(srv):
    r = fetch_one(make_settings(srv), srv.url("/drop"))
    assert r.outcome == "network_error" and r.body is None
    assert r.attempts == 2 and srv.hits("/drop") == 2


def test_connection_dropped_once_then_complete_is_ok(srv):
    r = fetch_one(make_settings(srv), srv.url("/drop?times=1"))
    assert r.ok and r.body == ARTICLE and r.attempts == 2


def test_chunked_body_without_its_last_chunk_is_not_stored(srv):
    r = fetch_one(make_settings(srv), srv.url("/drop-chunked"))
    assert r.outcome == "network_error" and r.body is None


# -- charsets: detection and replacement, never a crash, the encoding recorded ------------------------------------

_TEXT = "Über die Straße: café, naïve, São Paulo, Zürich — «quoted» 10 €. " * 12
_BODY = f"<p>{_TEXT}</p>" * 3


def _html(meta: str = "") -> str:
    return f"<!doctype html><html><head>{meta}<title>Zürich café</title></head><body><article>{_BODY}</article></body></html>"


@pytest.mark.parametrize(
    ("name", "body", "ctype", "expected_encoding"),
    [
        ("no-charset-latin1", _html().encode("cp1252"), "text/html", None),
        ("wrong-header", _html().encode("cp1252"), "text/html; charset=utf-8", None),
        ("bogus-label", _html().encode("cp1252"), "text/html; charset=x-no-such-charset", None),
        ("bom-vs-header", codecs.BOM_UTF8 + _html().encode("utf-8"), "text/html; charset=iso-8859-1", "utf-8-bom"),
        ("meta-conflict", _html('<meta charset="shift_jis">').encode("cp1252"), "text/html; charset=windows-1252",
         "cp1252"),
        ("invalid-bytes", _html().encode("utf-8").replace("café".encode(), b"caf\xff\xfe\xc3"), "text/html", None),
    ],
)
def test_charset_blemishes_decode_without_crashing(srv, name, body, ctype, expected_encoding):
    s = make_settings(srv)
    url = srv.page(name, body, {"Content-Type": ctype})
    r = classify_page(fetch_one(s, url), s.max_bytes)
    assert r.ok and r.body == body
    out = extract_page({"url": url, "final_url": url, "body": r.body, "content_type": r.headers["content-type"]})
    assert out["extract_error"] is None
    assert out["encoding"]
    if expected_encoding:
        assert out["encoding"] == expected_encoding
    assert "Paulo" in out["text"]
    if name != "invalid-bytes":
        assert "Straße" in out["text"] and "São" in out["text"]


# -- content types: binary and mislabelled bodies never reach extraction -------------------------------------------


@pytest.mark.parametrize(
    ("name", "body", "ctype"),
    [
        ("pdf", b"%PDF-1.7\n" + b"x" * 2000, "application/pdf"),
        ("png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000, "image/png"),
        ("jpeg", b"\xff\xd8\xff\xe0" + b"\x00" * 2000, "image/jpeg"),
        ("octet", b"\x00\x01\x02\x03" * 500, "application/octet-stream"),
        ("pdf-as-html", b"%PDF-1.4\n" + b"x" * 2000, "text/html"),
        ("png-as-html", b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000, "text/html; charset=utf-8"),
        ("html-as-png", ARTICLE, "image/png"),
        ("zip-no-type", b"PK\x03\x04" + b"\x00" * 2000, ""),
    ],
)
def test_non_html_is_skipped_before_extraction(srv, name, body, ctype):
    s = make_settings(srv)
    url = srv.page(name, body, {"Content-Type": ctype} if ctype else {})
    r = classify_page(fetch_one(s, url), s.max_bytes)
    assert r.outcome == "not_html" and r.body is None


# -- TLS -----------------------------------------------------------------------------------------------------------


def test_tls_failure_is_recorded_and_never_retried_without_verification():
    with FaultServer(tls=self_signed_context()) as tls:
        r = fetch_one(make_settings(tls, max_retries=2), tls.url("/ok"))
        assert r.outcome == "tls_error" and r.attempts == 1
        assert "CERTIFICATE" in r.detail.upper()
        assert tls.counts["requests"] == 0  # no request ever went out over an unverified connection
        assert tls.connections <= 2  # robots.txt and the page, each refused at the handshake


def test_plain_http_on_an_https_url_is_a_tls_error(srv):
    r = fetch_one(make_settings(srv), srv.url("/ok").replace("http:", "https:"))
    assert r.outcome == "tls_error" and r.attempts == 1


# -- robots.txt ----------------------------------------------------------------------------------------------------


def test_robots_404_means_allowed(srv):
    srv.robots = None
    assert fetch_one(make_settings(srv), srv.url("/ok")).ok
    assert srv.hits("/robots.txt") == 1


@pytest.mark.parametrize("failure", [503, 500, b"STALL"])
def test_robots_5xx_or_timeout_means_not_now(srv, failure):
    srv.robots = failure
    results = fetch_all(make_settings(srv), [srv.url("/ok"), srv.url("/ok?b")])
    assert [r.outcome for r in results] == ["robots_unavailable"] * 2
    assert "robots_unavailable" in TRANSIENT_OUTCOMES
    assert srv.hits("/ok") == 0
    assert srv.hits("/robots.txt") == 2  # one robots.txt fetch (with its retry) for the whole host


def test_robots_only_the_first_500_kib_is_parsed(srv):
    filler = b"# padding padding padding padding padding padding padding padding\n" * 10_000  # ~650 KiB
    srv.robots = b"User-agent: *\nDisallow: /early\n" + filler + b"Disallow: /late\n"
    s = make_settings(srv)
    assert s.robots_max_bytes == 500 * 1024
    early, late = fetch_all(s, [srv.url("/early"), srv.url("/late")])
    assert early.outcome == "robots_disallowed"
    assert late.outcome == "http_404"  # the rule past 500 KiB is never seen, so /late was fetched


def test_robots_redirect_is_followed(srv):
    srv.add("/robots.txt", lambda s, r, c: c.send(301, b"", {"Location": "/real-robots.txt"}))
    srv.add("/real-robots.txt", lambda s, r, c: c.send(200, b"User-agent: *\nDisallow: /private\n",
                                                       {"Content-Type": "text/plain"}))
    private, public = fetch_all(make_settings(srv), [srv.url("/private/x"), srv.url("/ok")])
    assert private.outcome == "robots_disallowed" and public.ok


def _page_gaps(srv: FaultServer, settings: Settings, n: int = 3) -> list[float]:
    async def go() -> None:
        async with Fetcher(settings) as fetcher:
            for i in range(n):
                assert (await fetcher.fetch(srv.url(f"/ok?{i}"))).ok

    asyncio.run(go())
    return gaps(srv.times("/ok"))


def test_crawl_delay_is_honoured(srv):
    srv.robots = b"User-agent: *\nCrawl-delay: 1\n"
    assert min(_page_gaps(srv, make_settings(srv, host_delay=0.05), n=2)) >= 0.95


def test_crawl_delay_is_capped(srv):
    srv.robots = b"User-agent: *\nCrawl-delay: 3600\n"
    found = _page_gaps(srv, make_settings(srv, host_delay=0.05, retry_after_cap=0.4))
    assert all(0.38 <= g < 1.5 for g in found)


def test_crawl_delay_never_makes_us_faster_than_our_floor(srv):
    srv.robots = b"User-agent: *\nCrawl-delay: 0\n"
    assert min(_page_gaps(srv, make_settings(srv, host_delay=0.3))) >= 0.29

