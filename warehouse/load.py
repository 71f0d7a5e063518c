"""Loading: Arrow tables into DuckDB, one transaction per batch, merged on stable keys."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from warehouse.bodystore import discard, split_bodies, store_of
from warehouse.faults import fault_point

__all__ = ["known_urls", "load_batch", "rebuild_aggregates", "start_run", "finish_run", "save_source_state",
           "OUTCOME_SCHEMA", "PAGE_SCHEMA"]

OUTCOME_SCHEMA: dict[str, Any] = {
    "url": pl.String,
    "canonical_url": pl.String,
    "source": pl.String,
    "outcome": pl.String,
    "detail": pl.String,
    "http_status": pl.Int32,
    "attempts": pl.Int32,
    "article_id": pl.String,
    "updated_at": pl.Datetime("us", "UTC"),
    "run_id": pl.String,
    "feed_title": pl.String,
    "feed_published": pl.Datetime("us", "UTC"),
    "feed_date_source": pl.String,
    "guid": pl.String,
}

PAGE_SCHEMA: dict[str, Any] = {
    "canonical_url": pl.String,
    "url": pl.String,
    "final_url": pl.String,
    "source": pl.String,
    "status": pl.Int32,
    "headers": pl.String,
    "encoding": pl.String,
    "body_gz": pl.Binary,
    "body_file": pl.String,
    "body_bytes": pl.Int32,
    "fetched_at": pl.Datetime("us", "UTC"),
    "run_id": pl.String,
}


def known_urls(con: duckdb.DuckDBPyConnection, urls: list[str], canonicals: list[str],
               retry_outcomes: Iterable[str]) -> tuple[set[str], set[str]]:
    """Which discovered URLs, and which canonical URLs, are already settled in the warehouse.

    Settled means an outcome that is not worth retrying. The lookup joins the batch against the
    keys, so its cost follows the batch, not the warehouse.
    """
    if not urls:
        return set(), set()
    retry = list(retry_outcomes)
    con.register("probe", pa.table({"u": pa.array(urls, pa.string())}))
    known_raw = {
        r[0]
        for r in con.execute(
            "SELECT o.url FROM probe p JOIN url_outcomes o ON o.url = p.u WHERE NOT list_contains(?, o.outcome)",
            [retry],
        ).fetchall()
    }
    con.unregister("probe")
    cprobe = pa.table({"c": pa.array(sorted(set(canonicals)), pa.string())})
    con.register("cprobe", cprobe)
    known_canon = {
        r[0]
        for r in con.execute(
            # a 'duplicate' row points at another URL holding the canonical one; that URL decides
            "SELECT DISTINCT o.canonical_url FROM cprobe p JOIN url_outcomes o ON o.canonical_url = p.c "
            "WHERE NOT list_contains(?, o.outcome) AND o.outcome <> 'duplicate' "
            "UNION SELECT a.url FROM cprobe p JOIN articles a ON a.url = p.c",
            [retry],
        ).fetchall()
    }
    con.unregister("cprobe")
    return known_raw, known_canon


FIELD_TABLES = ("quotes", "entities", "amounts", "datelines")

# The merged url_outcomes rows of a batch: attempts add up, the first-seen time stays, and what the
# batch does not know (feed details, the article) is kept from the earlier row.
_OUTCOME_MERGE = """
    SELECT b.url, b.canonical_url, b.source, b.outcome, b.detail, b.http_status,
           coalesce(o.attempts, 0) + coalesce(b.attempts, 0) AS attempts,
           coalesce(b.article_id, o.article_id) AS article_id,
           coalesce(o.first_seen_at, b.updated_at) AS first_seen_at,
           b.updated_at, b.run_id,
           coalesce(b.feed_title, o.feed_title) AS feed_title,
           coalesce(b.feed_published, o.feed_published) AS feed_published,
           coalesce(b.feed_date_source, o.feed_date_source) AS feed_date_source,
           coalesce(b.guid, o.guid) AS guid
    FROM batch_outcomes b LEFT JOIN url_outcomes o ON o.url = b.url
