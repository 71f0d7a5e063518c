"""Fetched pages kept on disk until their batch is loaded, so a crash between fetching and loading
never costs a second fetch: the next run takes the page from here instead of the network. Final
answers without a page (a 404, a PDF, a robots.txt refusal) are kept the same way; transient
failures are not, since they are tried again anyway.

One file per page under ``<warehouse>.pages/``, written atomically (temp file, then rename); a
batch's files are removed once the batch is committed (or spooled).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import datetime
from pathlib import Path

from flows.fetch import GUNZIP_ERRORS, TRANSIENT_OUTCOMES, FetchResult, gunzip_bounded

__all__ = ["PageCache"]

MAX_AGE = 7 * 86400.0
MAX_BODY = 64 * 1024 * 1024  # a kept gzip body decodes to at most this (the fetch cap is far lower)


class PageCache:
    def __init__(self, warehouse: str) -> None:
        self.root = Path(warehouse + ".pages")

    def _path(self, url: str) -> Path:
        return self.root / (hashlib.sha256(url.encode("utf-8")).hexdigest()[:32] + ".page")

    def put(self, result: FetchResult) -> None:
        if (result.ok and result.body is None) or result.outcome in TRANSIENT_OUTCOMES:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        meta = {"url": result.url, "final_url": result.final_url, "status": result.status, "outcome": result.outcome,
                "detail": result.detail, "headers": result.headers, "attempts": result.attempts,
                "fetched_at": result.fetched_at.isoformat(), "gzip": result.body_gzip is not None}
        head = json.dumps(meta).encode("utf-8")
        target = self._path(result.url)
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        with tmp.open("wb") as handle:
            handle.write(len(head).to_bytes(4, "big") + head + (result.body_gzip or result.body or b""))  # as it came: no CPU on the hot path
        tmp.replace(target)

    def get(self, url: str) -> FetchResult | None:
        path = self._path(url)
        try:
            data = path.read_bytes()
            size = int.from_bytes(data[:4], "big")
            meta = json.loads(data[4 : 4 + size])
            body = data[4 + size :]
        except (OSError, ValueError):
            return None
        if meta.get("url") != url:
            return None
        outcome = meta.get("outcome", "ok")
        compressed = body if meta.get("gzip") else None
        if compressed is not None:
            try:
                body = gunzip_bounded(compressed, MAX_BODY)
            except GUNZIP_ERRORS:
                return None
        return FetchResult(url, meta["final_url"], outcome, meta["status"], detail=meta.get("detail", ""), attempts=0,
                           headers=meta["headers"], body=body if outcome == "ok" else None, body_gzip=compressed,
                           fetched_at=datetime.fromisoformat(meta["fetched_at"]))

    def drop(self, urls: list[str]) -> None:
        for url in urls:
            self._path(url).unlink(missing_ok=True)

    def prune(self, max_age: float = MAX_AGE) -> int:
        """Forget pages never loaded within ``max_age`` seconds (their URLs were not listed again)."""
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
