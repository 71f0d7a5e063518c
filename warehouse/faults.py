"""Fault injection for the reliability tests: ``NEWSDESK_FAULT=<point>[:<n>]`` kills the process
with SIGKILL the n-th time (default first) it reaches that point. Unset, it does nothing.

Points: ``after_fetch`` (a page fetched and kept on disk, counted per page), ``mid_load`` (inside
a batch's transaction, after its rows were written and before the commit).
"""

from __future__ import annotations

import os
import signal
from collections import Counter

__all__ = ["fault_point"]

_SEEN: Counter[str] = Counter()


def fault_point(name: str) -> None:
    spec = os.environ.get("NEWSDESK_FAULT")
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _SEEN[name] += 1
    if _SEEN[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
