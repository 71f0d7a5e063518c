"""agg_source_day.source is an ENUM of the source names (migration 0008): the loader adds new names
in the batch's transaction, rebuild_aggregates agrees with it, and users see plain text."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from tests.test_cli import newsdesk
from tests.test_warehouse_merge import (
    D1,
    D2,
    D3,
    articles,
    outcomes,
    pages,
    quotes,
    recomputed,
    stored,
    warehouse_at,
)
from warehouse.connection import SCHEMA_VERSION, open_warehouse
from warehouse.load import load_batch, rebuild_aggregates

AT = datetime(2024, 3, 1, tzinfo=UTC)
QUOTED = "O'Brien's \"Daily\""
ODD = ["back\\slash", "new\nline", "é-ünï", " spaced ", "", "100%_", "a,b"]


def source_type(con: duckdb.DuckDBPyConnection) -> str:
    row = con.execute("SELECT data_type FROM duckdb_columns() WHERE table_name = 'agg_source_day' "
                      "AND column_name = 'source'").fetchone()
    assert row is not None
    return str(row[0])


def enum_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    assert source_type(con).startswith("ENUM("), source_type(con)
    row = con.execute("SELECT enum_range(any_value(source)) FROM agg_source_day").fetchone()
    assert row is not None
    return list(row[0])


def view_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[str, ...]]:
    """articles_per_source_day, every value as a string, sorted."""
    return sorted(tuple(str(v) for v in row) for row in con.execute("SELECT * FROM articles_per_source_day").fetchall())


def plain_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[str, ...]]:
    """What articles_per_source_day stands for, computed from the articles."""
    return sorted(tuple(str(v) for v in row) for row in con.execute(
        "SELECT source, published_date, count(*), sum(word_count) FROM articles GROUP BY ALL").fetchall())


def check(con: duckdb.DuckDBPyConnection) -> None:
    """The view is exact, and the ENUM holds every article's source, sorted, each once."""
    assert view_rows(con) == plain_rows(con)
    assert stored(con) == recomputed(con)
    names = enum_names(con)
    assert names == sorted(set(names))
    present = {r[0] for r in con.execute("SELECT DISTINCT source FROM articles").fetchall()}
    assert present <= set(names)


def test_new_sources_in_later_batches_extend_the_enum(warehouse_path: str) -> None:
    with open_warehouse(warehouse_path) as con:
        # an empty warehouse: an ENUM with no names yet, and a view with no rows
        assert source_type(con) == "ENUM()"
        assert con.execute("SELECT * FROM articles_per_source_day").fetchall() == []
        assert con.execute("SELECT * FROM articles_per_source_day").to_arrow_table().num_rows == 0

        load_batch(con, articles(("a1", "B", D1, 10), ("a2", "A", D1, 20), ("a3", "B", None, 5)),
                   pages("u1", "u2", "u3"), outcomes("u1", "u2", "u3", at=AT),
                   {"quotes": quotes(("a1", "Alice", "person"))})
        check(con)
        assert enum_names(con) == ["A", "B"]

        # a later batch brings C and a name sorting first; a2 moves from A to C
        load_batch(con, articles(("a2", "C", D2, 21), ("a4", "C", D2, 7), ("a5", "0first", D3, 1)),
                   pages("u2", "u4", "u5"), outcomes("u2", "u4", "u5", at=AT), None)
        check(con)
        assert enum_names(con) == ["0first", "A", "B", "C"]  # A has no rows left; names are only added
        assert con.execute("SELECT count(*) FROM agg_source_day WHERE source = 'A'").fetchone() == (0,)

        # the same batch again changes nothing, the type included
        before, before_type = view_rows(con), source_type(con)
        batch = (articles(("a4", "C", D2, 7), ("a6", "B", D1, 3)), pages("u4", "u6"), outcomes("u4", "u6", at=AT),
                 {"quotes": quotes(("a6", "Bob", "person"))})
        load_batch(con, *batch)
        after = view_rows(con)
        load_batch(con, *batch)
        assert view_rows(con) == after != before
        assert source_type(con) == before_type
        check(con)

        # rebuild_aggregates gives the same rows and the same type
        incremental, incremental_type = view_rows(con), source_type(con)
        rebuild_aggregates(con)
        assert view_rows(con) == incremental
        assert source_type(con) == incremental_type
        check(con)

        # the view's source comes out as an ENUM (a dictionary array in Arrow) and filters by text
        table = con.execute("SELECT * FROM articles_per_source_day").to_arrow_table()
        assert pa.types.is_dictionary(table.schema.field("source").type)
        assert table.column_names == ["source", "day", "articles", "words"]
        assert con.execute("SELECT day, articles, words FROM articles_per_source_day WHERE source = 'C'"
                           ).fetchall() == [(D2, 2, 28)]
        assert con.execute("SELECT count(*) FROM articles_per_source_day WHERE source = ?", ["B"]).fetchone() == (2,)
        assert con.execute("SELECT count(*) FROM articles_per_source_day WHERE source = 'nowhere'").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM articles_per_source_day WHERE source IN ('B', 'zz')"
                           ).fetchone() == (2,)
        assert con.execute("SELECT count(*) FROM articles_per_source_day WHERE source LIKE '0%'").fetchone() == (1,)
        joined = con.execute("SELECT count(*) FROM articles_per_source_day v JOIN articles a "
                             "ON a.source = v.source AND a.published_date IS NOT DISTINCT FROM v.day").fetchone()
        assert joined == con.execute("SELECT count(*) FROM articles").fetchone()


