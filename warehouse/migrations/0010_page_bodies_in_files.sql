-- 0010: page bodies are stored in Parquet files beside the warehouse (warehouse/bodystore.py).
--
-- A body written into pages.body_gz went to DuckDB's write-ahead log at commit and into the file
-- again at the checkpoint; bodies are most of the bytes a load writes, and this double write was
-- over half of the loader's time. New pages keep their body in `<warehouse>.bodies/<body_file>`
-- (one file per load, one row per canonical URL) and leave body_gz NULL. Rows written before
-- keep their body_gz; nothing is moved. The temporary view page_bodies shows both.

ALTER TABLE pages ADD COLUMN body_file VARCHAR;
