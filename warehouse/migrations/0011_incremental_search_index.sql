-- 0011: the full-text index is kept up to date incrementally (warehouse/search.py).
--
-- DuckDB's fts extension rebuilds its index over every article at once, so each run that loaded
-- anything re-read the whole warehouse (about two minutes a run at 100,000 articles). The index is
-- now two plain tables that each refresh updates for the new and changed articles only, and
-- `newsdesk search` ranks with BM25 over them. The old index is dropped; the first refresh after
-- this upgrade (after the next run that loads, or `newsdesk maintenance`) indexes every article once.

DROP SCHEMA IF EXISTS fts_main_articles CASCADE;

CREATE TABLE search_docs (
    article_id    VARCHAR NOT NULL,  -- one row per indexed article
    extracted_at  TIMESTAMPTZ,       -- the version of the article that was indexed
    length        INTEGER NOT NULL   -- its number of indexed terms
);

CREATE TABLE search_terms (
    term          VARCHAR NOT NULL,  -- a stemmed word
    article_id    VARCHAR NOT NULL,
    tf            INTEGER NOT NULL   -- how often it occurs in the article's title and text
);
