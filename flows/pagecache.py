"""Fetched pages kept on disk until their batch is loaded, so a crash between fetching and loading
never costs a second fetch: the next run takes the page from here instead of the network. Final
answers without a page (a 404, a PDF, a robots.txt refusal) are kept the same way; transient
failures are not, since they are tried again anyway.

The pages of one fetched batch go to one segment file under ``<warehouse>.pages/``, appended as each
page arrives, one ``write`` per page (so a killed process leaves every page it finished, and at most
one torn record at the end, which readers ignore). A record is a 12-byte head (magic, length of the
JSON metadata, length of the body) followed by the metadata and the body as it came (a server's gzip
stream is kept compressed). Once the pages of a segment are committed (or spooled) the segment is
deleted; a segment only partly committed (a resumed run plans its batches differently) is rewritten
without them. One file per batch rather than per page: creating, renaming and deleting a file for
every page cost about 0.7 ms of the main process's CPU per page.

Pages written by older versions (one ``<hash>.page`` file each) are still read and dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from flows.fetch import GUNZIP_ERRORS, TRANSIENT_OUTCOMES, FetchResult, gunzip_bounded

__all__ = ["PageCache"]

MAX_AGE = 7 * 86400.0
MAX_BODY = 64 * 1024 * 1024  # a kept gzip body decodes to at most this (the fetch cap is far lower)
_HEAD = struct.Struct(">4sII")  # magic, metadata length, body length
_MAGIC = b"NDP1"
_MAX_META = 1 << 20
SEGMENT_SUFFIX = ".seg"


def _records(handle: BinaryIO) -> Iterator[tuple[int, dict[str, Any], int]]:
    """(offset of the record, its metadata, offset of its end) of every whole record of a segment."""
    offset = 0
    size = os.fstat(handle.fileno()).st_size
    while offset + _HEAD.size <= size:
        handle.seek(offset)
        magic, meta_len, body_len = _HEAD.unpack(handle.read(_HEAD.size))
        end = offset + _HEAD.size + meta_len + body_len
        if magic != _MAGIC or meta_len > _MAX_META or end > size:
            return  # a torn last record (the writer was killed) or not a segment
        try:
            meta = json.loads(handle.read(meta_len))
        except ValueError:
            return
        if not isinstance(meta, dict) or not isinstance(meta.get("url"), str):
            return
        yield offset, meta, end
        offset = end


def _record(result: FetchResult) -> bytes:
    meta = {"url": result.url, "final_url": result.final_url, "status": result.status, "outcome": result.outcome,
            "detail": result.detail, "headers": result.headers, "attempts": result.attempts,
            "fetched_at": result.fetched_at.isoformat(), "gzip": result.body_gzip is not None}
    head = json.dumps(meta).encode("utf-8")
    body = result.body_gzip or result.body or b""  # as it came: no CPU on the hot path
    return _HEAD.pack(_MAGIC, len(head), len(body)) + head + body


def _result(meta: dict[str, Any], body: bytes) -> FetchResult | None:
    outcome = meta.get("outcome", "ok")
    compressed = body if meta.get("gzip") else None
    if compressed is not None:
        try:
            body = gunzip_bounded(compressed, MAX_BODY)
        except GUNZIP_ERRORS:
            return None
    try:
        return FetchResult(meta["url"], meta["final_url"], outcome, meta["status"], detail=meta.get("detail", ""),
                           attempts=0, headers=meta["headers"], body=body if outcome == "ok" else None,
                           body_gzip=compressed, fetched_at=datetime.fromisoformat(meta["fetched_at"]))
    except (KeyError, TypeError, ValueError):
        return None


class PageCache:
    """One instance per fetched batch: ``put`` appends to the batch's own segment (opened at the first
    page, closed by ``close``); ``get`` looks up pages left by earlier, interrupted runs."""

    def __init__(self, warehouse: str) -> None:
        self.root = Path(warehouse + ".pages")
        self._out: BinaryIO | None = None
        self._index: dict[str, tuple[Path, int]] | None = None
        self._legacy_names: set[str] = set()

    # -- writing -----------------------------------------------------------------------------------
    def put(self, result: FetchResult) -> None:
        if (result.ok and result.body is None) or result.outcome in TRANSIENT_OUTCOMES:
            return
        if self._out is None:
            self.root.mkdir(parents=True, exist_ok=True)
            name = f"{time.time_ns():020d}-{os.getpid()}{SEGMENT_SUFFIX}"
            self._out = open(self.root / name, "ab", buffering=0)  # noqa: SIM115 - closed by close()
        view = memoryview(_record(result))
        while view:  # unbuffered: one write per page (a full disk raises OSError, as before)
            written = self._out.write(view)
            if not written:
                raise OSError(f"could not write to the page cache {self.root}")
            view = view[written:]

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def __enter__(self) -> PageCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------------------
    def _segments(self) -> list[Path]:
        try:
            return sorted(p for p in self.root.iterdir() if p.suffix == SEGMENT_SUFFIX)
        except OSError:
            return []

    def _legacy(self, url: str) -> Path:
        return self.root / (hashlib.sha256(url.encode("utf-8")).hexdigest()[:32] + ".page")

    def _legacy_files(self) -> set[str]:
        try:
            return {p.name for p in self.root.glob("*.page")}
        except OSError:
            return set()

    def _build_index(self) -> dict[str, tuple[Path, int]]:
        index: dict[str, tuple[Path, int]] = {}
        for path in self._segments():  # oldest first: a later copy of a page wins
            try:
                with open(path, "rb") as handle:
                    for offset, meta, _ in _records(handle):
                        index[meta["url"]] = (path, offset)
            except OSError:
                continue
        self._legacy_names = self._legacy_files()
        return index

    def get(self, url: str) -> FetchResult | None:
        if self._index is None:
            self._index = self._build_index()
        hit = self._index.get(url)
        if hit is None:
            legacy = self._legacy(url)
            return self._get_legacy(url, legacy) if legacy.name in self._legacy_names else None
        path, offset = hit
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                magic, meta_len, body_len = _HEAD.unpack(handle.read(_HEAD.size))
                if magic != _MAGIC or meta_len > _MAX_META:
                    return None
                meta = json.loads(handle.read(meta_len))
                body = handle.read(body_len)
        except (OSError, ValueError, struct.error):
            return None  # the segment changed under us (rewritten by a drop): fetch again
        if not isinstance(meta, dict) or meta.get("url") != url or len(body) != body_len:
            return None
        return _result(meta, body)

    def _get_legacy(self, url: str, path: Path) -> FetchResult | None:
        try:
            data = path.read_bytes()
            size = int.from_bytes(data[:4], "big")
            meta = json.loads(data[4 : 4 + size])
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("url") != url:
            return None
        return _result(meta, data[4 + size :])

    # -- forgetting --------------------------------------------------------------------------------
    def drop(self, urls: Iterable[str]) -> None:
        """Forget the pages of ``urls`` (their batch is committed): delete every segment holding only
        such pages, and rewrite a segment holding others as well without them."""
        gone = set(urls)
        if not gone or not self.root.is_dir():
            return
        for path in self._segments():
            try:
                with open(path, "rb") as handle:
                    records = list(_records(handle))
                    hit = [r for r in records if r[1]["url"] in gone]
                    if not hit:
                        continue
                    if len(hit) < len(records):
                        self._rewrite(path, handle, [r for r in records if r[1]["url"] not in gone])
                        continue
                path.unlink(missing_ok=True)
            except OSError:
                continue
        legacy_names = self._legacy_files()  # nearly always none: no hashing per URL then
        for url in gone if legacy_names else ():
            legacy = self._legacy(url)
            if legacy.name in legacy_names:
                legacy.unlink(missing_ok=True)

    def _rewrite(self, path: Path, handle: BinaryIO, keep: list[tuple[int, dict[str, Any], int]]) -> None:
        stat = os.fstat(handle.fileno())
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as out:
            for offset, _, end in keep:
                handle.seek(offset)
                out.write(handle.read(end - offset))
        os.utime(tmp, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # keeps its age for prune
        tmp.replace(path)

    def prune(self, max_age: float = MAX_AGE) -> int:
        """Forget pages never loaded within ``max_age`` seconds (their URLs were not listed again), and
        temporary files a killed rewrite left behind."""
        if not self.root.is_dir():
            return 0
        cutoff = time.time() - max_age
        removed = 0
        for path in self.root.iterdir():
            try:
                if path.stat().st_mtime < cutoff or path.suffix.startswith(".tmp"):
                    path.unlink()
                    removed += 1
            except OSError:
                continue
        return removed