"""

# Quotes that count towards the speaker aggregates (descriptions and unattributed quotes do not).
_NAMED = "q.speaker IS NOT NULL AND q.speaker_type IN ('person', 'organization') AND q.source IS NOT NULL"


def load_batch(con: duckdb.DuckDBPyConnection, articles: pl.DataFrame, pages: pl.DataFrame,
               outcomes: pl.DataFrame, fields: dict[str, pl.DataFrame] | None = None) -> None:
    """Merge one batch in a single transaction.

    Pages (by canonical URL) and articles (by id) replace the rows with the same key; an article's
    structured fields replace its earlier ones; URL outcomes keep their first-seen time and add up
    attempts. The aggregate tables (``agg_*``) are brought up to date in the same transaction.

    The tables carry no key constraints (DuckDB rewrites a table's whole index at every
    checkpoint, which made each load slower as the warehouse grew), so the merge happens here:
    the rows being replaced are deleted, then the batch is inserted. A key that appears twice in
    one batch keeps its last row.
    """
    names: list[str] = []
    body_file, root = None, None
    if pages.height:  # the bodies go to a file of their own first (warehouse.bodystore)
        root = store_of(con)
        pages, body_file = split_bodies(root, _last_per_key(pages, "canonical_url"))

    def register(name: str, data: pl.DataFrame | pa.Table) -> None:
        con.register(name, _arrow(data) if isinstance(data, pl.DataFrame) else data)
        names.append(name)

    con.execute("BEGIN TRANSACTION")
    try:
        if articles.height:
            register("batch_articles", _last_per_key(articles, "article_id"))
            _merge_articles(con, fields, register)
        if pages.height:
            register("batch_pages", _last_per_key(pages, "canonical_url"))
            con.execute("DELETE FROM pages WHERE canonical_url IN (SELECT canonical_url FROM batch_pages)")
            con.execute("INSERT INTO pages BY NAME SELECT * FROM batch_pages")
        fault_point("mid_load")
        if outcomes.height:
            register("batch_outcomes", _last_per_key(outcomes, "url"))
            register("merged_outcomes", con.execute(_OUTCOME_MERGE).to_arrow_table())
            con.execute("DELETE FROM url_outcomes WHERE url IN (SELECT url FROM batch_outcomes)")
            con.execute("INSERT INTO url_outcomes BY NAME SELECT * FROM merged_outcomes")
        con.execute("COMMIT")
    except Exception:
        _rollback(con)
        discard(root, body_file)
        raise
    finally:
        for name in names:
            with contextlib.suppress(duckdb.Error):
                con.unregister(name)


def _arrow(frame: pl.DataFrame) -> pa.Table:
    """The frame as Arrow for DuckDB, its binary columns (page bodies) as polars holds them.

    polars' default export converts binary views to Arrow's older layout: one more copy of every
    page body, held for the whole transaction. Other columns keep that layout, since DuckDB pushes
    filters on them down to pyarrow, which cannot filter string views."""
    binary = [name for name, dtype in frame.schema.items() if dtype == pl.Binary]
    if not binary:
        return frame.to_arrow()
    views = frame.select(binary).to_arrow(compat_level=pl.CompatLevel.newest())
    table = frame.drop(binary).to_arrow()
    for name in frame.columns:
        if name in binary:
            table = table.add_column(frame.get_column_index(name), name, views.column(name))
    return table


def _last_per_key(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    """The frame with one row per key, the last; the frame itself when its keys are distinct
    already (nearly always), rather than a copy of every text and page body."""
    if frame[key].n_unique() == frame.height:
        return frame
    return frame.unique(key, keep="last", maintain_order=True)


def _merge_articles(con: duckdb.DuckDBPyConnection, fields: dict[str, pl.DataFrame] | None,
                    register: Callable[[str, pl.DataFrame | pa.Table], None]) -> None:
    """Replace the batch's articles (and, when given, their fields), then update the aggregates."""
    ids = "(SELECT article_id FROM batch_articles)"
    # What the replaced rows contributed to the aggregates, read before they go.
    register("old_days", con.execute(
        f"SELECT source, published_date AS day, -count(*) AS articles, -sum(word_count) AS words "
        f"FROM articles WHERE article_id IN {ids} GROUP BY ALL").to_arrow_table())
    register("old_speakers", con.execute(
        f"SELECT DISTINCT q.source, q.speaker FROM quotes q WHERE q.article_id IN {ids} AND {_NAMED}"
    ).to_arrow_table())
    con.execute(f"DELETE FROM articles WHERE article_id IN {ids}")
    con.execute("INSERT INTO articles BY NAME SELECT * FROM batch_articles")
    if fields is not None:
        for table in FIELD_TABLES:
            con.execute(f"DELETE FROM {table} WHERE article_id IN {ids}")
            frame = fields.get(table)
            if frame is None or not frame.height:
                continue
            register(f"batch_{table}", frame)
            if table == "quotes":  # quotes carry their article's source and day
                con.execute("INSERT INTO quotes BY NAME SELECT q.*, a.source, a.published_date "
                            "FROM batch_quotes q JOIN batch_articles a USING (article_id)")
            else:
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM batch_{table}")
    else:  # the quotes stay, and follow their article's source and day
        con.execute("UPDATE quotes SET source = a.source, published_date = a.published_date "
                    "FROM batch_articles a WHERE quotes.article_id = a.article_id")
    _update_source_day(con)
    _update_speakers(con, ids)


