-- 0008: agg_source_day.source becomes an ENUM of the source names.
--
-- Returning articles_per_source_day in full (about 200,000 rows for a million articles) spent most
-- of its time turning the VARCHAR source column into Arrow strings; an ENUM column leaves DuckDB as
-- a dictionary array (one small integer per row), which is cheap. Values compare, filter and print
-- as their text (`WHERE source = 'x'` works as before), and the ENUM holds its names in sorted order,
-- so ORDER BY source sorts by name as it did.
--
-- The loader (warehouse.load.load_batch) adds a batch's new source names to the ENUM inside the
-- batch's transaction, and rebuild_aggregates does the same; names are only ever added. An empty
-- warehouse gets an ENUM with no values, which the first load extends. (A name with a NUL character,
-- which DuckDB cannot write in an ENUM and newsdesk's source names cannot hold, turns the column
-- back into a VARCHAR.)
--
-- The ENUM is built from the data with CREATE TYPE ... AS ENUM (SELECT ...), which needs no quoting
-- of the names. The table is copied rather than altered: in DuckDB 1.5.5 an `ALTER TABLE ... ALTER
-- COLUMN ... TYPE <named type>` that is still in the write-ahead log when the process dies makes the
-- warehouse unopenable (the replay cannot bind the type name), while a CREATE TABLE replays fine.

CREATE TYPE agg_source_day_source AS ENUM (
    SELECT source FROM agg_source_day UNION SELECT source FROM articles ORDER BY source
);

CREATE TABLE agg_source_day_new (
    source    agg_source_day_source NOT NULL,
    day       DATE,
    articles  BIGINT NOT NULL,
    words     BIGINT
);
INSERT INTO agg_source_day_new SELECT source, day, articles, words FROM agg_source_day;
DROP TABLE agg_source_day;
ALTER TABLE agg_source_day_new RENAME TO agg_source_day;
-- the column keeps the ENUM itself; the type name is no longer needed
DROP TYPE agg_source_day_source;

CREATE OR REPLACE VIEW articles_per_source_day AS
SELECT source, day, articles, words FROM agg_source_day;
