"""agg_speaker is kept in ranking order with a rank (migration 0009), so top_quoted_speakers reads it
without sorting: every load, rebuild and upgrade leaves the view's rows most quoted first."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

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
COLUMNS = "speaker, quotes, articles, sources, first_day, last_day"


def expected(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    """The view's rows as the ranking defines them, computed from the quotes themselves."""
    rows = sorted(recomputed(con)["agg_speaker"], key=lambda r: (-r[1], -r[2], r[0]))
    return [(i + 1, *row) for i, row in enumerate(rows)]


def view(con: duckdb.DuckDBPyConnection, suffix: str = "") -> list[tuple[object, ...]]:
    return [tuple(r) for r in con.execute(f"SELECT rank, {COLUMNS} FROM top_quoted_speakers {suffix}").fetchall()]


def load(con: duckdb.DuckDBPyConnection, arts: pl.DataFrame, qs: pl.DataFrame) -> None:
    urls = [f"u-{a}" for a in arts["article_id"].to_list()]
    load_batch(con, arts, pages(*urls), outcomes(*urls, at=AT), {"quotes": qs})


def test_every_load_leaves_the_view_in_ranking_order(warehouse_path: str) -> None:
    with open_warehouse(warehouse_path) as con:
        # Bob leads, Alice and Carol tie on quotes and are told apart by articles, then by name
        load(con, articles(("a1", "A", D1, 10), ("a2", "A", D2, 10), ("a3", "B", D3, 10)),
             quotes(("a1", "Bob", "person"), ("a1", "Bob", "person"), ("a1", "Bob", "person"),
                    ("a1", "Carol", "organization"), ("a2", "Carol", "organization"),
                    ("a3", "Alice", "person"), ("a3", "Alice", "person"),
                    ("a2", "Dan", "person"), ("a3", "Eve", "person"), ("a3", "a spokesman", "unknown")))
        assert [r[1] for r in view(con)] == ["Bob", "Carol", "Alice", "Dan", "Eve"]
        assert view(con) == expected(con)

        # a new article makes Eve the most quoted; Dan ties with nobody
        load(con, articles(("a4", "B", D3, 10)), quotes(*[("a4", "Eve", "person")] * 4))
        assert view(con) == expected(con)
        assert view(con)[0][:3] == (1, "Eve", 5)

        # a1 is re-extracted without Bob: Bob drops out, everyone below moves up
        load(con, articles(("a1", "A", D1, 10)), quotes(("a1", "Carol", "organization")))
        assert "Bob" not in [r[1] for r in view(con)]
        assert view(con) == expected(con)
        assert [r[0] for r in view(con)] == list(range(1, len(view(con)) + 1))

        # a batch without named quotes leaves the ranking as it was
        before = view(con)
        load(con, articles(("a5", "C", D1, 10)), quotes(("a5", None, "unknown")))
        assert view(con) == before

        assert view(con, "LIMIT 2") == expected(con)[:2]
        assert view(con, "WHERE speaker_type = 'person'") == [r for r in expected(con) if r[1] != "Carol"]

        rebuild_aggregates(con)
        assert view(con) == before
        assert stored(con) == recomputed(con)


def test_the_order_holds_across_row_groups_and_threads(tmp_path: Path) -> None:
    """Enough speakers to fill several of DuckDB's row groups (122,880 rows each), read back by a
    fresh connection scanning with several threads after the rows were checkpointed."""
    path = str(tmp_path / "many.duckdb")
    n = 300_000
    with open_warehouse(path) as con:
        # quotes per speaker fall in a narrow range, so most ranks are decided by articles and name
        con.execute(f"""
            INSERT INTO quotes (article_id, quote, speaker, speaker_type, start_char, end_char, transform_version,
                                source, published_date)
            SELECT 'a' || (range % 977), 'q', 'Speaker ' || (hash(range) % {n}), 'person', 0, 1, 't',
                   'S' || (range % 3), DATE '2024-03-01'
            FROM range({3 * n})""")
        rebuild_aggregates(con)
        con.execute("CHECKPOINT")
    con = duckdb.connect(path, read_only=True)
    try:
        con.execute("SET threads = 4")
        rows = con.execute("SELECT rank, quotes, articles, speaker FROM top_quoted_speakers").fetchall()
        assert len(rows) > 250_000
        assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
        assert rows == sorted(rows, key=lambda r: (-r[1], -r[2], r[3]))
        assert rows[:50] == con.execute("SELECT rank, quotes, articles, speaker FROM top_quoted_speakers "
                                        "LIMIT 50").fetchall()
    finally:
        con.close()


def test_an_older_warehouse_gets_ranked_speakers(tmp_path: Path) -> None:
    path = str(tmp_path / "v8.duckdb")
    con = warehouse_at(path, 8)
    con.execute("INSERT INTO articles (article_id, url, source, published_date, word_count) VALUES "
                "('a1', 'https://x.test/a1', 'A', DATE '2024-03-01', 10), "
                "('a2', 'https://x.test/a2', 'B', DATE '2024-03-02', 20)")
    con.execute("INSERT INTO quotes (article_id, quote, speaker, speaker_type, start_char, end_char, transform_version, "
                "source, published_date) VALUES "
                "('a1', 'q', 'Zed', 'person', 0, 1, 't', 'A', DATE '2024-03-01'), "
                "('a1', 'q', 'Amy', 'person', 0, 1, 't', 'A', DATE '2024-03-01'), "
                "('a2', 'q', 'Zed', 'person', 0, 1, 't', 'B', DATE '2024-03-02'), "
                "('a2', 'q', 'Mo', 'organization', 0, 1, 't', 'B', DATE '2024-03-02')")
    # the aggregates as the version-8 loader kept them: no rank, in no particular order
    con.execute("INSERT INTO agg_speaker_source SELECT source, speaker, any_value(speaker_type), count(*), "
                "count(DISTINCT article_id), min(published_date), max(published_date) FROM quotes GROUP BY ALL")
    con.execute("INSERT INTO agg_speaker VALUES ('Mo', 'organization', 1, 1, 1, DATE '2024-03-02', DATE '2024-03-02'), "
                "('Amy', 'person', 1, 1, 1, DATE '2024-03-01', DATE '2024-03-01'), "
                "('Zed', 'person', 2, 2, 2, DATE '2024-03-01', DATE '2024-03-02')")
    assert "rank" not in [r[0] for r in con.execute("DESCRIBE agg_speaker").fetchall()]
    con.close()

    with open_warehouse(path) as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchone() == (SCHEMA_VERSION,)
        assert view(con) == expected(con)
        assert [r[1] for r in view(con)] == ["Zed", "Amy", "Mo"]
