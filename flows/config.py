"""Layered settings: defaults, then an optional TOML file, then NEWSDESK_* variables, then flags.

The file is the one named by ``--config`` or ``NEWSDESK_CONFIG``, else ``newsdesk.toml`` in the
working directory if it exists. Keys are the field names below; environment variables are the
upper-cased names with a ``NEWSDESK_`` prefix (``NEWSDESK_WAREHOUSE``, ``NEWSDESK_USER_AGENT``...).
List settings (``allow_hosts``) take comma-separated values in the environment.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
SEEDS_DIR = REPO_ROOT / "seeds"
DEFAULT_CONFIG_FILE = "newsdesk.toml"

__all__ = ["ConfigError", "Settings", "load_settings", "REPO_ROOT", "SEEDS_DIR"]


class ConfigError(ValueError):
    """A configuration value or file is invalid (reported as one line, exit 2)."""


@dataclass(frozen=True)
class Settings:
    warehouse: str = "warehouse/newsdesk.duckdb"
    sources: str = "seeds/sources.csv"
    user_agent: str = "newsdesk/0.1 (+https://github.com/newsdesk/newsdesk; news ingestion bot)"
    # politeness and limits
    concurrency: int = 16  # global parallel requests
    host_concurrency: int = 2  # parallel requests per host
    host_delay: float = 0.5  # seconds between request starts to one host
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    request_deadline: float = 60.0  # overall per request, including a slow body
    max_redirects: int = 5
    max_retries: int = 2  # retries after the first attempt
    backoff_base: float = 0.5
    retry_after_cap: float = 30.0
    max_bytes: int = 10 * 1024 * 1024  # decoded body cap
    respect_robots: bool = True
    robots_max_bytes: int = 500 * 1024
    allow_hosts: tuple[str, ...] = ()  # host or host:port allowed even if its address is private
    sitemap_cross_host: bool = False  # follow sitemap entries (and child sitemaps) on other hosts
    # processing
    batch_size: int = 200
    load_batch_size: int = 1000  # URLs settled per warehouse write (several fetch batches)
    load_interval: float = 30.0  # seconds at most between writes while a run goes on
    load_memory_limit: str = "256MB"  # DuckDB's memory cap while loading ("" = DuckDB's default, 80% of RAM)
    load_threads: int = 1  # DuckDB threads while a run loads (the extraction workers have the cores); 0 = all
    workers: int = 0  # extraction processes; 0 = one per core
    min_text_chars: int = 200
    extraction_mode: str = "precision"  # precision | balanced | recall
    busy_timeout: float = 10.0  # seconds to wait for a busy warehouse (sql, small writes)
    load_wait: float = 120.0  # seconds a loader keeps retrying a warehouse held by a reader
    run_lock_wait: float = 60.0  # seconds an ingest waits for another run before it is skipped (recorded)
    failure_backoff: float = 300.0  # first wait after a source fails 3 times in a row; doubles, max a day
    search_index: str = "after_run"  # after_run | maintenance: when the full-text index is rebuilt
    prune_raw_days: int = 0  # maintenance drops stored raw bodies older than this; 0 keeps them
    config_file: str | None = field(default=None, compare=False)

    def with_overrides(self, **overrides: Any) -> Settings:
        clean = {k: v for k, v in overrides.items() if v is not None}
        if not clean:
            return self
        return _coerce_all(dataclasses.replace(self, **clean))

    @property
    def worker_count(self) -> int:
        return self.workers if self.workers > 0 else (os.cpu_count() or 1)


_FIELD_TYPES = {f.name: f.type for f in fields(Settings)}


def _coerce(name: str, value: Any) -> Any:
    kind = _FIELD_TYPES[name]
    try:
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if kind.startswith("tuple"):
            if isinstance(value, str):
                return tuple(p.strip() for p in value.split(",") if p.strip())
            return tuple(str(v) for v in value)
        if value is None:
            return None
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name!r} has an invalid value {value!r} (expected {kind})") from None


def _coerce_all(settings: Settings) -> Settings:
    values = {f.name: _coerce(f.name, getattr(settings, f.name)) for f in fields(Settings)}
    if values["search_index"] not in {"after_run", "maintenance"}:
        raise ConfigError("setting 'search_index' must be after_run or maintenance")
    if values["load_memory_limit"] and not re.fullmatch(r"\d+(\.\d+)?\s*([KMGT]i?B|B)?", values["load_memory_limit"].strip(),
                                                        re.IGNORECASE):
        raise ConfigError("setting 'load_memory_limit' must be a size such as 512MB or 2GB (or empty)")
    if values["extraction_mode"] not in {"precision", "balanced", "recall"}:
        raise ConfigError("setting 'extraction_mode' must be precision, balanced or recall")
    for name in ("concurrency", "host_concurrency", "batch_size", "load_batch_size", "max_bytes"):
        if values[name] < 1:
            raise ConfigError(f"setting {name!r} must be at least 1")
    for name in ("max_retries", "max_redirects", "workers", "min_text_chars", "host_delay", "backoff_base",
                 "retry_after_cap", "busy_timeout", "connect_timeout", "read_timeout", "request_deadline",
                 "load_wait", "run_lock_wait", "failure_backoff", "prune_raw_days", "load_interval", "load_threads"):
        if values[name] < 0:
            raise ConfigError(f"setting {name!r} must not be negative")
    return Settings(**values)


def load_settings(config_file: str | None = None, env: dict[str, str] | None = None, **flags: Any) -> Settings:
    """Build settings from the four layers; later layers win."""
    env = dict(os.environ) if env is None else env
    values: dict[str, Any] = {}
    path = config_file or env.get("NEWSDESK_CONFIG")
    if path is None and Path(DEFAULT_CONFIG_FILE).is_file():
        path = DEFAULT_CONFIG_FILE
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        section = data.get("newsdesk", data)
        if not isinstance(section, dict):
            raise ConfigError(f"config file {path}: 'newsdesk' must be a table of settings")
        if section is not data and any(k != "newsdesk" for k in data):
            raise ConfigError(f"config file {path}: put every setting under [newsdesk] or none")
        for key, value in section.items():
            if key not in _FIELD_TYPES or key == "config_file":
                raise ConfigError(f"config file {path}: unknown setting {key!r}")
            values[key] = value
    for name in _FIELD_TYPES:
        env_value = env.get("NEWSDESK_" + name.upper())
        if env_value is not None and name != "config_file":
            values[name] = env_value
    for name, value in flags.items():
        if name not in _FIELD_TYPES:
            raise ConfigError(f"unknown setting {name!r}")
        if value is not None and value != ():
            values[name] = value
    values["config_file"] = path
    return _coerce_all(Settings(**values))
