"""zlib-compatible compression for page bodies: ISA-L's (the ``isal`` package) where it is installed,
else the standard library's ``zlib``.

ISA-L reads and writes the same gzip, zlib and raw deflate streams. On the corpus pages it inflates
about 2.5 times and compresses (level 1) about 3 times as fast as zlib, which matters because every
fetched or archived page is inflated in the main process and compressed for storage in a worker.
Streams written by either library are read by both, so warehouses stay readable whichever is used.

Errors from either library are in ``ERRORS``: catch that tuple, not ``zlib.error`` alone.
"""

from __future__ import annotations

import zlib
from typing import Any

__all__ = ["BACKEND", "ERRORS", "MAX_WBITS", "compress", "decompress", "decompressobj"]

MAX_WBITS = zlib.MAX_WBITS

_fast: Any
try:
    from isal import isal_zlib as _fast
except ImportError:  # no wheel for this platform: the standard library does the same, slower
    _fast = None

BACKEND = "isal" if _fast is not None else "zlib"
ERRORS: tuple[type[Exception], ...] = (zlib.error, _fast.error) if _fast is not None else (zlib.error,)
_codec: Any = _fast if _fast is not None else zlib


def decompressobj(wbits: int = MAX_WBITS) -> Any:
    """A streaming decompressor (``decompress(data, max_length)``, ``unconsumed_tail``,
    ``unused_data``, ``eof``, ``flush()``), as ``zlib.decompressobj``."""
    return _codec.decompressobj(wbits)


def decompress(data: bytes) -> bytes:
    """A whole zlib stream (not bounded: only for data this program compressed itself)."""
    out: bytes = _codec.decompress(data)
    return out


def compress(data: bytes, level: int = 1) -> bytes:
    """A zlib stream. ISA-L has levels 0 to 3; higher levels are capped at 3."""
    out: bytes = _codec.compress(data, min(level, 3) if _fast is not None else level)
    return out
