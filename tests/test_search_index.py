"""The full-text index (warehouse.search): kept up to date for new and changed articles only, equal
to a rebuild from scratch, and ranked with BM25."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from tests.test_warehouse_merge import warehouse_at
from warehouse.connection import load_extension, open_warehouse
from warehouse.load import load_batch
from warehouse.search import K1, B, has_search_index, refresh_search_index, search

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def arts(*rows: tuple[str, str, str, str], at: datetime = T0, day: date = date(2024, 5, 1)) -> pl.DataFrame:
    """Articles (id, source, title, text)."""
    return pl.DataFrame(
        {"article_id": [r[0] for r in rows], "url": [f"https://x.test/{r[0]}" for r in rows],
         "source": [r[1] for r in rows], "title": [r[2] for r in rows], "text": [r[3] for r in rows],
         "published_date": [day] * len(rows), "word_count": [len(r[3].split()) for r in rows],
         "extracted_at": [at] * len(rows)},
        schema_overrides={"published_date": pl.Date, "word_count": pl.Int32, "extracted_at": pl.Datetime("us", "UTC")})


def load(wh: str, frame: pl.DataFrame) -> None:
    with open_warehouse(wh) as con:
        load_batch(con, frame, pl.DataFrame(), pl.DataFrame(), None)


def refresh(wh: str, rebuild: bool = False) -> dict[str, int]:
    with open_warehouse(wh) as con:
        return refresh_search_index(con, rebuild=rebuild)


def found(wh: str, text: str, **kw) -> list[str]:
    with open_warehouse(wh, read_only=True) as con:
        columns, rows = search(con, text, **kw)
    return [r[columns.index("url")].rsplit("/", 1)[1] for r in rows]


def index_rows(wh: str) -> tuple[set, set]:
    with open_warehouse(wh, read_only=True) as con:
        return (set(con.execute("SELECT term, article_id, tf FROM search_terms").fetchall()),
                set(con.execute("SELECT article_id, extracted_at, length FROM search_docs").fetchall()))


HARBOUR = ("a1", "news", "Harbour strike ends", "Dock workers ended the harbour strike on Monday. The strike lasted "
           "nine days, and the keepers of the lighthouse joined it.")
BUDGET = ("a2", "news", "City budget", "The council passed the budget. Teachers and nurses get more money.")
STRIKE = ("a3", "wire", "Rail strike", "A rail strike is planned. Strike, strike, strike: the union said so.")


def test_terms_are_lowered_unaccented_stemmed_and_stopwords_dropped(warehouse_path: str) -> None:
    load(warehouse_path, arts(("c1", "s", "Café", "The keepers' Café reopened in 2024, and it is running again.")))
    assert refresh(warehouse_path) == {"indexed": 1, "dropped": 0}
    terms, docs = index_rows(warehouse_path)
    assert {t for t, _, _ in terms} == {"cafe", "keeper", "reopen", "2024", "run"}  # "again": a stopword
    assert {t: tf for t, _, tf in terms}["cafe"] == 2  # title and text
    assert docs == {("c1", T0, 6)}


def test_search_finds_stems_ranks_by_bm25_and_filters(warehouse_path: str) -> None:
    load(warehouse_path, arts(HARBOUR, BUDGET, STRIKE))
    refresh(warehouse_path)
    assert found(warehouse_path, "lighthouse keeper") == ["a1"]
    assert found(warehouse_path, "strikes") == ["a3", "a1"]  # four mentions in a short text beat two
    assert found(warehouse_path, "strikes", source=["news"]) == ["a1"]
    assert found(warehouse_path, "strikes", since="2024-05-02") == []
    assert found(warehouse_path, "the and of") == []  # stopwords only
    assert found(warehouse_path, "zeppelin") == []


def test_scores_are_bm25_over_the_indexed_counts(warehouse_path: str) -> None:
    load(warehouse_path, arts(HARBOUR, BUDGET, STRIKE))
    refresh(warehouse_path)
    with open_warehouse(warehouse_path, read_only=True) as con:
        columns, rows = search(con, "strike workers")
        tf = {(t, a): n for t, a, n in con.execute("SELECT term, article_id, tf FROM search_terms").fetchall()}
        length = dict(con.execute("SELECT article_id, length FROM search_docs").fetchall())
    n, avgdl = len(length), sum(length.values()) / len(length)

    def bm25(article: str) -> float:
        score = 0.0
        for term in ("strike", "worker"):
            df = sum(1 for (t, _a) in tf if t == term)
            f = tf.get((term, article), 0)
            if f:
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                score += idf * f * (K1 + 1) / (f + K1 * (1 - B + B * length[article] / avgdl))
        return round(score, 3)

    got = {r[columns.index("url")].rsplit("/", 1)[1]: r[columns.index("score")] for r in rows}
    assert got == {"a1": bm25("a1"), "a3": bm25("a3")} and got["a1"] > 0


def test_refresh_indexes_only_what_changed_and_equals_a_rebuild(warehouse_path: str) -> None:
    load(warehouse_path, arts(HARBOUR, BUDGET))
    assert refresh(warehouse_path) == {"indexed": 2, "dropped": 0}
    assert refresh(warehouse_path) == {"indexed": 0, "dropped": 0}  # nothing new: nothing done
    load(warehouse_path, arts(STRIKE))
    assert refresh(warehouse_path) == {"indexed": 1, "dropped": 0}
    # a1 extracted again with other text: its old terms go, its new ones come
    load(warehouse_path, arts(("a1", "news", "Harbour reopens", "Ships sail again."), at=T0 + timedelta(days=1)))
    assert refresh(warehouse_path) == {"indexed": 1, "dropped": 1}
    assert found(warehouse_path, "lighthouse") == [] and found(warehouse_path, "ships") == ["a1"]
    assert found(warehouse_path, "strike") == ["a3"]
    incremental = index_rows(warehouse_path)
    assert refresh(warehouse_path, rebuild=True) == {"indexed": 3, "dropped": 0}
    assert index_rows(warehouse_path) == incremental


def test_indexing_in_chunks_gives_the_same_index(warehouse_path: str) -> None:
    load(warehouse_path, arts(HARBOUR, BUDGET, STRIKE, ("a4", "wire", "Ships", "Ships sail again."),
                              ("a5", "wire", "Port", "The port reopened after the strike.")))
    with open_warehouse(warehouse_path) as con:
        assert refresh_search_index(con, chunk=2) == {"indexed": 5, "dropped": 0}
    chunked = index_rows(warehouse_path)
    assert refresh(warehouse_path, rebuild=True) == {"indexed": 5, "dropped": 0}
    assert index_rows(warehouse_path) == chunked and len({a for _, a, _ in chunked[0]}) == 5


def test_an_article_gone_from_the_warehouse_leaves_the_index(warehouse_path: str) -> None:
    load(warehouse_path, arts(HARBOUR, BUDGET))
    refresh(warehouse_path)
    with open_warehouse(warehouse_path) as con:
        con.execute("DELETE FROM articles WHERE article_id = 'a2'")
    assert refresh(warehouse_path) == {"indexed": 0, "dropped": 1}
    terms, docs = index_rows(warehouse_path)
    assert {a for _, a, _ in terms} == {"a1"} and {d[0] for d in docs} == {"a1"}


def test_maintenance_stores_the_terms_in_order_and_search_still_agrees(warehouse_path: str) -> None:
    from warehouse.upkeep import maintain

    load(warehouse_path, arts(HARBOUR))
    refresh(warehouse_path)
    load(warehouse_path, arts(BUDGET, STRIKE))
    refresh(warehouse_path)
    before = index_rows(warehouse_path)
    ranked = found(warehouse_path, "strike budget")
    report = maintain(warehouse_path)
    assert report["search_terms_sorted"] == len(before[0])
    with open_warehouse(warehouse_path, read_only=True) as con:  # stored order = term order
        stored = [r[0] for r in con.execute("SELECT term FROM search_terms").fetchall()]
    assert stored == sorted(stored) and len(set(stored)) > 10
    assert index_rows(warehouse_path) == before and found(warehouse_path, "strike budget") == ranked


def test_has_search_index(warehouse_path: str) -> None:
    with open_warehouse(warehouse_path) as con:
        assert has_search_index(con)  # nothing to index yet
    load(warehouse_path, arts(HARBOUR))
    with open_warehouse(warehouse_path) as con:
        assert not has_search_index(con)
        refresh_search_index(con)
        assert has_search_index(con)


def test_upgrade_drops_the_old_whole_table_index(tmp_path: Path) -> None:
    wh = str(tmp_path / "v10.duckdb")
    con = warehouse_at(wh, 10)
    con.execute("INSERT INTO articles (article_id, url, source, title, text) VALUES ('a1', 'https://x.test/a1', 's', 'Harbour', "
                "'the lighthouse keeper')")
    load_extension(con, "fts")
    con.execute("PRAGMA create_fts_index('articles', 'article_id', 'title', 'text', overwrite = 1)")
    con.close()
    with open_warehouse(wh) as con:
        assert con.execute("SELECT count(*) FROM duckdb_schemas() WHERE schema_name = 'fts_main_articles'"
                           ).fetchone() == (0,)
        assert not has_search_index(con)
        assert refresh_search_index(con) == {"indexed": 1, "dropped": 0}
    assert found(wh, "keepers") == ["a1"]
