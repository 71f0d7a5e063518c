"""One writer at a time: an advisory lock file next to the warehouse, held for a whole run.

DuckDB itself lets one process open a file for writing; newsdesk holds that only while loading a
batch, so two runs could interleave their batches. This lock serialises whole runs: a scheduled
ingest that finds the warehouse locked is skipped (and recorded), a backfill waits its turn.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from warehouse.connection import WarehouseError

__all__ = ["RunLockBusy", "run_lock", "lock_path"]


class RunLockBusy(RuntimeError):
    """Another run holds the warehouse's run lock."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"another run holds the warehouse ({holder or 'unknown holder'})")
        self.holder = holder


def lock_path(warehouse: str) -> Path:
    return Path(warehouse + ".lock")


@contextlib.contextmanager
def run_lock(warehouse: str, wait: float, owner: str) -> Iterator[None]:
    """Hold the run lock; wait up to ``wait`` seconds (0 = do not wait) before RunLockBusy."""
    path = lock_path(warehouse)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise WarehouseError(f"cannot create the run lock {path}: {exc.strerror}") from None
    try:
        deadline = time.monotonic() + max(0.0, wait)
        delay = 0.05
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = path.read_text(encoding="utf-8", errors="replace").strip()
                    raise RunLockBusy(holder) from None
                time.sleep(min(delay, max(0.01, deadline - time.monotonic())))
                delay = min(delay * 2, 1.0)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{owner} pid={os.getpid()}".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
