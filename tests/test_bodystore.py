"""Page bodies live in Parquet files beside the warehouse (warehouse.bodystore): written before the
transaction that refers to them, readable from SQL and by reprocessing, swept when unreferenced."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from tests.test_warehouse_merge import warehouse_at
from warehouse.bodystore import BodyStoreError, read_bodies, store_dir, sweep, write_bodies
from warehouse.connection import open_warehouse
from warehouse.load import PAGE_SCHEMA, load_batch
from warehouse.upkeep import maintain

AT = datetime(2024, 3, 1, tzinfo=UTC)


def body(url: str, size: int = 3000) -> bytes:
    """A distinct compressed body per URL (some kilobytes, like a real page's)."""
    return zlib.compress((url + " ").encode() * (size // (len(url) + 1)) + os.urandom(64))


def pages(*urls: str, at: datetime = AT, with_body: bool = True) -> pl.DataFrame:
    rows = [{"canonical_url": u, "url": u, "final_url": u, "source": "s", "status": 200, "headers": "{}",
             "encoding": "utf-8", "body_gz": body(u) if with_body else None, "body_bytes": 3000, "fetched_at": at}
            for u in urls]
    return pl.DataFrame(rows, schema=PAGE_SCHEMA)


def files(wh: str) -> list[str]:
    root = store_dir(wh)
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def load_pages(wh: str, frame: pl.DataFrame) -> None:
    with open_warehouse(wh) as con:
        load_batch(con, pl.DataFrame(), frame, pl.DataFrame(), None)


def bodies_in_sql(wh: str) -> dict[str, bytes]:
    with open_warehouse(wh, read_only=True) as con:
        return dict(con.execute("SELECT canonical_url, body_gz FROM page_bodies").fetchall())


def test_bodies_go_to_one_file_per_write_and_read_back_from_sql(warehouse_path: str) -> None:
    first = pages("https://x.test/a", "https://x.test/b")
    load_pages(warehouse_path, first)
    load_pages(warehouse_path, pages("https://x.test/c"))
    assert len(files(warehouse_path)) == 2
    with open_warehouse(warehouse_path, read_only=True) as con:
        rows = con.execute("SELECT canonical_url, body_gz IS NULL, body_file FROM pages ORDER BY 1").fetchall()
    assert [r[1] for r in rows] == [True, True, True]  # nothing of the bodies in DuckDB
    assert rows[0][2] == rows[1][2] != rows[2][2] and {r[2] for r in rows} == set(files(warehouse_path))
    got = bodies_in_sql(warehouse_path)
    assert got == {u: body_of for u, body_of in zip(first["canonical_url"], first["body_gz"], strict=True)} | {
        "https://x.test/c": got["https://x.test/c"]}
    assert zlib.decompress(got["https://x.test/c"]).startswith(b"https://x.test/c ")


def test_a_page_without_a_body_writes_no_file(warehouse_path: str) -> None:
    load_pages(warehouse_path, pages("https://x.test/a", with_body=False))
    assert files(warehouse_path) == []
    with open_warehouse(warehouse_path, read_only=True) as con:
        assert con.execute("SELECT count(*), count(body_file) FROM pages").fetchone() == (1, 0)
        assert con.execute("SELECT count(*) FROM page_bodies").fetchone() == (0,)


def test_a_fetched_again_page_points_at_its_new_body_and_the_old_file_is_swept(warehouse_path: str) -> None:
    load_pages(warehouse_path, pages("https://x.test/a", "https://x.test/b"))
    old = files(warehouse_path)
    again = pages("https://x.test/a", "https://x.test/b", at=AT + timedelta(days=1))
    load_pages(warehouse_path, again)
    assert len(files(warehouse_path)) == 2  # the old file stays until maintenance
    assert bodies_in_sql(warehouse_path) == dict(zip(again["canonical_url"], again["body_gz"], strict=True))
    report = maintain(warehouse_path)
    assert report["body_files_removed"] == 1 and report["body_files"] == 1
    assert old[0] not in files(warehouse_path)
    assert bodies_in_sql(warehouse_path) == dict(zip(again["canonical_url"], again["body_gz"], strict=True))


def test_a_mostly_dead_file_is_rewritten_with_its_live_rows_only(warehouse_path: str) -> None:
    urls = [f"https://x.test/{i}" for i in range(10)]
    first = pages(*urls)
    load_pages(warehouse_path, first)
    load_pages(warehouse_path, pages(*urls[:7]))  # 7 of the 10 replaced: the first file is 30% live
    before = bodies_in_sql(warehouse_path)
    with open_warehouse(warehouse_path) as con:
        report = sweep(con, small=0)  # rewriting alone, no merging
        refs = con.execute("SELECT body_file, count(*) FROM pages GROUP BY 1").fetchall()
    assert report["body_files_rewritten"] == 1 and report["body_files"] == 2
    assert sorted(n for _, n in refs) == [3, 7] and {f for f, _ in refs} == set(files(warehouse_path))
    assert bodies_in_sql(warehouse_path) == before
    assert {u: before[u] for u in urls[7:]} == dict(zip(first["canonical_url"][7:], first["body_gz"][7:], strict=True))


def test_small_files_are_merged_and_every_body_still_reads_the_same(warehouse_path: str) -> None:
    for i in range(5):  # five small scheduled runs
        load_pages(warehouse_path, pages(f"https://x.test/{i}a", f"https://x.test/{i}b"))
    before = bodies_in_sql(warehouse_path)
    assert len(files(warehouse_path)) == 5
    report = maintain(warehouse_path)
    assert report["body_files_merged"] == 5 and report["body_files"] == 1
    assert bodies_in_sql(warehouse_path) == before and len(before) == 10
    with open_warehouse(warehouse_path, read_only=True) as con:
        assert con.execute("SELECT DISTINCT body_file FROM pages").fetchall() == [(files(warehouse_path)[0],)]
    # big files are left alone
    with open_warehouse(warehouse_path) as con:
        assert sweep(con, small=1)["body_files_merged"] == 0


def test_prune_clears_old_bodies_and_removes_their_files(warehouse_path: str) -> None:
    load_pages(warehouse_path, pages("https://x.test/old", at=datetime.now(UTC) - timedelta(days=40)))
    load_pages(warehouse_path, pages("https://x.test/new", at=datetime.now(UTC)))
    report = maintain(warehouse_path, prune_raw_days=30)
    assert report["raw_bodies_pruned"] == 1 and report["body_files_removed"] == 1
    assert set(bodies_in_sql(warehouse_path)) == {"https://x.test/new"}
    with open_warehouse(warehouse_path, read_only=True) as con:  # the page row itself stays
        assert con.execute("SELECT count(*), count(body_file) FROM pages").fetchone() == (2, 1)


def test_leftovers_of_failed_writes_are_swept_and_live_files_kept(warehouse_path: str) -> None:
    load_pages(warehouse_path, pages("https://x.test/a"))
    live = files(warehouse_path)
    root = store_dir(warehouse_path)
    orphan = write_bodies(root, ["https://x.test/never-committed"], [b"x"])
    (root / "torn.parquet.partial").write_bytes(b"PAR1")
    with open_warehouse(warehouse_path) as con:
        report = sweep(con)
    assert report["body_files_removed"] == 1
    assert files(warehouse_path) == live and orphan not in live


def test_a_failed_transaction_removes_its_body_file(warehouse_path: str) -> None:
    load_pages(warehouse_path, pages("https://x.test/a"))
    kept = files(warehouse_path)
    bad_outcomes = pl.DataFrame({"url": ["u"], "no_such_column": [1]})  # the transaction fails on this
    with open_warehouse(warehouse_path) as con, pytest.raises(duckdb.Error):
        load_batch(con, pl.DataFrame(), pages("https://x.test/b"), bad_outcomes, None)
    assert files(warehouse_path) == kept
    assert set(bodies_in_sql(warehouse_path)) == {"https://x.test/a"}


def test_killed_before_commit_leaves_only_an_orphan_that_maintenance_removes(warehouse_path: str) -> None:
    load_pages(warehouse_path, pages("https://x.test/a"))
    kept = files(warehouse_path)
    script = textwrap.dedent(f"""
        import polars as pl
        from tests.test_bodystore import pages
        from warehouse.connection import open_warehouse
        from warehouse.load import load_batch
        with open_warehouse({warehouse_path!r}) as con:
            load_batch(con, pl.DataFrame(), pages("https://x.test/b"), pl.DataFrame(), None)
    """)
    env = {**os.environ, "NEWSDESK_FAULT": "mid_load"}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=Path(__file__).parent.parent,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr[-2000:]  # SIGKILL inside the transaction
    assert len(files(warehouse_path)) == 2  # the body file was written before the transaction
    assert set(bodies_in_sql(warehouse_path)) == {"https://x.test/a"}  # never committed
    maintain(warehouse_path)
    assert files(warehouse_path) == kept


def test_bodies_from_before_the_store_are_still_read(tmp_path: Path) -> None:
    """A warehouse of schema 9 kept bodies in pages.body_gz; after the upgrade they stay there and
    read the same, and new pages go to files."""
    wh = str(tmp_path / "v9.duckdb")
    con = warehouse_at(wh, 9)
    old = body("https://x.test/old")
    con.execute("INSERT INTO pages (canonical_url, url, body_gz, fetched_at) VALUES (?, ?, ?, ?)",
                ["https://x.test/old", "https://x.test/old", old, AT])
    con.close()
    load_pages(wh, pages("https://x.test/new"))
    got = bodies_in_sql(wh)
    assert got["https://x.test/old"] == old and set(got) == {"https://x.test/old", "https://x.test/new"}
    with open_warehouse(wh, read_only=True) as con:
        assert con.execute("SELECT canonical_url, body_gz IS NOT NULL, body_file IS NOT NULL FROM pages "
                           "ORDER BY 1").fetchall() == [("https://x.test/new", False, True),
                                                        ("https://x.test/old", True, False)]


def test_read_bodies_gives_none_for_a_missing_file_and_goes_on(warehouse_path: str) -> None:
    load_pages(warehouse_path, pages("https://x.test/a"))
    load_pages(warehouse_path, pages("https://x.test/b"))
    root = store_dir(warehouse_path)
    with open_warehouse(warehouse_path, read_only=True) as con:
        refs = con.execute("SELECT body_file, canonical_url FROM pages ORDER BY 2").fetchall()
    (root / refs[0][0]).unlink()
    got = list(read_bodies(root, refs))
    assert [(f, u) for f, u, _ in got] == refs
    assert got[0][2] is None and got[1][2] is not None and zlib.decompress(got[1][2]).startswith(b"https://x.test/b")


def test_an_unwritable_store_fails_with_one_line_and_commits_nothing(warehouse_path: str) -> None:
    root = store_dir(warehouse_path)
    root.parent.mkdir(parents=True, exist_ok=True)
    root.write_bytes(b"")  # a file where the folder should be: no body file can be written
    with open_warehouse(warehouse_path) as con, pytest.raises(BodyStoreError) as info:
        load_batch(con, pl.DataFrame(), pages("https://x.test/b"), pl.DataFrame(), None)
    assert "\n" not in str(info.value) and str(info.value).startswith(f"cannot write page bodies to {root}: ")
    with open_warehouse(warehouse_path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM pages").fetchone() == (0,)