def _update_source_day(con: duckdb.DuckDBPyConnection) -> None:
    """agg_source_day += the batch's rows - the rows they replaced, for the keys the batch touches.

    Source names the ENUM of agg_source_day.source does not hold yet are added to it first."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _day_delta AS
        SELECT source, day, sum(articles) AS articles, sum(words) AS words FROM (
            SELECT source, day, articles, words FROM old_days
            UNION ALL
            SELECT source, published_date, count(*), sum(word_count) FROM batch_articles GROUP BY ALL
        ) GROUP BY ALL""")
    _add_source_names(con, "SELECT source FROM _day_delta")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _day_merged AS
        SELECT d.source, d.day, d.articles + coalesce(g.articles, 0) AS articles,
               coalesce(d.words, 0) + coalesce(g.words, 0) AS words
        FROM _day_delta d LEFT JOIN agg_source_day g ON g.source = d.source AND g.day IS NOT DISTINCT FROM d.day""")
    con.execute("DELETE FROM agg_source_day g USING _day_delta d "
                "WHERE g.source = d.source AND g.day IS NOT DISTINCT FROM d.day")
    con.execute("INSERT INTO agg_source_day SELECT source, day, articles, words FROM _day_merged WHERE articles > 0")
    con.execute("DROP TABLE _day_delta")
    con.execute("DROP TABLE _day_merged")


_SOURCE_PROBE = "FROM (SELECT source FROM agg_source_day LIMIT 0)"  # the column's type, no rows read


def _source_type(names: Iterable[str]) -> str:
    """The type of agg_source_day.source for these names: an ENUM holding them in sorted order (so
    ORDER BY source sorts by name, as for a VARCHAR), or VARCHAR if a name holds a NUL character,
    which DuckDB's SQL cannot write (nor its ENUMs hold safely)."""
    values = sorted(set(names))
    if not values or any("\x00" in v for v in values):
        return "VARCHAR"
    return "ENUM(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def _add_source_names(con: duckdb.DuckDBPyConnection, sources: str) -> None:
    """Add the source names the query ``sources`` returns to the ENUM of agg_source_day.source, if
    any are new (two small queries when none are).

    Call it before the transaction deletes rows from agg_source_day: ALTER ... TYPE casts deleted
    rows too (even ones deleted by earlier transactions) and fails on a value the new type does not
    hold. So names are only ever added, and a VARCHAR column (after a name with a NUL character)
    stays one.
    """
    kind = con.execute(f"SELECT typeof(any_value(source)) {_SOURCE_PROBE}").fetchone()
    if kind is None or not str(kind[0]).startswith("ENUM("):
        return
    known = f"(SELECT enum_range(any_value(source))::VARCHAR[] {_SOURCE_PROBE})"
    row = con.execute(f"SELECT list(DISTINCT s.source) FROM ({sources}) s(source) "
                      f"WHERE NOT list_contains({known}, s.source)").fetchone()
    if row is None or not row[0]:
        return
    current = con.execute(f"SELECT {known}").fetchone()
    names = [*(current[0] if current and current[0] else []), *row[0]]
    con.execute(f"ALTER TABLE agg_source_day ALTER COLUMN source TYPE {_source_type(names)}")


