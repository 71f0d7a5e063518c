-- 0001: the spine. Runs, per-source state, every discovered URL's outcome, raw pages, articles.

CREATE TABLE runs (
    run_id        VARCHAR PRIMARY KEY,
    flow          VARCHAR NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    ended_at      TIMESTAMPTZ,
    status        VARCHAR NOT NULL,          -- running | completed | failed
    sources       INTEGER,
    discovered    INTEGER,                   -- URLs listed by the sources this run
    known         INTEGER,                   -- of those, already settled in the warehouse (not refetched)
    fetched       INTEGER,                   -- HTTP fetches of article pages that returned a body
    loaded        INTEGER,                   -- articles inserted or updated
    duplicates    INTEGER,
    failed        INTEGER,
    outcomes      JSON,                      -- {"loaded": n, "http_404": n, ...} for this run's URLs
    error         VARCHAR,
    parameters    JSON
);

CREATE TABLE source_state (
    source                VARCHAR PRIMARY KEY,
    kind                  VARCHAR,
    url                   VARCHAR,
    last_run_id           VARCHAR,
    last_run_at           TIMESTAMPTZ,
    last_status           VARCHAR,           -- ok | not_modified | a failure outcome
    last_detail           VARCHAR,
    last_discovered       INTEGER,
    last_new              INTEGER,
    last_loaded           INTEGER,
    consecutive_failures  INTEGER DEFAULT 0,
    last_success_at       TIMESTAMPTZ,
    etag                  VARCHAR,
    last_modified         VARCHAR
);

CREATE TABLE url_outcomes (
    url              VARCHAR PRIMARY KEY,    -- as discovered
    canonical_url    VARCHAR NOT NULL,
    source           VARCHAR,
    outcome          VARCHAR NOT NULL,       -- loaded | duplicate | robots_disallowed | not_html | http_404 | timeout | ...
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

CREATE TABLE pages (
    canonical_url  VARCHAR PRIMARY KEY,
    url            VARCHAR NOT NULL,
    final_url      VARCHAR,
    source         VARCHAR,
    status         INTEGER,
    headers        JSON,
    encoding       VARCHAR,
    body_gz        BLOB,                     -- zlib-compressed decoded body
    body_bytes     INTEGER,
    fetched_at     TIMESTAMPTZ,
    run_id         VARCHAR
);

CREATE TABLE articles (
    article_id           VARCHAR PRIMARY KEY, -- hash of the canonical URL
    url                  VARCHAR NOT NULL,    -- canonical URL
    final_url            VARCHAR,
    source               VARCHAR NOT NULL,
    title                VARCHAR,
    authors              VARCHAR[],
    published_at         TIMESTAMPTZ,
    published_date       DATE,                -- the publication day as the source states it
    published_at_source  VARCHAR,             -- metadata | feed | sitemap | url | text | NULL
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
    run_id               VARCHAR
);
