"""The source list: a CSV of feeds, sitemaps and URL lists, validated before anything is fetched."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["KINDS", "Source", "SourceError", "parse_sources", "read_sources"]

KINDS = ("rss", "sitemap", "urls")
REQUIRED_COLUMNS = ("name", "kind", "url", "schedule", "enabled")
OPTIONAL_COLUMNS = ("concurrency", "delay")
DEFAULT_SCHEDULE = "*/30 * * * *"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_INTERVAL_RE = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_MACRO_CRON = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
               "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
_MACROS = set(_MACRO_CRON)


class SourceError(ValueError):
    """The sources file is malformed; the message names the file and line."""


@dataclass(frozen=True)
class Source:
    name: str
    kind: str
    url: str
    schedule: str = DEFAULT_SCHEDULE
    enabled: bool = True
    concurrency: int | None = None
    delay: float | None = None
    line: int = 0

    @property
    def cron(self) -> str | None:
        """The schedule as a 5-field cron expression (macros expanded); None for intervals."""
        if self.interval_seconds is not None:
            return None
        return _MACRO_CRON.get(self.schedule, self.schedule)

    @property
    def interval_seconds(self) -> int | None:
        """The schedule as seconds when it is an interval like ``15m``; None for cron."""
        match = _INTERVAL_RE.match(self.schedule)
        if not match:
            return None
        return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_MONTHS = {m: i + 1 for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}


def _cron_value(text: str, index: int) -> int:
    names = _MONTHS if index == 3 else _DAYS if index == 4 else {}
    value = names.get(text.lower()) if names else None
    if value is None:
        if not text.isascii() or not text.isdigit():
            raise ValueError(text)
        value = int(text)
    low, high = _CRON_RANGES[index]
    if not low <= value <= high:
        raise ValueError(text)
    return value


def _check_cron_field(field: str, index: int) -> bool:
    try:
        for part in field.split(","):
            base, _, step = part.partition("/")
            if step and (not step.isascii() or not step.isdigit() or int(step) == 0):
                return False
            if base == "*":
                continue
            low, dash, high = base.partition("-")
            first = _cron_value(low, index)
            if dash and _cron_value(high, index) < first:
                return False
    except ValueError:
        return False
    return True


def _check_schedule(value: str) -> bool:
    if value in _MACROS:
        return True
    interval = _INTERVAL_RE.match(value)
    if interval:
        return int(interval.group(1)) > 0
    parts = value.split()
    return len(parts) == 5 and all(_check_cron_field(p, i) for i, p in enumerate(parts))


def _parse_bool(value: str) -> bool | None:
    text = value.strip().lower()
    if text in {"", "true", "yes", "1", "y", "on"}:
        return True
    if text in {"false", "no", "0", "n", "off"}:
        return False
    return None


def parse_sources(text: str, origin: str = "<sources>") -> list[Source]:
    """Parse and validate the CSV text; raise SourceError naming the first bad line."""
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    sources: list[Source] = []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [c.strip().lower() for c in row]
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise SourceError(f"{origin}:{line}: header lacks column(s) {', '.join(missing)}")
            unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
            if unknown:
                raise SourceError(f"{origin}:{line}: unknown column(s) {', '.join(unknown)}")
            continue
        if len(row) != len(header):
            raise SourceError(f"{origin}:{line}: expected {len(header)} fields, found {len(row)}")
        cells = {k: v.strip() for k, v in zip(header, row, strict=True)}
        name, kind, url = cells["name"], cells["kind"].lower(), cells["url"]
        if not _NAME_RE.match(name):
            raise SourceError(f"{origin}:{line}: invalid name {name!r} (letters, digits, _ . - only)")
        if name in seen:
            raise SourceError(f"{origin}:{line}: duplicate name {name!r} (first on line {seen[name]})")
        if kind not in KINDS:
            raise SourceError(f"{origin}:{line}: kind {kind!r} is not one of {', '.join(KINDS)}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SourceError(f"{origin}:{line}: url {url!r} is not an absolute http(s) URL")
        schedule = cells["schedule"] or DEFAULT_SCHEDULE
        if not _check_schedule(schedule):
            raise SourceError(
                f"{origin}:{line}: schedule {schedule!r} is neither cron (5 fields), "
                "an interval like 15m, nor @hourly/@daily"
            )
        enabled = _parse_bool(cells["enabled"])
        if enabled is None:
            raise SourceError(f"{origin}:{line}: enabled must be true or false, not {cells['enabled']!r}")
        concurrency: int | None = None
        if cells.get("concurrency"):
            try:
                concurrency = int(cells["concurrency"])
            except ValueError:
                concurrency = 0
            if concurrency < 1:
                raise SourceError(f"{origin}:{line}: concurrency must be a positive integer")
        delay: float | None = None
        if cells.get("delay"):
            try:
                delay = float(cells["delay"])
            except ValueError:
                delay = -1.0
            if not 0 <= delay <= 3600:
                raise SourceError(f"{origin}:{line}: delay must be seconds between 0 and 3600")
        seen[name] = line
        sources.append(Source(name, kind, url, schedule, enabled, concurrency, delay, line))
    if header is None:
        raise SourceError(f"{origin}: no header row (expected {', '.join(REQUIRED_COLUMNS)})")
    return sources


def read_sources(path: str | Path) -> list[Source]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SourceError(f"sources file not found: {p}") from None
    except UnicodeDecodeError:
        raise SourceError(f"sources file {p} is not UTF-8 text") from None
    except OSError as exc:
        raise SourceError(f"cannot read sources file {p}: {exc.strerror}") from None
    return parse_sources(text, str(p))
