"""The page cache: pages kept on disk between fetching and loading, one segment file per batch."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from flows.fetch import FetchResult
from flows.pagecache import PageCache


def _page(i: int, gz: bool = False) -> FetchResult:
    body = f"<html><body><p>page {i} " .encode() + b"x" * (200 + i) + b"</p></body></html>"
    return FetchResult(f"http://127.0.0.1:9/a/{i}", f"http://127.0.0.1:9/a/{i}?final", "ok", 200,
                       headers={"content-type": "text/html"}, body=body,
                       body_gzip=gzip.compress(body, mtime=0) if gz else None)


def _files(wh: str) -> list[Path]:
    root = Path(wh + ".pages")
    return sorted(root.iterdir()) if root.is_dir() else []


@pytest.fixture
def wh(tmp_path: Path) -> str:
    return str(tmp_path / "w.duckdb")


def test_pages_of_a_batch_come_back_as_they_were_kept(wh: str) -> None:
    kept = [_page(0), _page(1, gz=True),
            FetchResult("http://127.0.0.1:9/gone", "http://127.0.0.1:9/gone", "http_404", 404, detail="not found")]
    with PageCache(wh) as cache:
        for r in kept:
            cache.put(r)
    assert len(_files(wh)) == 1, "one segment for the batch"
    reader = PageCache(wh)
    for r in kept:
        got = reader.get(r.url)
        assert got is not None
        assert (got.url, got.final_url, got.outcome, got.status, got.body, got.headers) == \
               (r.url, r.final_url, r.outcome, r.status, r.body, r.headers)
        assert got.body_gzip == r.body_gzip
        assert got.attempts == 0  # taken from disk, not fetched
    assert reader.get("http://127.0.0.1:9/never") is None


def test_transient_failures_and_bodiless_successes_are_not_kept(wh: str) -> None:
    with PageCache(wh) as cache:
        cache.put(FetchResult("http://127.0.0.1:9/t", "http://127.0.0.1:9/t", "timeout"))
        cache.put(FetchResult("http://127.0.0.1:9/e", "http://127.0.0.1:9/e", "ok", 200, body=None))
    assert _files(wh) == []


def test_a_torn_last_record_is_ignored_and_the_rest_is_read(wh: str) -> None:
    with PageCache(wh) as cache:
        for i in range(3):
            cache.put(_page(i))
    (segment,) = _files(wh)
    data = segment.read_bytes()
    segment.write_bytes(data[:-10])  # the writer was killed inside the last page's record
    reader = PageCache(wh)
    assert reader.get(_page(0).url) is not None
    assert reader.get(_page(1).url) is not None
    assert reader.get(_page(2).url) is None


def test_garbage_in_the_cache_folder_reads_as_no_page(wh: str) -> None:
    root = Path(wh + ".pages")
    root.mkdir()
    (root / "00000000000000000001-1.seg").write_bytes(b"not a segment at all" * 10)
    assert PageCache(wh).get(_page(0).url) is None
    PageCache(wh).drop([_page(0).url])  # no error either


def test_dropping_every_page_of_a_segment_deletes_it(wh: str) -> None:
    for batch in (range(0, 3), range(3, 6)):
        with PageCache(wh) as cache:
            for i in batch:
                cache.put(_page(i))
    assert len(_files(wh)) == 2
    PageCache(wh).drop([_page(i).url for i in range(3)])
    assert len(_files(wh)) == 1
    reader = PageCache(wh)
    assert reader.get(_page(0).url) is None
    assert all(reader.get(_page(i).url) is not None for i in range(3, 6))


def test_a_segment_partly_committed_is_rewritten_without_those_pages_and_keeps_its_age(wh: str) -> None:
    with PageCache(wh) as cache:
        for i in range(5):
            cache.put(_page(i, gz=i % 2 == 0))
    (segment,) = _files(wh)
    old = 1_000_000_000
    os.utime(segment, (old, old))
    PageCache(wh).drop([_page(1).url, _page(3).url])
    (after,) = _files(wh)
    assert after.name == segment.name
    assert after.stat().st_mtime == old
    reader = PageCache(wh)
    assert reader.get(_page(1).url) is None and reader.get(_page(3).url) is None
    for i in (0, 2, 4):
        got = reader.get(_page(i).url)
        assert got is not None and got.body == _page(i).body


def test_pages_kept_by_the_older_one_file_per_page_layout_are_read_and_dropped(wh: str) -> None:
    import hashlib

    root = Path(wh + ".pages")
    root.mkdir()
    r = _page(7)
    meta = {"url": r.url, "final_url": r.final_url, "status": 200, "outcome": "ok", "detail": "",
            "headers": r.headers, "attempts": 1, "fetched_at": r.fetched_at.isoformat(), "gzip": False}
    head = json.dumps(meta).encode()
    legacy = root / (hashlib.sha256(r.url.encode()).hexdigest()[:32] + ".page")
    legacy.write_bytes(len(head).to_bytes(4, "big") + head + (r.body or b""))
    got = PageCache(wh).get(r.url)
    assert got is not None and got.body == r.body
    PageCache(wh).drop([r.url])
    assert not legacy.exists()


def test_prune_forgets_old_segments_and_leftover_temporary_files(wh: str) -> None:
    with PageCache(wh) as cache:
        cache.put(_page(0))
    with PageCache(wh) as cache:
        cache.put(_page(1))
    old_segment, new_segment = _files(wh)
    os.utime(old_segment, (1_000_000_000, 1_000_000_000))
    (Path(wh + ".pages") / "x.tmp123").write_bytes(b"half a rewrite")
    assert PageCache(wh).prune() == 2
    assert _files(wh) == [new_segment]
