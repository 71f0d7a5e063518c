-- 0004: backfill partitions, one per (source, publication day).

CREATE TABLE backfill_partitions (
    source        VARCHAR NOT NULL,
    day           VARCHAR NOT NULL,          -- YYYY-MM-DD, or 'undated' when no date could be found
    origin        VARCHAR,                   -- sitemap | warc | raw
    state         VARCHAR NOT NULL,          -- pending | running | done | failed
    run_id        VARCHAR,
    candidates    INTEGER DEFAULT 0,         -- URLs planned in this partition by the last run that worked it
    known         INTEGER DEFAULT 0,         -- of those, already settled before the run
    loaded        INTEGER DEFAULT 0,
    duplicates    INTEGER DEFAULT 0,
    failed        INTEGER DEFAULT 0,
    outcomes      JSON,
    error         VARCHAR,
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    updated_at    TIMESTAMPTZ,
    PRIMARY KEY (source, day)
);
