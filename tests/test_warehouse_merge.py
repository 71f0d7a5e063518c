"""The loader merges on stable keys without key constraints, and keeps the aggregate tables exact."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from warehouse.connection import SCHEMA_VERSION, migrations, open_warehouse
from warehouse.load import OUTCOME_SCHEMA, load_batch, rebuild_aggregates

D1, D2, D3 = date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 3)


def articles(*rows: tuple[str, str, date | None, int]) -> pl.DataFrame:
    return pl.DataFrame(
        {"article_id": [r[0] for r in rows], "url": [f"https://x.test/{r[0]}" for r in rows],
         "source": [r[1] for r in rows], "published_date": [r[2] for r in rows],
         "word_count": [r[3] for r in rows], "text": [f"text of {r[0]}" for r in rows]},
        schema_overrides={"published_date": pl.Date, "word_count": pl.Int32})


def quotes(*rows: tuple[str, str | None, str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"article_id": [r[0] for r in rows], "quote": [f"words {i}" for i in range(len(rows))],
         "speaker": [r[1] for r in rows], "speaker_type": [r[2] for r in rows],
         "start_char": [0] * len(rows), "end_char": [5] * len(rows), "transform_version": ["t"] * len(rows)},
        schema_overrides={"speaker": pl.String, "start_char": pl.Int32, "end_char": pl.Int32})


def outcomes(*urls: str, at: datetime, outcome: str = "loaded") -> pl.DataFrame:
    frame = pl.DataFrame({"url": list(urls), "canonical_url": list(urls), "outcome": [outcome] * len(urls),
                          "attempts": [1] * len(urls), "updated_at": [at] * len(urls)},
                         schema_overrides={"attempts": pl.Int32, "updated_at": pl.Datetime("us", "UTC")})
    missing = [pl.lit(None, dtype=t).alias(c) for c, t in OUTCOME_SCHEMA.items() if c not in frame.columns]
    return frame.with_columns(missing).select(list(OUTCOME_SCHEMA))


def pages(*urls: str) -> pl.DataFrame:
    return pl.DataFrame({"canonical_url": list(urls), "url": list(urls), "body_bytes": [len(u) for u in urls]},
                        schema_overrides={"body_bytes": pl.Int32})


def recomputed(con: duckdb.DuckDBPyConnection) -> dict[str, set[tuple[Any, ...]]]:
    """The aggregates computed from scratch with the plain GROUP BYs they stand for."""
    named = "q.speaker IS NOT NULL AND q.speaker_type IN ('person', 'organization')"
    return {
        "agg_source_day": set(con.execute(
            "SELECT source, published_date, count(*), sum(word_count) FROM articles GROUP BY ALL").fetchall()),
        "agg_speaker_source": set(con.execute(
            f"SELECT a.source, q.speaker, count(*), count(DISTINCT q.article_id), min(a.published_date), "
            f"max(a.published_date) FROM quotes q JOIN articles a USING (article_id) WHERE {named} "
            f"GROUP BY a.source, q.speaker").fetchall()),
        "agg_speaker": set(con.execute(
            f"SELECT q.speaker, count(*), count(DISTINCT q.article_id), count(DISTINCT a.source), "
            f"min(a.published_date), max(a.published_date) FROM quotes q JOIN articles a USING (article_id) "
            f"WHERE {named} GROUP BY q.speaker").fetchall()),
    }


def stored(con: duckdb.DuckDBPyConnection) -> dict[str, set[tuple[Any, ...]]]:
    return {
        "agg_source_day": set(con.execute("SELECT source, day, articles, words FROM agg_source_day").fetchall()),
        "agg_speaker_source": set(con.execute(
            "SELECT source, speaker, quotes, articles, first_day, last_day FROM agg_speaker_source").fetchall()),
        "agg_speaker": set(con.execute(
            "SELECT speaker, quotes, articles, sources, first_day, last_day FROM agg_speaker").fetchall()),
    }


def test_merge_replaces_rows_and_keeps_aggregates_exact(warehouse_path: str) -> None:
    t1, t2 = datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 5, tzinfo=UTC)
    with open_warehouse(warehouse_path) as con:
        load_batch(con, articles(("a1", "A", D1, 100), ("a2", "A", D1, 50), ("a3", "B", D2, 10)),
                   pages("u1", "u2", "u3"), outcomes("u1", "u2", "u3", at=t1),
                   {"quotes": quotes(("a1", "Alice", "person"), ("a1", "Alice", "person"), ("a1", "Bob", "person"),
                                     ("a2", "Alice", "person"), ("a3", "Alice", "person"),
                                     ("a3", "a spokesperson", "unknown"), ("a3", None, "unknown"))})
        assert stored(con) == recomputed(con)
        assert con.execute("SELECT quotes, articles, sources, first_day, last_day FROM agg_speaker "
                           "WHERE speaker = 'Alice'").fetchone() == (4, 3, 2, D1, D2)

        # a1 is re-extracted: another day and other quotes; a4 is new and undated; u1 is seen again
        load_batch(con, articles(("a1", "A", D2, 120), ("a4", "B", None, 30)), pages("u1", "u4"),
                   outcomes("u1", "u4", at=t2),
                   {"quotes": quotes(("a1", "Carol", "organization"), ("a4", "Bob", "person"))})
        assert stored(con) == recomputed(con)
        assert con.execute("SELECT quotes, articles, first_day, last_day FROM agg_speaker_source "
                           "WHERE source = 'A' AND speaker = 'Alice'").fetchone() == (1, 1, D1, D1)
        assert con.execute("SELECT count(*) FROM agg_speaker_source WHERE speaker = 'Bob'").fetchone() == (1,)
        assert con.execute("SELECT articles, words FROM agg_source_day WHERE source = 'B' AND day IS NULL"
                           ).fetchone() == (1, 30)

        # a2 changes day without its fields: its quotes follow it
        load_batch(con, articles(("a2", "A", D3, 55)), pages(), outcomes(at=t2), None)
        assert stored(con) == recomputed(con)
        assert con.execute("SELECT last_day FROM agg_speaker_source WHERE source = 'A' AND speaker = 'Alice'"
                           ).fetchone() == (D3,)

        # one row per key, and the outcome merge keeps first_seen_at and adds up attempts
        for table, key in (("articles", "article_id"), ("pages", "canonical_url"), ("url_outcomes", "url")):
            dupes = con.execute(f"SELECT count(*) - count(DISTINCT {key}) FROM {table}").fetchone()
            assert dupes == (0,), table
        assert con.execute("SELECT count(*) FROM articles").fetchone() == (4,)
        assert con.execute("SELECT attempts, first_seen_at, updated_at FROM url_outcomes WHERE url = 'u1'"
                           ).fetchone() == (2, t1, t2)
        assert con.execute("SELECT word_count FROM articles WHERE article_id = 'a1'").fetchone() == (120,)

        before = stored(con)
        rebuild_aggregates(con)
        assert stored(con) == before


def test_a_key_twice_in_one_batch_keeps_the_last_row(warehouse_path: str) -> None:
    with open_warehouse(warehouse_path) as con:
        load_batch(con, articles(("a1", "A", D1, 1), ("a1", "A", D2, 2)), pages("u1", "u1"),
                   outcomes("u1", "u1", at=datetime(2024, 3, 1, tzinfo=UTC)), {})
        assert con.execute("SELECT published_date, word_count FROM articles").fetchall() == [(D2, 2)]
        assert con.execute("SELECT count(*) FROM pages").fetchone() == (1,)
        assert stored(con) == recomputed(con)


def test_a_failed_batch_changes_nothing(warehouse_path: str) -> None:
    with open_warehouse(warehouse_path) as con:
        load_batch(con, articles(("a1", "A", D1, 10)), pages("u1"), outcomes("u1", at=datetime(2024, 3, 1, tzinfo=UTC)),
                   {"quotes": quotes(("a1", "Alice", "person"))})
        before = stored(con)
        bad = outcomes("u2", at=datetime(2024, 3, 2, tzinfo=UTC)).with_columns(outcome=pl.lit(None, pl.String))
        with pytest.raises(duckdb.Error):  # outcome is NOT NULL: the whole batch rolls back
            load_batch(con, articles(("a1", "B", D2, 99)), pages("u1"), bad, {"quotes": quotes(("a1", "Bob", "person"))})
        assert stored(con) == before
        assert con.execute("SELECT source, word_count FROM articles").fetchall() == [("A", 10)]


def warehouse_at(path: str, last: int) -> duckdb.DuckDBPyConnection:
    """A warehouse file as the migrations up to ``last`` left it (an older newsdesk's), still open."""
    con = duckdb.connect(path)
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, name VARCHAR, "
                "applied_at TIMESTAMPTZ DEFAULT current_timestamp)")
    for version, name, sql in migrations():
        if version <= last:
            con.execute(sql)
            con.execute("INSERT INTO schema_version (version, name) VALUES (?, ?)", [version, name])
    return con


