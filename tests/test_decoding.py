"""Body decoding: bounded Content-Encoding chains, Retry-After, page classification (flows/fetch.py),
charset decoding and dates in URLs (flows/clean.py). No network."""

from __future__ import annotations

import email.utils
import gzip
import zlib
from collections.abc import Iterator

import pytest

from flows.clean import decode_html, url_date
from flows.fetch import (
    BoundedDecoder,
    FetchResult,
    TooLarge,
    classify_page,
    gunzip_bounded,
    looks_binary,
    looks_html,
    parse_retry_after,
)

MB = 1 << 20
HTML = b"<!doctype html><html><head><title>t</title></head><body>" + b"<p>Some news text.</p>" * 400 + b"</body></html>"


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def decode_in_chunks(encodings: list[str], data: bytes, size: int, limit: int = MB) -> bytes:
    decoder = BoundedDecoder(encodings, limit)
    out = [decoder.feed(c) for c in chunks(data, size)]
    out.append(decoder.flush())
    return b"".join(out)


def zlib_deflate(data: bytes) -> bytes:
    return zlib.compress(data)


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def page(body: bytes, content_type: str = "text/html") -> FetchResult:
    headers = {"content-type": content_type} if content_type else {}
    return FetchResult(url="http://a/", final_url="http://a/", outcome="ok", status=200, headers=headers, body=body)


# -- BoundedDecoder: round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [2, 7, 64, 4096])
@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("x-gzip", gzip.compress), ("deflate", zlib_deflate), ("deflate", raw_deflate)],
    ids=["gzip", "x-gzip", "deflate-zlib", "deflate-raw"],
)
def test_round_trip_in_small_chunks(encoding, compress, size):
    assert decode_in_chunks([encoding], compress(HTML), size) == HTML


def test_raw_deflate_in_one_byte_chunks():
    assert decode_in_chunks(["deflate"], raw_deflate(HTML), 1) == HTML


def test_gzip_in_one_byte_chunks():
    assert decode_in_chunks(["gzip"], gzip.compress(HTML), 1) == HTML


def test_zlib_deflate_in_one_byte_chunks():
    assert decode_in_chunks(["deflate"], zlib_deflate(HTML), 1) == HTML


@pytest.mark.parametrize("size", [1, 5, 64])
def test_stacked_gzip_gzip(size):
    body = gzip.compress(gzip.compress(HTML))
    assert decode_in_chunks(["gzip", "gzip"], body, size) == HTML


def test_stacked_deflate_then_gzip_in_large_chunks():
    body = gzip.compress(zlib_deflate(HTML))  # Content-Encoding: deflate, gzip
    assert decode_in_chunks(["deflate", "gzip"], body, 4096) == HTML


def test_stacked_deflate_then_gzip_in_small_chunks():
    body = gzip.compress(zlib_deflate(HTML))
    assert decode_in_chunks(["deflate", "gzip"], body, 10) == HTML


@pytest.mark.parametrize("encodings", [[], ["identity"], [""]])
def test_identity_passes_through(encodings):
    assert decode_in_chunks(encodings, HTML, 100) == HTML


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "GZIP"])
def test_unsupported_encoding_raises_value_error(encoding):
    with pytest.raises(ValueError, match="unsupported content encoding"):
        BoundedDecoder([encoding], MB)


def test_corrupt_gzip_raises_a_codec_error():
    from flows import zcodec

    with pytest.raises(zcodec.ERRORS):
        decode_in_chunks(["gzip"], b"\x1f\x8b\x08\x00" + b"\xff" * 50, 8)


def test_fast_codec_reads_and_writes_what_zlib_does():
    """Bodies compressed by either library read back with the other (old warehouses stay readable)."""
    from flows import zcodec

    body = b"<html><body>" + "".join(f"<p>paragraph {i} \u00e9t\u00e9</p>" for i in range(3000)).encode() + b"</body></html>"
    assert zlib.decompress(zcodec.compress(body, 1)) == body
    assert zcodec.decompress(zlib.compress(body, 1)) == body
    gz = gzip.compress(body)
    d = zcodec.decompressobj(16 + zcodec.MAX_WBITS)
    first = d.decompress(gz, 100)
    assert len(first) == 100 and d.unconsumed_tail  # bounded output, the rest waits
    assert first + d.decompress(d.unconsumed_tail, len(body)) == body and d.eof


def test_multi_member_gzip_is_decoded_completely():
    body = gzip.compress(b"part1 ") + gzip.compress(b"part2")
    assert gunzip_bounded(body, MB) == b"part1 part2"


# -- BoundedDecoder: the size cap ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """200 MB of zeros, gzip-compressed in a stream (about 200 KB; never held decompressed)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MB)
    return b"".join([c.compress(block) for _ in range(200)] + [c.flush()])


