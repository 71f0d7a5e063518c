"""Fixtures: a loopback server for the sample site and the shared corpus, a fresh temp warehouse per
test, settings that allow only the test server, and real Prefect runs under a test harness."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Isolate Prefect before anything imports it: own home, no analytics, no external API.
_PREFECT_HOME = tempfile.mkdtemp(prefix="newsdesk-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.pop("PREFECT_API_URL", None)
for _key in [k for k in os.environ if k.startswith("NEWSDESK_") and k != "NEWSDESK_SHARED"]:
    os.environ.pop(_key)

from flows.config import Settings, load_settings  # noqa: E402
from flows.demo import write_demo_sources  # noqa: E402
from flows.siteserver import LoopbackServer, SiteHandler, seed_article_path, serve_site, shared_dir  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def has_corpus() -> bool:
    return (shared_dir() / "corpus").is_dir()


def has_seed() -> bool:
    return seed_article_path().is_file()


needs_corpus = pytest.mark.skipif(not has_corpus(), reason=f"shared corpus not found at {shared_dir() / 'corpus'}")
needs_seed = pytest.mark.skipif(not has_seed(), reason=f"seed article not found at {seed_article_path()}")


_MIGRATED: list[Path] = []


def prefect_home(dest: Path) -> Path:
    """A fresh PREFECT_HOME for a CLI run in a subprocess, holding a copy of an already-migrated
    database: Prefect's temporary server then starts in about half the time (no schema migration),
    which keeps start-up well inside its timeout on a busy machine. The template is built once; a
    home that already has a database (a second run in the same test) is left as it is."""
    if not _MIGRATED:
        template = Path(tempfile.mkdtemp(prefix="newsdesk-prefect-template-"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
        env.update(PREFECT_HOME=str(template), PREFECT_SERVER_ANALYTICS_ENABLED="false")
        prefect = Path(sys.executable).parent / "prefect"
        subprocess.run([str(prefect), "server", "database", "upgrade", "-y"], env=env, check=True,
                       capture_output=True, timeout=300)
        _MIGRATED.append(template)
    dest.mkdir(parents=True, exist_ok=True)
    if not (dest / "prefect.db").exists():  # never under a database in use: its WAL would not match
        shutil.copy(_MIGRATED[0] / "prefect.db", dest / "prefect.db")
    return dest


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture
def site() -> Iterator[tuple[LoopbackServer, SiteHandler]]:
    server, handler = serve_site()
    try:
        yield server, handler
    finally:
        server.stop()


@pytest.fixture
def warehouse_path(tmp_path: Path) -> str:
    return str(tmp_path / "wh" / "newsdesk.duckdb")


@pytest.fixture
def site_settings(site: tuple[LoopbackServer, SiteHandler], warehouse_path: str, tmp_path: Path) -> Settings:
    server, _ = site
    sources = write_demo_sources(server.base, tmp_path)
    return load_settings(env={}, warehouse=warehouse_path, sources=str(sources), allow_hosts=(server.host,),
                         host_delay=0.0, max_retries=1, backoff_base=0.05, busy_timeout=5.0)


def run_flow(settings: Settings, sources_file: str | None = None) -> dict[str, Any]:
    """A real Prefect flow run of the ingest flow, in-process."""
    from flows.ingest import ingest_flow

    result: dict[str, Any] = asyncio.run(ingest_flow(dataclasses.asdict(settings), sources_file or settings.sources))
    return result


@pytest.fixture
def ingest(prefect_harness: None):  # noqa: ANN201
    return run_flow


def pytest_unconfigure(config: pytest.Config) -> None:
    """The session's Prefect home and the migrated template go with the session (they were left in
    the temp folder, one pair per run)."""
    for path in [Path(_PREFECT_HOME), *_MIGRATED]:
        shutil.rmtree(path, ignore_errors=True)