def test_an_older_warehouse_is_upgraded_with_its_rows(tmp_path: Path) -> None:
    path = str(tmp_path / "old.duckdb")
    con = warehouse_at(path, 6)
    con.execute("INSERT INTO articles (article_id, url, source, published_date, word_count) VALUES "
                "('a1', 'https://x.test/a1', 'A', DATE '2024-03-01', 10), "
                "('a2', 'https://x.test/a2', 'B', NULL, 20)")
    con.execute("INSERT INTO quotes (article_id, quote, speaker, speaker_type, start_char, end_char, "
                "transform_version) VALUES ('a1', 'q', 'Alice', 'person', 0, 1, 't')")
    con.execute("INSERT INTO url_outcomes (url, canonical_url, outcome, attempts, first_seen_at, updated_at) "
                "VALUES ('u1', 'u1', 'loaded', 3, now(), now())")
    con.close()

    with open_warehouse(path) as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchone() == (SCHEMA_VERSION,)
        assert con.execute("SELECT count(*) FROM articles").fetchone() == (2,)
        assert con.execute("SELECT source, published_date FROM quotes").fetchall() == [("A", D1)]
        assert stored(con) == recomputed(con)
        assert con.execute("SELECT speaker, quotes FROM top_quoted_speakers").fetchall() == [("Alice", 1)]
        load_batch(con, pl.DataFrame(), pl.DataFrame(), outcomes("u1", at=datetime(2024, 3, 9, tzinfo=UTC)), None)
        assert con.execute("SELECT count(*), max(attempts) FROM url_outcomes").fetchone() == (1, 4)


