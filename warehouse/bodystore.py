"""Stored page bodies: Parquet files beside the warehouse, written once per load.

Page bodies are most of a warehouse's bytes (a compressed news page is 30-100 KB; its article
row and fields are a few KB). Kept in a DuckDB table, every body was written twice, to the
write-ahead log at commit and again into the file at the checkpoint that ends the write, and
that was over half of the loader's time. So each write puts its batch's bodies into one
Parquet file under ``<warehouse>.bodies/`` (written, flushed to disk and renamed into place
before the transaction that refers to it), and ``pages.body_file`` names the file. The rest of
the page row stays in DuckDB.

- A body is looked up by (file, canonical URL): a file holds one row per canonical URL.
- ``pages.body_gz`` still holds bodies written before this store existed (and bodies of a
  warehouse with no file, ``:memory:``); readers take whichever is set.
- In SQL, the temporary view ``page_bodies`` (created by ``open_warehouse``) shows every stored
  body, from either place.
- A file no page refers to any more (the page was fetched again, pruned, or its write failed)
  is removed by maintenance, a file mostly made of such rows is rewritten without them, and
  small files (a scheduled run that loads a few pages writes one) are merged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.tx import transaction

__all__ = ["BodyStoreError", "store_dir", "store_of", "write_bodies", "split_bodies", "discard", "read_bodies",
           "create_view", "sweep", "SUFFIX"]

log = logging.getLogger("newsdesk")

SUFFIX = ".parquet"
_ROW_GROUP = 128  # rows per row group: one body looked up reads about this many
SMALL_FILE = 8 * 1024 * 1024  # maintenance merges files under this size ...
MERGED_FILE = 64 * 1024 * 1024  # ... into files of about this size
_SCHEMA = pa.schema([("canonical_url", pa.string()), ("body_gz", pa.large_binary())])


class BodyStoreError(RuntimeError):
    """A body file could not be written (one-line message); nothing of its batch was committed."""


def store_dir(warehouse: str | Path) -> Path:
    """Where the bodies of the warehouse at ``warehouse`` live."""
    return Path(str(warehouse) + ".bodies")


def store_of(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The body store of the connection's database, or None when it has no file (``:memory:``)."""
    row = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    if not row or not row[0]:
        return None
    return store_dir(row[0])


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bodies(root: Path, urls: list[str], bodies: pa.Array | pa.ChunkedArray | list[bytes]) -> str:
    """Write one file of (canonical URL, body) rows, durably, and return its name.

    The file is complete on disk (flushed, renamed, directory entry flushed) before this returns,
    so a transaction that commits a reference to it never points at a missing or torn file."""
    name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}{SUFFIX}"
    table = pa.table({"canonical_url": pa.array(urls, pa.string()),
                      "body_gz": pa.array(bodies, pa.large_binary()) if isinstance(bodies, list)
                      else bodies.cast(pa.large_binary())}, schema=_SCHEMA)
    partial = root / (name + ".partial")
    try:
        root.mkdir(parents=True, exist_ok=True)
        # bodies are compressed already: no compression, no dictionary; statistics on the URL only
        with open(partial, "wb") as handle:
            pq.write_table(table, handle, compression="none", use_dictionary=False, row_group_size=_ROW_GROUP,
                           write_statistics=["canonical_url"])
            handle.flush()
            os.fsync(handle.fileno())
        partial.rename(root / name)
    except (OSError, pa.ArrowException) as exc:  # a full disk, a file-size limit, no permission
        with contextlib.suppress(OSError):
            partial.unlink()
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        raise BodyStoreError(f"cannot write page bodies to {root}: {reason}") from None
    _fsync_dir(root)
    return name


def split_bodies(root: Path | None, pages: pl.DataFrame) -> tuple[pl.DataFrame, str | None]:
    """Move the bodies of a batch of page rows into a new file of the store at ``root`` (None: no
    store, the bodies stay in the rows).

    Returns the rows with ``body_gz`` emptied and ``body_file`` naming the file (for the rows that
    had a body), and the file's name (None when nothing was written: no bodies, or no store)."""
    if "body_gz" not in pages.columns:
        return pages, None
    has_body = pages["body_gz"].is_not_null()
    if root is None or not has_body.any():
        return pages, None
    kept = pages.filter(has_body)
    name = write_bodies(root, kept["canonical_url"].to_list(), kept["body_gz"].to_arrow())
    rows = pages.with_columns(
        body_file=pl.when(has_body).then(pl.lit(name)).otherwise(pl.lit(None, dtype=pl.String)),
        body_gz=pl.lit(None, dtype=pl.Binary))
    return rows, name


def discard(root: Path | None, name: str | None) -> None:
    """Remove a file whose transaction did not commit (best effort; maintenance sweeps the rest)."""
    if root is not None and name:
        with contextlib.suppress(OSError):
            (root / name).unlink()


def read_bodies(root: Path, wanted: Iterable[tuple[str, str]]) -> Iterator[tuple[str, str, bytes | None]]:
    """(file, canonical URL, body) for each wanted (file, canonical URL), one file read at a time,
    in the order given grouped by file. A missing file or row gives None for the body (logged)."""
    by_file: dict[str, list[str]] = {}
    for name, url in wanted:
        by_file.setdefault(name, []).append(url)
    for name, urls in by_file.items():
        found = _read_file(root / name, urls)
        for url in urls:
            yield name, url, found.get(url)


