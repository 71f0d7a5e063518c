-- 0006: where an article's authors came from (page metadata or a byline in the text), and its dateline.

ALTER TABLE articles ADD COLUMN authors_source VARCHAR;   -- metadata | byline | NULL
ALTER TABLE articles ADD COLUMN dateline VARCHAR;         -- the place of a "BAGHDAD —" dateline