def test_a_rebuild_adds_sources_loaded_around_the_loader(warehouse_path: str) -> None:
    with open_warehouse(warehouse_path) as con:
        load_batch(con, articles(("a1", "A", D1, 10)), pages("u1"), outcomes("u1", at=AT), None)
        # rows inserted in bulk, as the SQL benchmark does, then the aggregates recomputed
        con.execute("INSERT INTO articles (article_id, url, source, published_date, word_count) "
                    "SELECT 'b' || range, 'https://x.test/b' || range, 'bulk' || (range % 3), DATE '2024-03-01', 5 "
                    "FROM range(9)")
        rebuild_aggregates(con)
        check(con)
        assert enum_names(con) == ["A", "bulk0", "bulk1", "bulk2"]
        # a batch replacing a bulk-loaded article before any rebuild also works
        con.execute("INSERT INTO articles (article_id, url, source, published_date, word_count) "
                    "VALUES ('c1', 'https://x.test/c1', 'late', DATE '2024-03-02', 4)")
        load_batch(con, articles(("c1", "A", D2, 6)), pages("u9"), outcomes("u9", at=AT), None)
        assert view_rows(con) == plain_rows(con)


def test_names_with_quotes_and_other_characters(warehouse_path: str) -> None:
    with open_warehouse(warehouse_path) as con:
        load_batch(con, articles(("a1", QUOTED, D1, 10), ("a2", "plain", D1, 1)), pages("u1", "u2"),
                   outcomes("u1", "u2", at=AT), {"quotes": quotes(("a1", "Alice", "person"))})
        load_batch(con, articles(*((f"o{i}", name, D2, i) for i, name in enumerate(ODD))),
                   pages(*(f"p{i}" for i in range(len(ODD)))), outcomes(*(f"p{i}" for i in range(len(ODD))), at=AT),
                   None)
        check(con)
        assert set(enum_names(con)) == {QUOTED, "plain", *ODD}
        assert con.execute("SELECT articles, words FROM articles_per_source_day WHERE source = 'O''Brien''s \"Daily\"'"
                           ).fetchall() == [(1, 10)]
        assert con.execute("SELECT articles FROM articles_per_source_day WHERE source = ?", [QUOTED]).fetchall() == [(1,)]
        # ORDER BY sorts by name, as it did for a VARCHAR
        ordered = [r[0] for r in con.execute("SELECT source FROM articles_per_source_day ORDER BY source").fetchall()]
        assert ordered == [r[0] for r in con.execute(
            "SELECT source::VARCHAR AS s FROM articles_per_source_day ORDER BY s").fetchall()]
        rebuild_aggregates(con)
        check(con)


def test_a_name_with_a_nul_character_keeps_a_varchar_column(warehouse_path: str) -> None:
    """DuckDB's SQL cannot write a NUL character in an ENUM's values: the column becomes a VARCHAR."""
    with open_warehouse(warehouse_path) as con:
        load_batch(con, articles(("a1", "A", D1, 10)), pages("u1"), outcomes("u1", at=AT), None)
        load_batch(con, articles(("a2", "nul\x00name", D1, 3)), pages("u2"), outcomes("u2", at=AT), None)
        assert source_type(con) == "VARCHAR"
        assert view_rows(con) == plain_rows(con)
        load_batch(con, articles(("a3", "B", D2, 4), ("a2", "A", D1, 3)), pages("u3"), outcomes("u3", at=AT), None)
        assert view_rows(con) == plain_rows(con)
        rebuild_aggregates(con)
        assert source_type(con) == "VARCHAR"
        assert view_rows(con) == plain_rows(con)
        assert stored(con) == recomputed(con)


