"""Nothing is lost: a run killed at any point, a damaged WAL, a full disk. Real processes, real
files, the sample site over loopback."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import duckdb

from flows.demo import write_demo_sources
from tests.conftest import prefect_home

BIN = Path(sys.executable).parent / "newsdesk"
CMD = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "flows.cli"]


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "NEWSDESK_"))}
    env.update({"PREFECT_HOME": str(prefect_home(tmp_path / "prefect")), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "NO_COLOR": "1", "NEWSDESK_BATCH_SIZE": "5", "NEWSDESK_WORKERS": "1", "NEWSDESK_HOST_DELAY": "0"})
    env.update(extra)
    return env


def ingest_cli(tmp_path: Path, sources: Path, wh: str, host: str, preexec=None, **extra: str):
    """Run `newsdesk ingest` in its own process group; output goes to files, because a killed run's
    children (Prefect's temporary server) could hold pipes open."""
    out_path, err_path = tmp_path / "out.txt", tmp_path / "err.txt"
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen([*CMD, "ingest", "--sources", str(sources), "-w", wh, "--allow-host", host,
                                 "-f", "json"], stdout=out, stderr=err, text=True, env=env_for(tmp_path, **extra),
                                start_new_session=True, preexec_fn=preexec)
        try:
            proc.wait(timeout=240)
        finally:
            with contextlib.suppress(ProcessLookupError):  # whatever the run left behind goes with it
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, out_path.read_text(), err_path.read_text()


def rows(path: str, sql: str) -> list[tuple]:
    con = duckdb.connect(path, read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def state(path: str) -> dict[str, list[tuple]]:
    return {
        "articles": rows(path, "SELECT url, content_hash, title, published_date FROM articles ORDER BY url"),
        "outcomes": rows(path, "SELECT url, outcome FROM url_outcomes ORDER BY url"),
        "quotes": rows(path, "SELECT article_id, quote, speaker FROM quotes ORDER BY ALL"),
    }


def reference_state(site, tmp_path: Path) -> dict[str, list[tuple]]:
    from flows.config import load_settings
    from tests.conftest import run_flow

    server, _ = site
    sources = write_demo_sources(server.base, tmp_path / "ref")
    settings = load_settings(env={}, warehouse=str(tmp_path / "ref" / "w.duckdb"), sources=str(sources),
                             allow_hosts=(server.host,), host_delay=0.0, batch_size=5, workers=1)
    run_flow(settings)
    return state(settings.warehouse)


def html_requests(handler) -> Counter[str]:
    return Counter(p for p in handler.requests if p.endswith(".html"))


def kill_then_resume(site, tmp_path: Path, fault: str, prefect_harness, in_flight: int = 0,
                     **env: str) -> None:
    """Kill a run at ``fault``, run again, compare with an uninterrupted run. ``in_flight``: requests
    that may be under way when the process dies (one at a time here); only those may be repeated."""
    server, handler = site
    expected = reference_state(site, tmp_path)
    handler.requests.clear()
    sources = write_demo_sources(server.base, tmp_path)
    wh = str(tmp_path / "w.duckdb")
    # one request at a time, so no page is half-received when the process dies
    code, _, err = ingest_cli(tmp_path, sources, wh, server.host, NEWSDESK_FAULT=fault, NEWSDESK_CONCURRENCY="1",
                               **env)
    assert code == -signal.SIGKILL, (code, err[-2000:])
    killed_fetches = html_requests(handler)
    assert killed_fetches, "the killed run fetched pages before it died"
    code, _, err = ingest_cli(tmp_path, sources, wh, server.host)
    assert code == 0, err[-2000:]
    assert "Traceback" not in err
    got = state(wh)
    for key in expected:
        assert set(got[key]) - set(expected[key]) == set(), (key, "only after the kill")
        assert set(expected[key]) - set(got[key]) == set(), (key, "only in the reference")
    assert got == expected
    assert rows(wh, "SELECT count(*) - count(DISTINCT url) FROM articles")[0][0] == 0
    # every page was fetched once over both runs (but one still under way when the process died):
    # the resumed run took the killed run's pages from disk
    repeated = [p for p, n in html_requests(handler).items() if n > 1]
    assert len(repeated) <= in_flight, html_requests(handler)
    assert not list((Path(wh + ".pages")).iterdir()), "every kept page was dropped once loaded"


def test_sigkill_after_fetching_before_loading(site, tmp_path, prefect_harness):
    kill_then_resume(site, tmp_path, "after_fetch:8", prefect_harness)


def test_sigkill_inside_a_load_transaction(site, tmp_path, prefect_harness):
    # one write per fetch batch, so the first write is committed when the second one dies; the
    # next batch is being fetched while this one loads: one request may be under way
    kill_then_resume(site, tmp_path, "mid_load:2", prefect_harness, in_flight=1, NEWSDESK_LOAD_BATCH_SIZE="5")


def make_wal(path: str) -> Path:
    """Leave committed rows in the WAL (no checkpoint), as a killed writer does."""
    script = ("import duckdb, os, sys; c = duckdb.connect(sys.argv[1]); "
              "c.execute(\"INSERT INTO runs (run_id, flow, started_at, status) "
              "SELECT 'r' || range, 'ingest', now(), 'completed' FROM range(2000)\"); os._exit(0)")
    subprocess.run([sys.executable, "-c", script, path], check=True)
    wal = Path(path + ".wal")
    assert wal.exists() and wal.stat().st_size > 0
    return wal


def test_damaged_wal_stops_with_a_clear_message_and_deletes_nothing(tmp_path):
    from warehouse import open_warehouse

    wh = str(tmp_path / "w.duckdb")
    with open_warehouse(wh):
        pass
    wal = make_wal(wh)
    data = bytearray(wal.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = b"\xff" * 64
    wal.write_bytes(bytes(data))
    before = wal.read_bytes()
    proc = subprocess.run([*CMD, "sql", "SELECT count(*) FROM runs", "-w", wh], capture_output=True, text=True,
                          env=env_for(tmp_path), timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "write-ahead log" in proc.stderr and ".wal.damaged" in proc.stderr
    assert wal.read_bytes() == before and Path(wh).exists()
    # the documented recovery step opens the last checkpointed state
    wal.rename(wh + ".wal.damaged")
    proc = subprocess.run([*CMD, "sql", "SELECT count(*) AS n FROM schema_version", "-w", wh, "-f", "csv"],
                          capture_output=True, text=True, env=env_for(tmp_path), timeout=60)
    assert proc.returncode == 0 and proc.stdout.splitlines()[1] != "0"


def test_full_disk_fails_the_run_clearly_and_the_warehouse_still_opens(site, tmp_path, prefect_harness):
    server, _ = site
    from flows.config import load_settings
    from tests.conftest import run_flow

    # a warehouse with data in it
    first = tmp_path / "first.csv"
    first.write_text(f"name,kind,url,schedule,enabled\natom,rss,{server.base}/feeds/atom.xml,5m,true\n")
    wh = str(tmp_path / "w.duckdb")
    run_flow(load_settings(env={}, warehouse=wh, sources=str(first), allow_hosts=(server.host,), host_delay=0.0))
    before = rows(wh, "SELECT url, content_hash FROM articles ORDER BY url")
    assert before
    # then a run whose writes hit a file-size limit (what a full disk looks like to the writer)
    everything = write_demo_sources(server.base, tmp_path)
    limit = 64 * 1024  # per file: the WAL cannot grow past this, nor can the file at a checkpoint

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    # the run talks to the test's Prefect server, so only newsdesk's own files meet the limit
    from prefect.settings import PREFECT_API_URL

    code, _, err = ingest_cli(tmp_path, everything, wh, server.host, preexec=small_disk, NEWSDESK_BATCH_SIZE="50",
                              PREFECT_API_URL=str(PREFECT_API_URL.value()))
    assert code == 1, err[-2000:]
    lines = [line for line in err.splitlines() if line.startswith("newsdesk:")]
    assert lines and ("too large" in lines[-1].lower() or "space" in lines[-1].lower() or "i/o" in lines[-1].lower())
    # the warehouse opens afterwards, with everything it had
    after = rows(wh, "SELECT url, content_hash FROM articles ORDER BY url")
    assert set(before) <= set(after)
