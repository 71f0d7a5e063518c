-- 0002: views for common questions.

CREATE OR REPLACE VIEW articles_per_source_day AS
SELECT source, published_date AS day, count(*) AS articles, sum(word_count) AS words
FROM articles
GROUP BY ALL
ORDER BY day DESC NULLS LAST, source;

CREATE OR REPLACE VIEW latest_articles AS
SELECT published_at, source, title, array_to_string(authors, '; ') AS authors, word_count, url
FROM articles
ORDER BY published_at DESC NULLS LAST, fetched_at DESC
LIMIT 100;

CREATE OR REPLACE VIEW outcomes_per_source AS
SELECT source, outcome, count(*) AS urls, max(updated_at) AS last_seen
FROM url_outcomes
GROUP BY ALL
ORDER BY source, urls DESC;

CREATE OR REPLACE VIEW recent_runs AS
SELECT run_id, flow, status, started_at, ended_at,
       date_diff('millisecond', started_at, ended_at) / 1000.0 AS seconds,
       discovered, known, fetched, loaded, duplicates, failed, error
FROM runs
ORDER BY started_at DESC;