def _warehouse_at_0007(path: str) -> None:
    """A warehouse as migration 0007 left it, with rows in articles and a VARCHAR agg_source_day."""
    con = warehouse_at(path, 7)
    con.execute("INSERT INTO articles (article_id, url, source, published_date, word_count) VALUES "
                "('a1', 'https://x.test/a1', 'zeta', DATE '2024-03-01', 10), "
                "('a2', 'https://x.test/a2', 'alpha', NULL, 20), "
                "('a3', 'https://x.test/a3', 'O''Hara', DATE '2024-03-02', 30), "
                "('a4', 'https://x.test/a4', 'zeta', DATE '2024-03-01', 1)")
    con.execute("INSERT INTO agg_source_day "
                "SELECT source, published_date, count(*), sum(word_count) FROM articles GROUP BY ALL")
    assert con.execute("SELECT data_type FROM duckdb_columns() WHERE table_name = 'agg_source_day' "
                       "AND column_name = 'source'").fetchone() == ("VARCHAR",)
    con.close()


def test_an_existing_warehouse_is_upgraded_with_its_rows(tmp_path: Path) -> None:
    path = str(tmp_path / "old.duckdb")
    _warehouse_at_0007(path)
    with open_warehouse(path) as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchone() == (SCHEMA_VERSION,)
        assert enum_names(con) == ["O'Hara", "alpha", "zeta"]
        check(con)
        assert con.execute("SELECT articles, words FROM articles_per_source_day WHERE source = 'zeta'"
                           ).fetchall() == [(2, 11)]
        # migration 0009: 32-bit counts
        assert con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'agg_source_day' "
                           "AND column_name IN ('articles', 'words') ORDER BY 1").fetchall() == [
            ("articles", "INTEGER"), ("words", "INTEGER")]
        load_batch(con, articles(("a5", "beta", D3, 5), ("a1", "alpha", D1, 12)), pages("u5", "u1"),
                   outcomes("u5", "u1", at=AT), None)
        check(con)
        assert enum_names(con) == ["O'Hara", "alpha", "beta", "zeta"]


_CRASH = textwrap.dedent("""
    import os, sys
    from tests.test_warehouse_merge import D2, articles, outcomes, pages
    from warehouse.connection import open_warehouse
    from warehouse.load import load_batch
    from datetime import UTC, datetime
    with open_warehouse(sys.argv[1]) as con:
        load_batch(con, articles(("a9", "it's new", D2, 9)), pages("u9"),
                   outcomes("u9", at=datetime(2024, 3, 2, tzinfo=UTC)), None)
        sys.stdout.flush()
        os._exit(0)  # no close, no checkpoint: the next open replays the write-ahead log
""")


def test_the_upgrade_and_a_load_survive_a_crash_before_the_checkpoint(tmp_path: Path) -> None:
    """The migration and the loader's ALTER are replayed from the write-ahead log."""
    path = str(tmp_path / "old.duckdb")
    _warehouse_at_0007(path)
    proc = subprocess.run([sys.executable, "-c", _CRASH, path], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0, proc.stderr
    assert Path(path + ".wal").exists()
    with open_warehouse(path) as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchone() == (SCHEMA_VERSION,)
        assert enum_names(con) == ["O'Hara", "alpha", "it's new", "zeta"]
        check(con)


def test_the_cli_prints_enum_sources_as_text(tmp_path: Path) -> None:
    path = str(tmp_path / "w.duckdb")
    with open_warehouse(path) as con:
        load_batch(con, articles(("a1", QUOTED, D1, 10), ("a2", "B", None, 5)), pages("u1", "u2"),
                   outcomes("u1", "u2", at=AT), None)
    query = "SELECT * FROM articles_per_source_day ORDER BY source"
    proc = newsdesk("sql", query, "-w", path, "-f", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [{"source": "B", "day": None, "articles": 1, "words": 5},
                                       {"source": QUOTED, "day": "2024-03-01", "articles": 1, "words": 10}]
    proc = newsdesk("sql", query, "-w", path, "-f", "csv")
    assert proc.returncode == 0, proc.stderr
    assert list(csv.reader(io.StringIO(proc.stdout))) == [["source", "day", "articles", "words"], ["B", "", "1", "5"],
                                                          [QUOTED, "2024-03-01", "1", "10"]]
    proc = newsdesk("sql", query, "-w", path, "-f", "table")
    assert proc.returncode == 0, proc.stderr
    assert QUOTED in proc.stdout and "2024-03-01" in proc.stdout
    proc = newsdesk("views", "-w", path, "-f", "json")
    assert proc.returncode == 0, proc.stderr
    view = next(v for v in json.loads(proc.stdout) if v["name"] == "articles_per_source_day")
    assert view["columns"] == "source, day, articles, words"


def test_polars_reads_the_view(warehouse_path: str) -> None:
    with open_warehouse(warehouse_path) as con:
        load_batch(con, articles(("a1", QUOTED, D1, 10), ("a2", "B", D1, 5)), pages("u1", "u2"),
                   outcomes("u1", "u2", at=AT), None)
        frame = pl.from_arrow(con.execute("SELECT * FROM articles_per_source_day").to_arrow_table())
        assert isinstance(frame, pl.DataFrame)
        assert sorted(frame["source"].cast(pl.String).to_list()) == ["B", QUOTED]