def test_gzip_bomb_raises_too_large_and_output_stays_bounded(gzip_bomb):
    assert len(gzip_bomb) < 1_000_000
    decoder = BoundedDecoder(["gzip"], MB)
    total = 0
    fed = 0
    with pytest.raises(TooLarge):
        for chunk in chunks(gzip_bomb, 64):
            out = decoder.feed(chunk)
            fed += 1
            total += len(out)
            assert total <= MB + 1
            assert decoder.produced <= MB + 1
        decoder.flush()
    assert fed > 1  # some output was returned before the cap was hit
    assert total <= MB + 1
    assert decoder.produced <= MB + 1


def test_gzip_bomb_in_one_chunk(gzip_bomb):
    with pytest.raises(TooLarge):
        gunzip_bounded(gzip_bomb, MB)


def test_stacked_gzip_bomb(gzip_bomb):
    decoder = BoundedDecoder(["gzip", "gzip"], MB)
    body = gzip.compress(gzip_bomb)
    total = 0
    with pytest.raises(TooLarge):
        for chunk in chunks(body, 64):
            total += len(decoder.feed(chunk))
            assert total <= MB + 1
        decoder.flush()


def test_deflate_bomb():
    c = zlib.compressobj(9)
    body = b"".join([c.compress(bytes(MB)) for _ in range(20)] + [c.flush()])
    with pytest.raises(TooLarge):
        decode_in_chunks(["deflate"], body, 256)


def test_limit_is_inclusive():
    body = b"x" * 1000
    assert gunzip_bounded(gzip.compress(body), 1000) == body
    with pytest.raises(TooLarge):
        gunzip_bounded(gzip.compress(body), 999)


def test_identity_body_over_the_limit():
    decoder = BoundedDecoder([], 10)
    assert decoder.feed(b"12345") == b"12345"
    with pytest.raises(TooLarge):
        decoder.feed(b"678901")


# -- Retry-After ---------------------------------------------------------------------------------------------------

NOW = 1_700_000_000.0


def test_retry_after_seconds():
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(" 120 ") == 120.0
    assert parse_retry_after("0") == 0.0


def test_retry_after_http_date():
    value = email.utils.formatdate(NOW + 10, usegmt=True)
    assert parse_retry_after(value, now=NOW) == pytest.approx(10.0)


def test_retry_after_date_in_the_past_is_zero():
    assert parse_retry_after(email.utils.formatdate(NOW - 3600, usegmt=True), now=NOW) == 0.0


def test_retry_after_date_without_zone_is_utc():
    value = email.utils.formatdate(NOW + 30, usegmt=True).removesuffix(" GMT")
    assert parse_retry_after(value, now=NOW) == pytest.approx(30.0)


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "-5", "1.5", "5 seconds", "Tue, 99 Foo 2023"])
def test_retry_after_garbage_is_none(value):
    assert parse_retry_after(value, now=NOW) is None


def test_retry_after_superscript_digit_is_none():
    assert parse_retry_after("²", now=NOW) is None


# -- sniffing ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"%PDF-1.7\n", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"PK\x03\x04", b"RIFF....WEBP", b"OggS",
     b"ID3\x03", b"wOF2"],
)
def test_looks_binary(body):
    assert looks_binary(body + b"\x00" * 10)


@pytest.mark.parametrize("body", [HTML, b"<html>", b"hello", b""])
def test_not_binary(body):
    assert not looks_binary(body)


@pytest.mark.parametrize(
    "body",
    [HTML, b"<!DOCTYPE HTML><p>x", b"\xef\xbb\xbf  \n<html lang=en>", b"<head><title>", b"<!-- c --><div>",
     b"junk before <HTML><BODY>"],
)
def test_looks_html(body):
    assert looks_html(body)


@pytest.mark.parametrize("body", [b"plain text", b'{"json": true}', b"<?xml version='1.0'?><rss/>", b""])
def test_not_html(body):
    assert not looks_html(body)


# -- classify_page -----------------------------------------------------------------------------------------------------


def test_fetch_result_content_type():
    assert page(b"", "Text/HTML; charset=UTF-8").content_type == "text/html"
    assert page(b"", "").content_type == ""
    assert page(b"").ok


@pytest.mark.parametrize("ctype", ["text/html", "text/html; charset=utf-8", "application/xhtml+xml", "TEXT/HTML"])
def test_html_is_ok(ctype):
    result = classify_page(page(HTML, ctype), MB)
    assert result.outcome == "ok"
    assert result.body == HTML