def test_the_pipeline_groups_fetch_batches_into_fewer_writes(site_settings) -> None:
    """Batches of 4 URLs are written 12 or more at a time, and the result is the same as one write
    per batch: every discovered URL has one outcome, every article one row."""
    import asyncio
    import dataclasses

    from flows.pipeline import PLAIN_STEPS, load_frames, run_pipeline
    from flows.sources import read_sources

    writes: list[int] = []

    def counting_load(settings, frames) -> None:  # noqa: ANN001
        writes.append(frames.outcomes.height)
        load_frames(settings, frames)

    steps = dataclasses.replace(PLAIN_STEPS, load=counting_load)
    settings = site_settings.with_overrides(batch_size=4, load_batch_size=12)
    report = asyncio.run(run_pipeline(settings, read_sources(settings.sources), steps=steps))
    assert report.status == "completed", report.error
    # the last writes may be smaller: once every batch has started, each one is written as it comes
    assert len(writes) >= 2 and all(n >= 12 for n in writes[:-2]) and writes[0] >= 12, writes
    assert sum(writes) == report.summary()["discovered"] - report.summary()["known"]
    with open_warehouse(settings.warehouse, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM url_outcomes").fetchone() == (sum(writes),)
        assert con.execute("SELECT count(*) - count(DISTINCT article_id) FROM articles").fetchone() == (0,)
        assert stored(con) == recomputed(con)


def test_the_extraction_workers_start_before_the_first_batch_is_fetched(site_settings, monkeypatch) -> None:
    """The pool's start-up (imports and warm-up, about a second a worker) overlaps the first fetch
    instead of waiting for the first batch to arrive."""
    import asyncio
    import dataclasses

    from flows import pipeline
    from flows.clean import Extractor
    from flows.sources import read_sources

    events: list[tuple[str, int]] = []

    class Recording(Extractor):
        def warm(self) -> None:
            events.append(("warm", self.workers))
            super().warm()

    async def fetch(fetcher, batch):  # noqa: ANN001, ANN202
        events.append(("fetch", len(batch)))
        return await pipeline.fetch_batch(fetcher, batch)

    monkeypatch.setattr(pipeline, "Extractor", Recording)
    settings = site_settings.with_overrides(batch_size=4, workers=2)
    report = asyncio.run(pipeline.run_pipeline(settings, read_sources(settings.sources),
                                               steps=dataclasses.replace(pipeline.PLAIN_STEPS, fetch=fetch)))
    assert report.status == "completed", report.error
    assert events[0] == ("warm", 2), events
    assert [kind for kind, _ in events].count("warm") == 1
    assert sum(n for kind, n in events if kind == "fetch") >= report.summary()["fetched"] > 8


def test_batches_are_fetched_and_extracted_while_a_write_is_in_progress(site_settings) -> None:
    """A warehouse write runs beside the pipeline, not in its way: while one write is going on
    (made slow here), later batches are still fetched and extracted, so the extraction workers are
    not left idle; writes still happen one at a time and in order, and nothing is lost."""
    import asyncio
    import dataclasses
    import threading
    import time

    from flows.pipeline import PLAIN_STEPS, extract_batch, load_frames, run_pipeline
    from flows.sources import read_sources

    writing: list[tuple[float, float]] = []
    extract_starts: list[float] = []
    active = threading.Lock()
    written_urls: list[str] = []

    def slow_load(settings, frames) -> None:  # noqa: ANN001
        assert active.acquire(blocking=False), "two writes at once"
        try:
            began = time.monotonic()
            time.sleep(0.6)
            load_frames(settings, frames)
            written_urls.extend(frames.outcomes["url"].to_list())
            writing.append((began, time.monotonic()))
        finally:
            active.release()

    async def timed_extract(extractor, fetched):  # noqa: ANN001, ANN202
        extract_starts.append(time.monotonic())
        return await extract_batch(extractor, fetched)

    steps = dataclasses.replace(PLAIN_STEPS, load=slow_load, extract=timed_extract)
    settings = site_settings.with_overrides(batch_size=2, load_batch_size=2)
    report = asyncio.run(run_pipeline(settings, read_sources(settings.sources), steps=steps))
    assert report.status == "completed", report.error
    assert len(writing) >= 3, writing
    during = [t for t in extract_starts if any(a < t < b for a, b in writing)]
    assert during, (extract_starts, writing)
    assert all(a1 >= b0 for (_, b0), (a1, _) in zip(writing, writing[1:], strict=False))  # one at a time, in order
    assert len(written_urls) == len(set(written_urls)) == report.summary()["discovered"] - report.summary()["known"]
    with open_warehouse(settings.warehouse, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM url_outcomes").fetchone() == (len(written_urls),)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_loading_connection_runs_with_the_threads_asked_for(warehouse_path: str, threads: int) -> None:
    with open_warehouse(warehouse_path, threads=threads) as con:
        assert con.execute("SELECT current_setting('threads')").fetchone() == (threads,)