def _read_file(path: Path, urls: list[str], strict: bool = False) -> dict[str, bytes]:
    try:
        table = pq.read_table(path, columns=["canonical_url", "body_gz"],
                              filters=[("canonical_url", "in", sorted(set(urls)))])
    except (OSError, pa.ArrowException) as exc:
        if strict:
            raise
        log.warning("stored bodies: cannot read %s (%s); its %d pages are skipped", path, exc, len(urls))
        return {}
    return dict(zip(table.column("canonical_url").to_pylist(), table.column("body_gz").to_pylist(), strict=True))


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def create_view(con: duckdb.DuckDBPyConnection) -> None:
    """The temporary view ``page_bodies`` (canonical_url, body_gz, body_file) over every stored body:
    those in ``pages.body_gz`` and those in the store's files. Bodies are the raw forms described
    for ``pages.body_gz``; ``flows.backfill.stored_body`` decodes them."""
    in_table = "SELECT canonical_url, body_gz, NULL::VARCHAR AS body_file FROM pages WHERE body_gz IS NOT NULL"
    root = store_of(con)
    if root is not None and root.is_dir() and any(root.glob("*" + SUFFIX)):
        pattern = _sql_string(str(root / ("*" + SUFFIX)))
        sql = (f"{in_table} UNION ALL SELECT p.canonical_url, f.body_gz, p.body_file FROM pages p "
               f"JOIN read_parquet({pattern}, filename = true) f "
               f"ON f.canonical_url = p.canonical_url AND parse_filename(f.filename) = p.body_file")
    else:
        sql = in_table
    con.execute(f"CREATE OR REPLACE TEMP VIEW page_bodies AS {sql}")


def sweep(con: duckdb.DuckDBPyConnection, min_live: float = 0.5, small: int = SMALL_FILE,
          target: int = MERGED_FILE) -> dict[str, Any]:
    """Remove files no page refers to; rewrite files whose live rows are under ``min_live`` of
    them; merge files under ``small`` bytes (a scheduled run that loads a few pages writes one
    each) into files of about ``target`` bytes. Call it holding the write connection (no load can
    be between writing a file and committing it then). Returns what it did."""
    report = {"body_files_removed": 0, "body_files_rewritten": 0, "body_files_merged": 0, "body_files": 0,
              "body_store_mb": 0.0}
    root = store_of(con)
    if root is None or not root.is_dir():
        return report
    for partial in root.glob("*.partial"):  # a write that never finished
        with contextlib.suppress(OSError):
            partial.unlink()
    live = dict(con.execute("SELECT body_file, count(*) FROM pages WHERE body_file IS NOT NULL GROUP BY 1").fetchall())
    for path in sorted(root.glob("*" + SUFFIX)):
        count = live.get(path.name, 0)
        if count == 0:
            with contextlib.suppress(OSError):
                path.unlink()
                report["body_files_removed"] += 1
            continue
        try:
            rows = pq.ParquetFile(path).metadata.num_rows
        except (OSError, pa.ArrowException):
            continue
        if count < rows * min_live:
            report["body_files_rewritten"] += _rewrite(con, root, [path])
    group: list[Path] = []
    for path in sorted(p for p in root.glob("*" + SUFFIX) if p.stat().st_size < small):  # oldest first
        group.append(path)
        if sum(p.stat().st_size for p in group) >= target:
            report["body_files_merged"] += _rewrite(con, root, group) * len(group)
            group = []
    if len(group) > 1:
        report["body_files_merged"] += _rewrite(con, root, group) * len(group)
    files = list(root.glob("*" + SUFFIX))
    report["body_files"] = len(files)
    report["body_store_mb"] = round(sum(p.stat().st_size for p in files) / 1e6, 1)
    return report


def _rewrite(con: duckdb.DuckDBPyConnection, root: Path, paths: list[Path]) -> int:
    """Copy the live rows of one or more files to one new file, point their pages at it, then
    remove the old files. Returns 1 if it did, 0 if a file could not be read or the new one not
    written (the old files are then left as they are)."""
    names = [p.name for p in paths]
    wanted: dict[str, list[str]] = {name: [] for name in names}
    for name, url in con.execute("SELECT body_file, canonical_url FROM pages WHERE list_contains(?, body_file)",
                                 [names]).fetchall():
        wanted[name].append(url)
    keep: list[str] = []
    bodies: list[bytes] = []
    for path in paths:
        try:
            found = _read_file(path, wanted[path.name], strict=True)
        except (OSError, pa.ArrowException) as exc:
            log.warning("stored bodies: cannot read %s (%s); left as it is", path, exc)
            return 0
        for url in wanted[path.name]:
            if url in found:
                keep.append(url)
                bodies.append(found[url])
    try:
        name = write_bodies(root, keep, bodies)
    except BodyStoreError as exc:  # the files stay as they are; the next sweep tries again
        log.warning("stored bodies: %s", exc)
        return 0
    try:
        with transaction(con):
            con.register("moved", pa.table({"u": pa.array(keep, pa.string())}))
            # a page whose row its file lacks had no body to point at; it now says so
            con.execute("UPDATE pages SET body_file = CASE WHEN canonical_url IN (SELECT u FROM moved) THEN ? END "
                        "WHERE list_contains(?, body_file)", [name, names])
    except Exception:
        discard(root, name)
        raise
    finally:
        with contextlib.suppress(duckdb.Error):
            con.unregister("moved")
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()
    return 1