def _count_speakers(scope: str) -> str:
    """INSERT of agg_speaker_source rows, recounted from the quotes in ``scope`` (a FROM clause over quotes q)."""
    return f"""
        INSERT INTO agg_speaker_source
        SELECT q.source, q.speaker, any_value(q.speaker_type), count(*), count(DISTINCT q.article_id),
               min(q.published_date), max(q.published_date)
        FROM {scope} WHERE {_NAMED}
        GROUP BY q.source, q.speaker"""


# The order of top_quoted_speakers: agg_speaker is stored in it, and `rank` numbers it.
_RANKING = "quotes DESC, articles DESC, speaker"


def _speaker_totals(where: str) -> str:
    """SELECT of agg_speaker's columns but rank, summed from agg_speaker_source rows matching ``where``."""
    return f"""
        SELECT speaker, any_value(speaker_type) AS speaker_type, sum(quotes) AS quotes, sum(articles) AS articles,
               count(*) AS sources, min(first_day) AS first_day, max(last_day) AS last_day
        FROM agg_speaker_source WHERE {where}
        GROUP BY speaker"""


def _write_speakers(con: duckdb.DuckDBPyConnection, rows: str) -> None:
    """Replace agg_speaker with ``rows`` (a SELECT of its columns but rank), ranked and stored in rank order.

    top_quoted_speakers reads the table without sorting it (DuckDB returns a table's rows in the
    order they were inserted), so every change rewrites the whole table, which is small: one row
    per named speaker."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE _speakers AS {rows}")
    con.execute("DELETE FROM agg_speaker")
    con.execute(f"""
        INSERT INTO agg_speaker
        SELECT row_number() OVER (ORDER BY {_RANKING}), speaker, speaker_type, quotes, articles, sources,
               first_day, last_day
        FROM _speakers ORDER BY {_RANKING}""")
    con.execute("DROP TABLE _speakers")


def _update_speakers(con: duckdb.DuckDBPyConnection, ids: str) -> None:
    """Recount the (source, speaker) pairs the batch touched, before or after, then those speakers'
    totals, and re-rank agg_speaker."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _speaker_keys AS
        SELECT source, speaker FROM old_speakers
        UNION
        SELECT q.source, q.speaker FROM quotes q WHERE q.article_id IN {ids} AND {_NAMED}""")
    con.execute("DELETE FROM agg_speaker_source g USING _speaker_keys k "
                "WHERE g.source = k.source AND g.speaker = k.speaker")
    con.execute(_count_speakers(
        "quotes q SEMI JOIN _speaker_keys k ON q.source = k.source AND q.speaker = k.speaker"))
    if con.execute("SELECT count(*) FROM _speaker_keys").fetchone() != (0,):
        touched = "speaker IN (SELECT speaker FROM _speaker_keys)"
        _write_speakers(con, f"""
            SELECT speaker, speaker_type, quotes, articles, sources, first_day, last_day
            FROM agg_speaker WHERE NOT ({touched})
            UNION ALL {_speaker_totals(touched)}""")
    con.execute("DROP TABLE _speaker_keys")


def rebuild_aggregates(con: duckdb.DuckDBPyConnection) -> None:
    """Recompute every aggregate table from the rows (after a bulk load that bypassed
    ``load_batch``, or to check that the incremental upkeep is right)."""
    con.execute("BEGIN TRANSACTION")
    try:
        _add_source_names(con, "SELECT source FROM articles")
        for table in ("agg_source_day", "agg_speaker_source"):
            con.execute(f"DELETE FROM {table}")
        con.execute("INSERT INTO agg_source_day "
                    "SELECT source, published_date, count(*), sum(word_count) FROM articles GROUP BY ALL")
        con.execute(_count_speakers("quotes q"))
        _write_speakers(con, _speaker_totals("true"))
        con.execute("COMMIT")
    except Exception:
        _rollback(con)
        raise


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back if a transaction is still open; a failed COMMIT has already ended it."""
    with contextlib.suppress(duckdb.Error):
        con.execute("ROLLBACK")