def test_pdf_served_as_html_is_not_html():
    result = classify_page(page(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj", "text/html"), MB)
    assert result.outcome == "not_html"
    assert result.body is None
    assert "binary" in result.detail


@pytest.mark.parametrize("ctype", ["text/plain", "text/plain; charset=utf-8", "application/octet-stream", ""])
def test_html_with_generic_type_stays_ok(ctype):
    result = classify_page(page(HTML, ctype), MB)
    assert result.outcome == "ok"
    assert result.body == HTML


def test_image_is_not_html():
    result = classify_page(page(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "image/png"), MB)
    assert result.outcome == "not_html"
    assert result.body is None


def test_html_body_with_image_type_is_not_html():
    result = classify_page(page(HTML, "image/png"), MB)
    assert result.outcome == "not_html"
    assert result.detail == "image/png"


@pytest.mark.parametrize("ctype", ["text/plain", "application/json"])
def test_non_html_text_is_not_html(ctype):
    assert classify_page(page(b"just some words", ctype), MB).outcome == "not_html"


def test_gzip_body_without_content_encoding_is_decompressed():
    result = classify_page(page(gzip.compress(HTML), "text/html"), MB)
    assert result.outcome == "ok"
    assert result.body == HTML


def test_gzip_body_untyped_is_decompressed_and_sniffed():
    result = classify_page(page(gzip.compress(HTML), ""), MB)
    assert result.outcome == "ok"
    assert result.body == HTML


def test_gzip_bomb_without_content_encoding_is_too_large(gzip_bomb):
    result = classify_page(page(gzip_bomb, "text/html"), MB)
    assert result.outcome == "too_large"
    assert result.body is None


def test_corrupt_gzip_body_is_not_html():
    result = classify_page(page(b"\x1f\x8b\x08\x00" + b"\xff" * 40, "text/html"), MB)
    assert result.outcome == "not_html"
    assert result.body is None


def test_failed_result_is_left_alone():
    failed = FetchResult(url="http://a/", final_url="http://a/", outcome="http_404", status=404)
    assert classify_page(failed, MB) is failed
    assert failed.outcome == "http_404"


# -- decode_html ----------------------------------------------------------------------------------------------------------


def test_utf8_with_bom():
    text, enc = decode_html(b"\xef\xbb\xbf<p>caf\xc3\xa9</p>")
    assert text == "<p>café</p>"
    assert enc == "utf-8-bom"


def test_utf16_with_bom():
    text, enc = decode_html("\ufeff<p>café</p>".encode("utf-16-le"))
    assert text == "<p>café</p>"
    assert enc == "utf-16-bom"


def test_valid_utf8_wins():
    assert decode_html("<p>café €</p>".encode(), "text/html; charset=iso-8859-1") == ("<p>café €</p>", "utf-8")


def test_cp1252_declared_in_header():
    body = b"<p>caf\xe9 \x93quoted\x94 \x80</p>"
    text, enc = decode_html(body, "text/html; charset=windows-1252")
    assert text == "<p>café \u201cquoted\u201d €</p>"
    assert enc == "cp1252"


def test_latin1_declared_only_in_meta_charset():
    body = b'<html><head><meta charset="iso-8859-1"></head><body><p>caf\xe9 na\xefve</p></body></html>'
    text, enc = decode_html(body, "text/html")
    assert "café naïve" in text
    assert enc == "cp1252"  # the WHATWG label mapping


def test_latin1_declared_in_meta_http_equiv():
    body = b'<meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-1"><p>caf\xe9</p>'
    text, enc = decode_html(body)
    assert "café" in text
    assert enc == "cp1252"  # the WHATWG label mapping


def test_header_charset_beats_meta():
    body = b'<meta charset="iso-8859-7"><p>caf\xe9</p>'
    text, enc = decode_html(body, "text/html; charset=cp1252")
    assert enc == "cp1252" and "café" in text


def test_iso_8859_1_label_means_windows_1252():
    text, _ = decode_html(b'<meta charset="iso-8859-1"><p>\x93q\x94</p>')
    assert "\u201cq\u201d" in text


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (b"<p>\xff\xfe\xc3\x28 broken \xe9\xe9 utf-8</p>", ""),
        (b"<p>\xc3\x28 broken</p>", "text/html; charset=utf-8"),
        (b"<p>\x80\x81\x82\x83</p>", "text/html; charset=no-such-charset"),
        (b'<meta charset="bogus"><p>\xe9\xff</p>', ""),
        (b'<meta charset="utf-16"><p>\xe9\xff\x00</p>', ""),
        (b"\xe9", ""),
    ],
)
def test_undecodable_bytes_never_raise(body, ctype):
    text, enc = decode_html(body, ctype)
    assert isinstance(text, str) and text
    assert isinstance(enc, str) and enc


def test_empty_body():
    assert decode_html(b"") == ("", "utf-8")


# -- url_date ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://x.com/2024/03/14/story.html", "2024-03-14"),
        ("https://x.com/news/2024/3/5/story", "2024-03-05"),
        ("https://x.com/2024-03-14-story", "2024-03-14"),
        ("https://x.com/2024_03_14_story", "2024-03-14"),
        ("https://x.com/2024/03/14", "2024-03-14"),
        ("https://x.com/1999/12/31/party", "1999-12-31"),
        ("https://x.com/2024/02/29/leap", "2024-02-29"),
    ],
)
def test_url_date(url, expected):
    assert url_date(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://x.com/2024/13/40/story.html",
        "https://x.com/2024/02/30/story.html",
        "https://x.com/2023/02/29/not-leap",
        "https://x.com/2024/00/10/story",
        "https://x.com/news/story",
        "https://x.com/1850/01/01/old",
        "https://x.com/2024/03/1499/story",
        "https://x.com/id/20240314",
    ],
)
def test_url_without_a_valid_date(url):
    assert url_date(url) is None
