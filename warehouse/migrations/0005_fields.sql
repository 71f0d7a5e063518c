-- 0005: structured fields extracted from articles.text by transforms.fields (quotes with speakers,
-- entities, amounts, datelines/bylines). Offsets (start_char, end_char) index into articles.text;
-- transform_version is transforms.fields.FIELDS_VERSION. Rows are replaced per article on re-extraction.

CREATE TABLE quotes (
    article_id        VARCHAR NOT NULL,
    quote             VARCHAR NOT NULL,   -- the text inside the quote marks
    speaker           VARCHAR,            -- fullest name used in the article, or a description ("anonymous letter")
    speaker_type      VARCHAR,            -- person | organization | document | crowd | unknown
    speaker_role      VARCHAR,            -- "former U.S. Brigadier General"
    verb              VARCHAR,            -- said | told | wrote | ...
    paragraph         INTEGER,            -- index of the paragraph (non-blank line) in articles.text
    start_char        INTEGER NOT NULL,
    end_char          INTEGER NOT NULL,
    transform_version VARCHAR NOT NULL
);

CREATE TABLE entities (
    article_id        VARCHAR NOT NULL,
    name              VARCHAR NOT NULL,   -- canonical (fullest) form
    kind              VARCHAR NOT NULL,   -- person | organization | place
    aliases           VARCHAR[],          -- other surface forms in the article ("Pompeo", "PMF")
    mentions          INTEGER NOT NULL,
    country_code      VARCHAR,            -- ISO 3166-1 alpha-2, places only
    start_char        INTEGER NOT NULL,   -- first mention
    end_char          INTEGER NOT NULL,
    transform_version VARCHAR NOT NULL
);

CREATE TABLE amounts (
    article_id        VARCHAR NOT NULL,
    text              VARCHAR NOT NULL,   -- "more than 400 protestors"
    value             DOUBLE,
    value_max         DOUBLE,             -- upper end of a range
    unit              VARCHAR,            -- percent | currency:USD | miles | months | ... | NULL for counts
    object            VARCHAR,            -- what is counted ("protestors")
    qualifier         VARCHAR,            -- more than | less than | about | nearly | at least | up to
    approximate       BOOLEAN,            -- vague amounts ("thousands of")
    paragraph         INTEGER,
    start_char        INTEGER NOT NULL,
    end_char          INTEGER NOT NULL,
    transform_version VARCHAR NOT NULL
);

CREATE TABLE datelines (
    article_id        VARCHAR NOT NULL,
    dateline_place    VARCHAR,            -- "Baghdad" from "BAGHDAD —"
    byline_authors    VARCHAR[],          -- from "By Douglas Burton"
    text_date         DATE,               -- a date written at the top of the text
    start_char        INTEGER,            -- the byline/date block, when it is a line of its own
    end_char          INTEGER,
    transform_version VARCHAR NOT NULL
);

-- Who is quoted most, per source: quotes and articles per named speaker (descriptions such as
-- "anonymous letter" and unattributed quotes are left out).
CREATE OR REPLACE VIEW top_quoted_speakers AS
SELECT a.source, q.speaker, any_value(q.speaker_type) AS speaker_type,
       count(*) AS quotes, count(DISTINCT q.article_id) AS articles,
       min(a.published_date) AS first_day, max(a.published_date) AS last_day
FROM quotes q JOIN articles a USING (article_id)
WHERE q.speaker IS NOT NULL AND q.speaker_type IN ('person', 'organization')
GROUP BY a.source, q.speaker
ORDER BY quotes DESC, articles DESC;

-- Quotes per speaker per publication day, across sources (who was talking when).
CREATE OR REPLACE VIEW quotes_per_speaker_day AS
SELECT a.published_date AS day, q.speaker, any_value(q.speaker_type) AS speaker_type,
       count(*) AS quotes, count(DISTINCT q.article_id) AS articles, count(DISTINCT a.source) AS sources
FROM quotes q JOIN articles a USING (article_id)
WHERE q.speaker IS NOT NULL AND q.speaker_type IN ('person', 'organization')
GROUP BY ALL
ORDER BY day DESC NULLS LAST, quotes DESC;

-- Which people and organisations appear together: pairs of entities named in the same article,
-- with the number of articles and sources that name both (each pair once, names in order).
CREATE OR REPLACE VIEW entity_cooccurrence AS
WITH e AS (
    SELECT DISTINCT article_id, name, kind FROM entities WHERE kind IN ('person', 'organization')
)
SELECT e1.name AS entity_a, e1.kind AS kind_a, e2.name AS entity_b, e2.kind AS kind_b,
       count(*) AS articles, count(DISTINCT a.source) AS sources, max(a.published_date) AS last_day
FROM e e1
JOIN e e2 ON e1.article_id = e2.article_id AND e1.name < e2.name
JOIN articles a ON a.article_id = e1.article_id
GROUP BY ALL
ORDER BY articles DESC, entity_a, entity_b;

-- Amounts by what they count and their unit: how often, the range of values, and the articles.
CREATE OR REPLACE VIEW amounts_by_object AS
SELECT lower(m.object) AS object, m.unit, count(*) AS amounts, count(DISTINCT m.article_id) AS articles,
       min(m.value) AS min_value, median(m.value) AS median_value, max(coalesce(m.value_max, m.value)) AS max_value,
       max(a.published_date) AS last_day
FROM amounts m JOIN articles a USING (article_id)
WHERE m.object IS NOT NULL OR m.unit IS NOT NULL
GROUP BY ALL
ORDER BY amounts DESC;
