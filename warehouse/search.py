"""Full-text search over article titles and text: an inverted index kept up to date incrementally,
ranked with BM25 at query time.

DuckDB's full-text extension builds its index over a whole table at once, so bringing it up to
date after a run re-read every article in the warehouse (about 1.2 ms of wall time an article on
two cores: two minutes a run at 100,000 articles, however few the run loaded). This index lives
in two ordinary tables and is brought up to date by indexing only the articles that are new or
changed since they were last indexed, and dropping the entries of articles that changed:

- ``search_docs``: one row per indexed article, with the ``extracted_at`` of the version
  indexed and its length in terms;
- ``search_terms``: one row per (term, article) with the term's count in the article.

Terms are the words of the title and text, lower-cased, accents stripped, split on anything
that is not a letter or digit, one-character words and common English function words dropped,
then Porter-stemmed (the stemmer of DuckDB's fts extension), so "keepers" finds "keeper".
Scores are BM25 (k1 = 1.2, b = 0.75) over the indexed articles.
"""

from __future__ import annotations

from typing import Any

import duckdb

from warehouse.connection import load_extension
from warehouse.tx import transaction

__all__ = ["refresh_search_index", "compact_search_index", "has_search_index", "search", "STOPWORDS"]

K1, B = 1.2, 0.75
CHUNK = 1000  # articles tokenised per transaction

# Common English function words, and "said", which nearly every news article uses: too frequent
# to tell articles apart.
_STOPWORD_TEXT = """
a about above after again against all am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not
now of off on once only or other our ours ourselves out over own same she should so some such than that the
their theirs them themselves then there these they this those through to too under until up very was we
were what when where which while who whom why will with would you your yours yourself yourselves also said
"""
STOPWORDS = sorted(set(_STOPWORD_TEXT.split()))

_WORDS = "regexp_split_to_array(strip_accents(lower({text})), '[^a-z0-9]+')"


def _terms_sql(source: str) -> str:
    """(term, article_id, tf) of the articles in ``source`` (a relation with article_id, title, text):
    each distinct word is stemmed once."""
    words = _WORDS.format(text="coalesce(title, '') || ' ' || coalesce(text, '')")
    return f"""
        WITH tokens AS (
            SELECT article_id, w, count(*) AS tf
            FROM (SELECT article_id, unnest({words}) AS w FROM {source})
            WHERE length(w) > 1 AND NOT list_contains($stopwords, w)
            GROUP BY ALL),
        stems AS (SELECT w, stem(w, 'porter') AS term FROM (SELECT DISTINCT w FROM tokens))
        SELECT term, article_id, sum(tf)::INTEGER AS tf FROM tokens JOIN stems USING (w) GROUP BY ALL"""


