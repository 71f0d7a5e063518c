-- 0007: faster loading and faster common questions.
--
-- 1. pages, articles and url_outcomes lose their PRIMARY KEY constraints. DuckDB rewrites a table's
--    whole ART index at every checkpoint, so each batch's load cost grew with the warehouse. The
--    loader (warehouse.load.load_batch) now merges on the same keys itself, inside the batch's
--    transaction: it deletes the rows it replaces and inserts the batch, so every key still has
--    exactly one row.
-- 2. quotes carry their article's source and publication day, so per-source and per-day questions
--    about speakers need no join with articles.
-- 3. Aggregate tables, kept up to date by the loader in the same transaction as the rows they
--    summarise: articles per source and day, and quotes per speaker (per source, and overall).
--    The views that answer those questions read them instead of the raw tables.

CREATE TABLE url_outcomes_new (
    url              VARCHAR NOT NULL,       -- as discovered; one row per URL (merged by the loader)
    canonical_url    VARCHAR NOT NULL,
    source           VARCHAR,
    outcome          VARCHAR NOT NULL,
    detail           VARCHAR,
    http_status      INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0,
    article_id       VARCHAR,
    first_seen_at    TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    run_id           VARCHAR,
    feed_title       VARCHAR,
    feed_published   TIMESTAMPTZ,
    feed_date_source VARCHAR,
    guid             VARCHAR
);
INSERT INTO url_outcomes_new BY NAME SELECT * FROM url_outcomes;
DROP TABLE url_outcomes;
ALTER TABLE url_outcomes_new RENAME TO url_outcomes;

CREATE TABLE pages_new (
    canonical_url  VARCHAR NOT NULL,         -- one row per canonical URL (merged by the loader)
    url            VARCHAR NOT NULL,
    final_url      VARCHAR,
    source         VARCHAR,
    status         INTEGER,
    headers        JSON,
    encoding       VARCHAR,
    body_gz        BLOB,
    body_bytes     INTEGER,
    fetched_at     TIMESTAMPTZ,
    run_id         VARCHAR
);
INSERT INTO pages_new BY NAME SELECT * FROM pages;
DROP TABLE pages;
ALTER TABLE pages_new RENAME TO pages;

CREATE TABLE articles_new (
    article_id           VARCHAR NOT NULL,    -- hash of the canonical URL; one row per id (merged by the loader)
    url                  VARCHAR NOT NULL,
    final_url            VARCHAR,
    source               VARCHAR NOT NULL,
    title                VARCHAR,
    authors              VARCHAR[],
    published_at         TIMESTAMPTZ,
    published_date       DATE,
    published_at_source  VARCHAR,
    language             VARCHAR,
    site_name            VARCHAR,
    description          VARCHAR,
    categories           VARCHAR[],
    tags                 VARCHAR[],
    text                 VARCHAR,
    word_count           INTEGER,
    content_hash         VARCHAR,
    guid                 VARCHAR,
    fetched_at           TIMESTAMPTZ,
    extracted_at         TIMESTAMPTZ,
    extractor            VARCHAR,
    extractor_version    VARCHAR,
    transform_version    VARCHAR,
    run_id               VARCHAR,
    authors_source       VARCHAR,
    dateline             VARCHAR
);
INSERT INTO articles_new BY NAME SELECT * FROM articles;
DROP TABLE articles;
ALTER TABLE articles_new RENAME TO articles;

ALTER TABLE quotes ADD COLUMN source VARCHAR;
ALTER TABLE quotes ADD COLUMN published_date DATE;
UPDATE quotes SET source = a.source, published_date = a.published_date
FROM articles a WHERE a.article_id = quotes.article_id;

-- Articles and words per source and publication day (day NULL: undated).
CREATE TABLE agg_source_day (
    source    VARCHAR NOT NULL,
    day       DATE,
    articles  BIGINT NOT NULL,
    words     BIGINT
);

-- Quotes by named speakers (people and organisations) per source.
CREATE TABLE agg_speaker_source (
    source        VARCHAR NOT NULL,
    speaker       VARCHAR NOT NULL,
    speaker_type  VARCHAR,
    quotes        BIGINT NOT NULL,
    articles      BIGINT NOT NULL,
    first_day     DATE,
    last_day      DATE
);

-- The same across sources.
CREATE TABLE agg_speaker (
    speaker       VARCHAR NOT NULL,
    speaker_type  VARCHAR,
    quotes        BIGINT NOT NULL,
    articles      BIGINT NOT NULL,
    sources       BIGINT NOT NULL,
    first_day     DATE,
    last_day      DATE
);

INSERT INTO agg_source_day
SELECT source, published_date, count(*), sum(word_count) FROM articles GROUP BY ALL;

INSERT INTO agg_speaker_source
SELECT source, speaker, any_value(speaker_type), count(*), count(DISTINCT article_id),
       min(published_date), max(published_date)
FROM quotes
WHERE speaker IS NOT NULL AND speaker_type IN ('person', 'organization') AND source IS NOT NULL
GROUP BY source, speaker;

INSERT INTO agg_speaker
SELECT speaker, any_value(speaker_type), sum(quotes), sum(articles), count(*), min(first_day), max(last_day)
FROM agg_speaker_source GROUP BY speaker;

CREATE OR REPLACE VIEW articles_per_source_day AS
SELECT source, day, articles, words FROM agg_source_day;

-- Who is quoted most: quotes and articles per named speaker across all sources, most quoted first.
CREATE OR REPLACE VIEW top_quoted_speakers AS
SELECT speaker, speaker_type, quotes, articles, sources, first_day, last_day
FROM agg_speaker
ORDER BY quotes DESC, articles DESC, speaker;

-- The same per source (one row per source and speaker).
CREATE OR REPLACE VIEW quoted_speakers_by_source AS
SELECT source, speaker, speaker_type, quotes, articles, first_day, last_day
FROM agg_speaker_source;

-- Quotes per speaker per publication day, across sources (who was talking when).
CREATE OR REPLACE VIEW quotes_per_speaker_day AS
SELECT published_date AS day, speaker, any_value(speaker_type) AS speaker_type,
       count(*) AS quotes, count(DISTINCT article_id) AS articles, count(DISTINCT source) AS sources
FROM quotes
WHERE speaker IS NOT NULL AND speaker_type IN ('person', 'organization')
GROUP BY ALL
ORDER BY day DESC NULLS LAST, quotes DESC;