def start_run(con: duckdb.DuckDBPyConnection, run_id: str, flow: str, started_at: datetime,
              parameters: dict[str, Any]) -> None:
    con.execute(
        "INSERT INTO runs (run_id, flow, started_at, status, parameters) VALUES (?, ?, ?, 'running', ?)",
        [run_id, flow, started_at, json.dumps(parameters, default=str)],
    )


def finish_run(con: duckdb.DuckDBPyConnection, run_id: str, ended_at: datetime, status: str,
               counts: dict[str, Any], outcomes: dict[str, int], error: str | None = None) -> None:
    con.execute(
        """UPDATE runs SET ended_at = ?, status = ?, sources = ?, discovered = ?, known = ?, fetched = ?,
           loaded = ?, duplicates = ?, failed = ?, outcomes = ?, error = ? WHERE run_id = ?""",
        [ended_at, status, counts.get("sources"), counts.get("discovered"), counts.get("known"),
         counts.get("fetched"), counts.get("loaded"), counts.get("duplicates"), counts.get("failed"),
         json.dumps(outcomes, sort_keys=True), error, run_id],
    )


def save_source_state(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    """Record each source's discovery outcome; failures count up, a success resets the count."""
    for r in rows:
        ok = r["status"] in ("ok", "not_modified")
        con.execute(
            """
            INSERT INTO source_state (source, kind, url, last_run_id, last_run_at, last_status, last_detail,
                last_discovered, last_new, last_loaded, consecutive_failures, last_success_at, etag, last_modified)
            VALUES ($source, $kind, $url, $run_id, $at, $status, $detail, $discovered, $new, $loaded,
                    CASE WHEN $ok THEN 0 ELSE 1 END, CASE WHEN $ok THEN $at ELSE NULL END, $etag, $last_modified)
            ON CONFLICT (source) DO UPDATE SET
                kind = excluded.kind, url = excluded.url, last_run_id = excluded.last_run_id,
                last_run_at = excluded.last_run_at, last_status = excluded.last_status,
                last_detail = excluded.last_detail, last_discovered = excluded.last_discovered,
                last_new = excluded.last_new, last_loaded = excluded.last_loaded,
                consecutive_failures = CASE WHEN $ok THEN 0 ELSE source_state.consecutive_failures + 1 END,
                last_success_at = CASE WHEN $ok THEN excluded.last_run_at ELSE source_state.last_success_at END,
                etag = CASE WHEN $ok THEN excluded.etag ELSE source_state.etag END,
                last_modified = CASE WHEN $ok THEN excluded.last_modified ELSE source_state.last_modified END
            """,
            {**r, "ok": ok},
        )