def refresh_search_index(con: duckdb.DuckDBPyConnection, rebuild: bool = False,
                         chunk: int = CHUNK) -> dict[str, int]:
    """Bring the index up to date with ``articles``: index the articles that are new or changed
    since they were indexed, drop the entries of the changed and of any no longer there. Its cost
    follows what changed, not the warehouse. ``rebuild`` starts from empty tables.

    Articles are indexed ``chunk`` at a time, one transaction each (an article's entries and its
    ``search_docs`` row commit together), so memory follows the chunk: tokenising 20,000 articles
    at once took 1.8 GB. Returns the number of articles indexed and dropped."""
    load_extension(con, "fts")
    with transaction(con):
        if rebuild:
            con.execute("DELETE FROM search_terms")
            con.execute("DELETE FROM search_docs")
        # indexed versions that are no longer the article's (changed, or the article is gone)
        con.execute("""
            CREATE OR REPLACE TEMP TABLE _gone AS
            SELECT d.article_id FROM search_docs d
            ANTI JOIN articles a ON a.article_id = d.article_id AND a.extracted_at IS NOT DISTINCT FROM d.extracted_at""")
        gone = _count(con, "_gone")
        if gone:
            con.execute("DELETE FROM search_terms WHERE article_id IN (SELECT article_id FROM _gone)")
            con.execute("DELETE FROM search_docs WHERE article_id IN (SELECT article_id FROM _gone)")
        con.execute("DROP TABLE _gone")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _todo AS
        SELECT a.article_id, a.extracted_at, row_number() OVER (ORDER BY a.article_id) AS n FROM articles a
        ANTI JOIN search_docs d ON d.article_id = a.article_id AND d.extracted_at IS NOT DISTINCT FROM a.extracted_at""")
    todo = _count(con, "_todo")
    chunk = max(1, chunk)
    for start in range(0, todo, chunk):
        with transaction(con):
            con.execute("""
                CREATE OR REPLACE TEMP TABLE _chunk AS
                SELECT a.article_id, a.extracted_at, a.title, a.text FROM articles a
                JOIN _todo t ON t.article_id = a.article_id AND t.n > $lo AND t.n <= $hi""",
                        {"lo": start, "hi": start + chunk})
            con.execute(f"CREATE OR REPLACE TEMP TABLE _new_terms AS {_terms_sql('_chunk')}",
                        {"stopwords": STOPWORDS})
            # sorted by term, so a term's rows sit in few row groups and a lookup skips the others
            con.execute("INSERT INTO search_terms SELECT term, article_id, tf FROM _new_terms ORDER BY term, article_id")
            con.execute("""
                INSERT INTO search_docs
                SELECT c.article_id, c.extracted_at, coalesce(n.length, 0)
                FROM _chunk c LEFT JOIN (SELECT article_id, sum(tf) AS length FROM _new_terms GROUP BY 1) n
                USING (article_id)""")
            con.execute("DROP TABLE _new_terms")
            con.execute("DROP TABLE _chunk")
    con.execute("DROP TABLE _todo")
    return {"indexed": todo, "dropped": gone}


def compact_search_index(con: duckdb.DuckDBPyConnection) -> int:
    """Rewrite ``search_terms`` in term order (each refresh appends its own sorted run; after many,
    a term's rows are spread over many row groups again). A lookup then reads one or two row
    groups instead of every one: 7.5 ms against 245 ms for three terms over 13 million rows.
    Returns the rows rewritten."""
    with transaction(con):
        con.execute("CREATE OR REPLACE TEMP TABLE _sorted AS SELECT term, article_id, tf FROM search_terms "
                    "ORDER BY term, article_id")
        con.execute("DELETE FROM search_terms")
        con.execute("INSERT INTO search_terms SELECT * FROM _sorted")
        rows = _count(con, "_sorted")
        con.execute("DROP TABLE _sorted")
    return rows


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


def has_search_index(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the index has been built (or there is nothing to index yet)."""
    row = con.execute("SELECT (SELECT count(*) FROM search_docs) > 0 OR (SELECT count(*) FROM articles) = 0").fetchone()
    return bool(row and row[0])


def search(con: duckdb.DuckDBPyConnection, text: str, source: list[str] | None = None, since: str | None = None,
           until: str | None = None, limit: int = 10) -> tuple[list[str], list[tuple[Any, ...]]]:
    """BM25-ranked articles matching ``text``, with a snippet around the first matching term."""
    load_extension(con, "fts")
    where = ["true"]
    params: dict[str, Any] = {"q": text, "stopwords": STOPWORDS, "limit": limit}
    if source:
        where.append("list_contains($sources, a.source)")
        params["sources"] = source
    if since:
        where.append("a.published_date >= CAST($since AS DATE)")
        params["since"] = since
    if until:
        where.append("a.published_date <= CAST($until AS DATE)")
        params["until"] = until
    # terms are letters and digits only, so the pattern below can be written into the SQL safely
    terms = [t for t in "".join(c if c.isalnum() else " " for c in text).split() if len(t) > 2]
    pattern = "(?i)(" + "|".join(terms or ["^"]) + ")"
    words = _WORDS.format(text="$q")
    sql = f"""
        WITH q AS (
            SELECT DISTINCT stem(w, 'porter') AS term FROM (SELECT unnest({words}) AS w)
            WHERE length(w) > 1 AND NOT list_contains($stopwords, w)),
        hits AS (SELECT t.term, t.article_id, t.tf FROM search_terms t SEMI JOIN q ON q.term = t.term),
        df AS (SELECT term, count(*) AS df FROM hits GROUP BY term),
        stats AS (SELECT count(*) AS n, avg(length) AS avgdl FROM search_docs),
        scores AS (
            SELECT h.article_id,
                   sum(ln(1 + (s.n - f.df + 0.5) / (f.df + 0.5))
                       * h.tf * ({K1} + 1) / (h.tf + {K1} * (1 - {B} + {B} * d.length / s.avgdl))) AS score
            FROM hits h JOIN df f USING (term) JOIN search_docs d USING (article_id) CROSS JOIN stats s
            GROUP BY h.article_id),
        top AS (  -- the best matches first, then a snippet for those only
            SELECT s.article_id, s.score FROM scores s JOIN articles a USING (article_id)
            WHERE {' AND '.join(where)}
            ORDER BY s.score DESC, s.article_id LIMIT $limit)
        SELECT round(t.score, 3) AS score, a.published_date, a.source, a.title,
               CASE WHEN regexp_matches(a.text, '{pattern}')
                    THEN '…' || trim(substr(a.text, greatest(1, instr(lower(a.text),
                         lower(regexp_extract(a.text, '{pattern}', 1))) - 80), 200)) || '…'
                    ELSE substr(a.text, 1, 200) END AS snippet,
               a.url
        FROM top t JOIN articles a USING (article_id)
        ORDER BY t.score DESC, t.article_id
    """
    cur = con.execute(sql, params)
    return [d[0] for d in cur.description], cur.fetchall()
