"""Scheduling and health on real parts: a real `prefect server` on loopback, `newsdesk serve` as a
process, the sample site, real DuckDB files."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import httpx
import pytest

from flows.config import load_settings
from flows.demo import write_demo_sources
from warehouse import open_warehouse

BIN_DIR = Path(sys.executable).parent
NEWSDESK = [str(BIN_DIR / "newsdesk")] if (BIN_DIR / "newsdesk").exists() else [sys.executable, "-m", "flows.cli"]
PREFECT = str(BIN_DIR / "prefect")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def prefect_server_process(tmp_path_factory):
    """A real Prefect server on a free loopback port for the session."""
    if not Path(PREFECT).exists():
        pytest.skip("the prefect command is not installed in this environment")
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    log = (home / "server.log").open("w")
    proc = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.skip(f"prefect server exited early: {(home / 'server.log').read_text()[-500:]}")
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.skip("prefect server did not become healthy within 90 s")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture
def prefect_server(prefect_server_process):
    """The session's Prefect server, left with no deployments after each test: their schedules stay
    active when serve stops, so runs pile up while no serve is running and the next test's serve (same
    deployment names) would work them off first. Deleting a deployment deletes its scheduled runs."""
    yield prefect_server_process
    deployments = httpx.post(prefect_server_process + "/deployments/filter", json={"limit": 200}, timeout=30)
    deployments.raise_for_status()
    for d in deployments.json():
        httpx.delete(f"{prefect_server_process}/deployments/{d['id']}", timeout=30).raise_for_status()


def interval_sources(base: str, folder: Path, seconds: int = 4) -> Path:
    path = write_demo_sources(base, folder)
    text = path.read_text()
    for schedule in ("*/15 * * * *", "0 * * * *", "@daily"):
        text = text.replace(schedule, f"{seconds}s")
    path.write_text(text)
    return path


def query(path: str, sql: str, params: list | None = None, attempts: int = 50) -> list[tuple]:
    """Read while a writer may hold the file: retry briefly instead of failing."""
    for _ in range(attempts):
        try:
            con = duckdb.connect(path, read_only=True)
        except duckdb.IOException:
            time.sleep(0.2)
            continue
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()
    raise AssertionError(f"{path} stayed busy")


def start_serve(prefect_url: str, sources: Path, warehouse: str, host: str, home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PREFECT_API_URL": prefect_url, "PREFECT_HOME": str(home),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "NO_COLOR": "1", "NEWSDESK_HOST_DELAY": "0",
           "PREFECT_RUNNER_POLL_FREQUENCY": "2"}
    return subprocess.Popen([*NEWSDESK, "serve", "--sources", str(sources), "-w", warehouse, "--allow-host", host],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def stop_serve(proc: subprocess.Popen[str]) -> tuple[int, str]:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
    return proc.returncode, err


def json_documents(text: str) -> list:
    """The JSON documents printed one after another (a command may print several tables)."""
    decoder = json.JSONDecoder()
    out, pos = [], 0
    while pos < len(text.strip()):
        while text[pos].isspace():
            pos += 1
        value, pos = decoder.raw_decode(text, pos)
        out.append(value)
    return out


def wait_for(predicate, timeout: float, message: str, detail=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    raise AssertionError(message + (f" ({detail()})" if detail else ""))


def test_serve_runs_scheduled_ingests_and_stops_cleanly(prefect_server, site, tmp_path):
    server, _ = site
    sources = interval_sources(server.base, tmp_path)
    wh = str(tmp_path / "served.duckdb")
    proc = start_serve(prefect_server, sources, wh, server.host, tmp_path / "client")
    try:
        def loaded_everything() -> bool:
            if not Path(wh).exists():
                return False
            try:
                done = query(wh, "SELECT count(*) FROM runs WHERE flow = 'ingest' AND status = 'completed'")[0][0]
                articles = query(wh, "SELECT count(*) FROM articles")[0][0]
            except duckdb.CatalogException:
                return False
            return done >= 4 and articles >= 15

        wait_for(loaded_everything, 150, "scheduled runs did not load the site")
    finally:
        code, err = stop_serve(proc)
    assert code == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    # each source ran on its own schedule; overlapping ticks were serialised (waited or skipped, recorded)
    per_source = query(wh, "SELECT parameters->>'$.sources[0]' AS s, count(*) FROM runs WHERE flow = 'ingest' "
                           "AND status = 'completed' GROUP BY 1")
    assert len(per_source) == 4
    statuses = {s for (s,) in query(wh, "SELECT DISTINCT status FROM runs")}
    assert statuses <= {"completed", "skipped", "caught_up"}
    assert query(wh, "SELECT count(*), count(DISTINCT url) FROM articles")[0] == (16, 16) or \
        query(wh, "SELECT count(*) = count(DISTINCT url) FROM articles")[0][0]
    # stopping left the schedules active
    from prefect.client.orchestration import get_client

    async def paused() -> dict[str, bool]:
        async with get_client() as client:
            out = {}
            for name in ("ingest/ingest", "maintenance/maintenance", "backfill/backfill"):
                d = await client.read_deployment_by_name(name)
                out[name] = bool(d.paused)
            return out

    os.environ["PREFECT_API_URL"] = prefect_server
    try:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: prefect_server}):
            assert asyncio.run(paused()) == {"ingest/ingest": False, "maintenance/maintenance": False,
                                             "backfill/backfill": False}
    finally:
        os.environ.pop("PREFECT_API_URL", None)


def test_serve_without_prefect_server_is_a_clear_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    proc = subprocess.run([*NEWSDESK, "serve", "-w", str(tmp_path / "w.duckdb")], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 2
    assert "PREFECT_API_URL" in proc.stderr and "Traceback" not in proc.stderr


# -- without a scheduler -------------------------------------------------------------------------------
def settings_for(site_server, tmp_path: Path, **extra):
    sources = write_demo_sources(site_server.base, tmp_path)
    options = {"host_delay": 0.0, "max_retries": 0, **extra}
    return load_settings(env={}, warehouse=str(tmp_path / "w.duckdb"), sources=str(sources),
                         allow_hosts=(site_server.host,), **options)


def ingest(settings):
    from flows.pipeline import run_pipeline
    from flows.sources import read_sources

    return asyncio.run(run_pipeline(settings, read_sources(settings.sources)))


def test_conditional_get_counts_304_as_success(site, tmp_path):
    server, handler = site
    s = settings_for(server, tmp_path)
    ingest(s)
    handler.requests.clear()
    second = ingest(s)
    state = dict(query(s.warehouse, "SELECT source, last_status FROM source_state"))
    assert state == {"ledger-rss": "not_modified", "ledger-atom": "not_modified", "ledger-sitemap": "not_modified",
                     "ledger-urls": "not_modified"}
    assert second.counts["discovered"] == 0
    assert query(s.warehouse, "SELECT max(consecutive_failures) FROM source_state")[0][0] == 0
    # nothing but robots.txt and the four source documents was asked for
    assert sorted(handler.requests) == sorted(["/robots.txt", "/feeds/rss.xml", "/feeds/atom.xml", "/sitemap.xml",
                                               "/urls.txt"])


def test_failing_source_backs_off(site, tmp_path):
    server, handler = site
    sources = tmp_path / "s.csv"
    sources.write_text(f"name,kind,url,schedule,enabled\nbroken,rss,{server.base}/feeds/missing.xml,5m,true\n"
                       f"good,rss,{server.base}/feeds/rss.xml,5m,true\n")
    s = load_settings(env={}, warehouse=str(tmp_path / "w.duckdb"), sources=str(sources),
                      allow_hosts=(server.host,), host_delay=0.0, max_retries=0)
    for _ in range(3):
        ingest(s)
    assert query(s.warehouse, "SELECT consecutive_failures FROM source_state WHERE source = 'broken'") == [(3,)]
    handler.requests.clear()
    report = ingest(s)
    assert report.counts["backoff"] == 1
    assert "/feeds/missing.xml" not in handler.requests
    proc = subprocess.run([*NEWSDESK, "status", "--sources", str(sources), "-w", s.warehouse, "-f", "json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = {r["source"]: r for r in json.loads(proc.stdout)}
    assert rows["broken"]["consecutive_failures"] == 3 and rows["broken"]["backoff_until"]
    assert json.loads(rows["broken"]["failures_24h"]) == {} and rows["broken"]["last_status"] == "http_404"
    assert rows["good"]["articles_24h"] > 0 and rows["good"]["backoff_until"] is None
    assert rows["good"]["next_run_at"] and rows["good"]["last_run_at"]


def test_overlapping_runs_never_write_at_once(site, tmp_path):
    from flows.backfill import BackfillRequest, run_backfill
    from warehouse.lock import run_lock

    server, _ = site
    s = settings_for(server, tmp_path, run_lock_wait=0)
    with run_lock(s.warehouse, 0, "a slow run"):
        report = ingest(s)
    assert report.status == "skipped"
    assert query(s.warehouse, "SELECT status, error FROM runs") == [
        ("skipped", f"another run holds the warehouse (a slow run pid={os.getpid()})")]
    assert query(s.warehouse, "SELECT count(*) FROM articles")[0][0] == 0
    # a backfill waits for the run in progress instead
    held = threading.Event()

    def hold() -> None:
        with run_lock(s.warehouse, 0, "ingest in progress"):
            held.set()
            time.sleep(1.5)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    started = time.monotonic()
    from datetime import date

    request = BackfillRequest(since=date(2024, 1, 1), until=date(2024, 12, 31), origin="sitemap")
    from flows.sources import read_sources

    bf = asyncio.run(run_backfill(s, request, read_sources(s.sources), lock_wait=30))
    thread.join()
    assert time.monotonic() - started >= 1.0
    assert bf.status == "completed" and bf.counts["loaded"] > 0


def test_busy_reader_never_fails_a_run_and_nothing_is_fetched_twice(site, tmp_path):
    """A reader that holds the file longer than the loader will wait: the run fails with the reason,
    its fetched batch is kept, and the next run loads it without fetching those pages again."""
    server, handler = site
    s = settings_for(server, tmp_path, load_wait=1.0, host_delay=0.25, host_concurrency=1)
    # the site's own list without politeness overrides, so the slow host delay applies
    plain = tmp_path / "plain.csv"
    plain.write_text(f"name,kind,url,schedule,enabled\nsitemap,sitemap,{server.base}/sitemap.xml,5m,true\n")
    s = s.with_overrides(sources=str(plain))
    from warehouse import WarehouseBusy, open_warehouse

    with open_warehouse(s.warehouse):
        pass
    handler.requests.clear()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            ingest(s)
        except BaseException as exc:  # the assertion below looks at it
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    wait_for(lambda: any(p.endswith(".html") for p in handler.requests), 30, "the run never fetched a page")
    reader = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
         "print('reading', flush=True); time.sleep(8)", s.warehouse], stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "reading"
        thread.join(60)
    finally:
        reader.wait()
    assert errors and isinstance(errors[0], WarehouseBusy), errors
    assert "kept in" in str(errors[0])
    first_fetches = {p for p in handler.requests if p.endswith(".html")}
    from warehouse.upkeep import spooled

    assert spooled(s.warehouse)
    handler.requests.clear()
    report = ingest(s.with_overrides(host_delay=0.0, host_concurrency=4))
    assert report.status == "completed"
    assert not spooled(s.warehouse)
    assert not first_fetches & set(handler.requests)
    assert query(s.warehouse, "SELECT count(*) FROM articles")[0][0] >= 10
    assert query(s.warehouse, "SELECT count(*) - count(DISTINCT url) FROM url_outcomes")[0][0] == 0
    failed = query(s.warehouse, "SELECT error FROM runs WHERE status = 'failed'")
    assert failed and "busy" in failed[0][0]


def test_search_and_export(site, tmp_path):
    server, _ = site
    s = settings_for(server, tmp_path)
    ingest(s)
    proc = subprocess.run([*NEWSDESK, "search", "lighthouse keeper", "-w", s.warehouse, "-f", "json", "--limit", "3"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    hits = json.loads(proc.stdout)
    assert hits and "lighthouse" in hits[0]["title"].lower()
    assert "lighthouse" in hits[0]["snippet"].lower()
    assert hits == sorted(hits, key=lambda h: -h["score"])
    out = tmp_path / "export"
    proc = subprocess.run([*NEWSDESK, "export", "--format", "parquet", str(out), "-w", s.warehouse],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    days = sorted(p.name for p in (out / "articles").iterdir())
    assert days and all(d.startswith("day=") for d in days)
    con = duckdb.connect()
    exported = con.execute(f"SELECT count(*) FROM read_parquet('{out}/articles/*/*.parquet')").fetchone()[0]
    assert exported == query(s.warehouse, "SELECT count(*) FROM articles")[0][0]
    # pages carry their bodies, read from the body files
    proc = subprocess.run([*NEWSDESK, "export", str(out), "--table", "pages", "-w", s.warehouse],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    pages = dict(con.execute(f"SELECT canonical_url, md5(body_gz) FROM read_parquet('{out}/pages/*/*.parquet')"
                             ).fetchall())
    with open_warehouse(s.warehouse, read_only=True) as wh:
        stored = dict(wh.execute("SELECT canonical_url, md5(body_gz) FROM page_bodies").fetchall())
        in_files = wh.execute("SELECT count(body_file) FROM pages").fetchone()[0]
    assert in_files > 0 and len(pages) == query(s.warehouse, "SELECT count(*) FROM pages")[0][0]
    assert {u: h for u, h in pages.items() if h is not None} == stored and len(stored) == in_files


def test_maintenance_command(site, tmp_path):
    server, _ = site
    s = settings_for(server, tmp_path)
    ingest(s)
    proc = subprocess.run([*NEWSDESK, "maintenance", "-w", s.warehouse, "-f", "json"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)[0]
    assert report["indexed_articles"] == query(s.warehouse, "SELECT count(*) FROM articles")[0][0]


def _api(prefect_url: str):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings({PREFECT_API_URL: prefect_url})


def serving_this_warehouse(prefect_url: str, name: str, warehouse: str) -> bool:
    """The deployment exists and carries this warehouse (not one left by an earlier test)."""
    from prefect.client.orchestration import get_client

    async def check() -> bool:
        async with get_client() as client:
            try:
                d = await client.read_deployment_by_name(name)
            except Exception:
                return False
            return (d.parameters.get("settings") or {}).get("warehouse") == str(Path(warehouse).resolve())

    with _api(prefect_url):
        return asyncio.run(check())


def test_late_runs_after_downtime_do_not_stampede(prefect_server, site, tmp_path):
    """serve was down while runs fell due: when it comes back, one run does the work and the other
    late runs see they are covered and finish at once."""
    from datetime import UTC, datetime, timedelta

    from prefect.client.orchestration import get_client
    from prefect.states import Scheduled

    server, _ = site
    sources = tmp_path / "one.csv"
    sources.write_text(f"name,kind,url,schedule,enabled\nledger-rss,rss,{server.base}/feeds/rss.xml,1h,true\n")
    wh = str(tmp_path / "late.duckdb")
    proc = start_serve(prefect_server, sources, wh, server.host, tmp_path / "client")

    try:
        wait_for(lambda: serving_this_warehouse(prefect_server, "ingest/ingest", wh), 90,
                 "serve did not register the deployments")
    finally:
        stop_serve(proc)
    ingest(load_settings(env={}, warehouse=wh, sources=str(sources), allow_hosts=(server.host,), host_delay=0.0))
    baseline = query(wh, "SELECT count(*) FROM runs WHERE status = 'completed'")[0][0]

    async def make_late_runs() -> None:
        async with get_client() as client:
            deployment = await client.read_deployment_by_name("ingest/ingest")
            now = datetime.now(UTC)
            for minutes in (50, 40, 30, 20, 10):  # due while serve was down
                await client.create_flow_run_from_deployment(
                    deployment.id, parameters={"only": ["ledger-rss"]},
                    state=Scheduled(scheduled_time=now - timedelta(minutes=minutes)))

    # the source's last run happened before these runs were due
    con = duckdb.connect(wh)
    con.execute("UPDATE source_state SET last_run_at = now() - INTERVAL 2 HOUR")
    con.close()
    with _api(prefect_server):
        asyncio.run(make_late_runs())
    proc = start_serve(prefect_server, sources, wh, server.host, tmp_path / "client")
    def settled() -> int:
        return query(wh, "SELECT count(*) FROM runs WHERE status IN ('completed', 'caught_up', 'skipped')")[0][0]

    try:
        wait_for(lambda: settled() - baseline >= 5, 150, "the late runs were not worked off")
    finally:
        stop_serve(proc)
    # serve runs two at a time: at most two late runs can start before a newer run is recorded
    worked = query(wh, "SELECT count(*) FROM runs WHERE status = 'completed'")[0][0] - baseline
    caught_up = query(wh, "SELECT count(*) FROM runs WHERE status = 'caught_up'")[0][0]
    assert 1 <= worked <= 2, f"{worked} late runs did real work"
    assert caught_up >= 3


def test_backfill_submitted_to_the_deployment_is_idempotent(prefect_server, site, tmp_path):
    from bench.corpus import build_warc
    from tests.test_backfill import planted_records

    server, _ = site
    warc = build_warc(tmp_path / "d.warc.gz", planted_records(30))
    sources = interval_sources(server.base, tmp_path, seconds=3600)
    wh = str(tmp_path / "bf.duckdb")
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "PREFECT_HOME": str(tmp_path / "client"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "NO_COLOR": "1"}
    args = [*NEWSDESK, "backfill", "--since", "2020-01-01", "--until", "2020-12-31", "--from", "warc", "--warc",
            str(warc), "-w", wh, "--deployment", "--chunk-days", "120", "-f", "json"]
    proc = start_serve(prefect_server, sources, wh, server.host, tmp_path / "client")

    try:
        wait_for(lambda: serving_this_warehouse(prefect_server, "backfill/backfill", wh), 90,
                 "serve did not register the deployments")
        first = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
        assert first.returncode == 0, first.stderr[-2000:]
        again = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
        assert again.returncode == 0, again.stderr[-2000:]
        ids = [r["flow_run_id"] for r in json.loads(first.stdout)]
        assert len(ids) == 4  # 366 days in chunks of 120
        assert [r["flow_run_id"] for r in json.loads(again.stdout)] == ids

        def all_done() -> bool:
            status = subprocess.run([*NEWSDESK, "backfill", "status", "-w", wh, "-f", "json"], capture_output=True,
                                    text=True, env=env, timeout=60)
            if status.returncode != 0 or not status.stdout.strip():
                return False
            runs = json_documents(status.stdout)[-1]
            mine = [r for r in runs if r["flow_run_id"] in ids]
            final[:] = [r["state"] for r in mine]
            return len(mine) == 4 and all(r["state"] in ("Completed", "Failed", "Crashed", "Cancelled") for r in mine)

        final: list[str] = []
        wait_for(all_done, 300, "the submitted backfill runs did not finish", lambda: f"states: {final}")
        assert final == ["Completed"] * 4
    finally:
        stop_serve(proc)
    assert query(wh, "SELECT count(*) FROM backfill_partitions WHERE state = 'done'")[0][0] > 0, \
        query(wh, "SELECT flow, status, error, parameters FROM runs")
    assert query(wh, "SELECT count(*) FROM runs WHERE flow = 'backfill' AND status = 'completed'")[0][0] == 4
