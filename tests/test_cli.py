"""The command line as a user runs it: real processes, exit codes, stdout for results, stderr for messages."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from tests.conftest import run_flow

BIN = Path(sys.executable).parent / "newsdesk"
CMD = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "flows.cli"]


def newsdesk(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    return subprocess.run([*CMD, *args], capture_output=True, text=True, timeout=timeout, env=full_env)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def built_warehouse(tmp_path_factory, prefect_harness) -> str:
    """One real ingest of the sample site, shared by the read-only command tests in this module."""
    from flows.config import load_settings
    from flows.demo import write_demo_sources
    from flows.siteserver import serve_site

    folder = tmp_path_factory.mktemp("cli")
    server, _ = serve_site()
    try:
        sources = write_demo_sources(server.base, folder)
        settings = load_settings(env={}, warehouse=str(folder / "w.duckdb"), sources=str(sources),
                                 allow_hosts=(server.host,), host_delay=0.0, max_retries=0)
        run_flow(settings)
    finally:
        server.stop()
    return settings.warehouse


def test_sql_csv(built_warehouse):
    proc = newsdesk("sql", "SELECT source, count(*) AS n FROM articles GROUP BY 1 ORDER BY 1", "-w", built_warehouse,
                    "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO(proc.stdout)))
    assert rows[0] == ["source", "n"]
    assert {r[0] for r in rows[1:]} <= {"ledger-rss", "ledger-atom", "ledger-sitemap", "ledger-urls"}
    con = duckdb.connect(built_warehouse, read_only=True)
    total = con.execute("SELECT count(*) FROM articles").fetchone()[0]
    con.close()
    assert sum(int(r[1]) for r in rows[1:]) == total


def test_sql_json(built_warehouse):
    proc = newsdesk("sql", "SELECT title, authors, published_at FROM articles ORDER BY url LIMIT 3", "-w",
                    built_warehouse, "-f", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert len(data) == 3
    assert set(data[0]) == {"title", "authors", "published_at"}
    assert isinstance(data[0]["authors"], list)
    assert data[0]["published_at"][:2] in ("19", "20")


def test_sql_table(built_warehouse):
    proc = newsdesk("sql", "SELECT outcome, count(*) AS urls FROM url_outcomes GROUP BY 1", "-w", built_warehouse,
                    "--format", "table")
    assert proc.returncode == 0, proc.stderr
    assert "outcome" in proc.stdout and "loaded" in proc.stdout
    assert proc.stdout.count("\n") >= 4


def test_views_answer_common_questions(built_warehouse):
    for view in ("articles_per_source_day", "latest_articles", "outcomes_per_source", "recent_runs"):
        proc = newsdesk("sql", f"SELECT * FROM {view}", "-w", built_warehouse, "-f", "json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout), view


def test_sql_error_is_one_line(built_warehouse):
    proc = newsdesk("sql", "SELECT no_such_column FROM articles", "-w", built_warehouse)
    assert_one_line_error(proc, 1, "SQL error")


def test_sql_is_read_only(built_warehouse):
    proc = newsdesk("sql", "DELETE FROM articles", "-w", built_warehouse)
    assert_one_line_error(proc, 1, "SQL error")
    con = duckdb.connect(built_warehouse, read_only=True)
    assert con.execute("SELECT count(*) FROM articles").fetchone()[0] > 0
    con.close()


def test_sources_shows_last_outcome(built_warehouse, tmp_path):
    con = duckdb.connect(built_warehouse, read_only=True)
    state = dict(con.execute("SELECT source, url FROM source_state").fetchall())
    con.close()
    sources = tmp_path / "sources.csv"
    sources.write_text("name,kind,url,schedule,enabled\n" + "".join(
        f"{name},{'sitemap' if 'sitemap' in name else 'urls' if 'urls' in name else 'rss'},{url},15m,true\n"
        for name, url in state.items()))
    proc = newsdesk("sources", "--sources", str(sources), "-w", built_warehouse, "-f", "json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert set(rows) == set(state)
    assert all(r["last_status"] == "ok" for r in rows.values())
    assert sum(r["last_loaded"] for r in rows.values()) > 0


def test_bad_sources_file_stops_before_fetching(tmp_path, site):
    server, handler = site
    bad = tmp_path / "sources.csv"
    bad.write_text(textwrap.dedent(f"""\
        name,kind,url,schedule,enabled
        good,rss,{server.base}/feeds/rss.xml,15m,true
        broken,podcast,{server.base}/feeds/atom.xml,15m,true
        """))
    proc = newsdesk("ingest", "--sources", str(bad), "-w", str(tmp_path / "w.duckdb"), "--allow-host", server.host)
    assert_one_line_error(proc, 2, f"{bad}:3:")
    assert "podcast" in proc.stderr
    assert handler.requests == []
    assert not (tmp_path / "w.duckdb").exists()


def test_missing_sources_file(tmp_path):
    proc = newsdesk("ingest", "--sources", str(tmp_path / "nope.csv"), "-w", str(tmp_path / "w.duckdb"))
    assert_one_line_error(proc, 2, "not found")


def test_bad_format_option(built_warehouse):
    proc = newsdesk("sql", "SELECT 1", "-w", built_warehouse, "--format", "xml")
    assert_one_line_error(proc, 2, "--format")


def test_missing_warehouse_for_sql(tmp_path):
    proc = newsdesk("sql", "SELECT 1", "-w", str(tmp_path / "absent.duckdb"))
    assert_one_line_error(proc, 1, "does not exist")


def test_unwritable_warehouse_exits_1(tmp_path, site):
    server, handler = site
    blocker = tmp_path / "file"
    blocker.write_text("x")
    sources = tmp_path / "s.csv"
    sources.write_text(f"name,kind,url,schedule,enabled\nsite,rss,{server.base}/feeds/rss.xml,15m,true\n")
    proc = newsdesk("ingest", "--sources", str(sources), "-w", str(blocker / "w.duckdb"), "--allow-host", server.host)
    assert_one_line_error(proc, 1, "warehouse")
    assert handler.requests == []


def test_busy_warehouse_is_reported_after_a_bounded_wait(built_warehouse, tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(60)",
         built_warehouse],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        proc = newsdesk("sql", "SELECT count(*) FROM articles", "-w", built_warehouse, "--wait", "1")
        waited = time.monotonic() - started
        assert_one_line_error(proc, 1, "busy")
        assert waited < 30
    finally:
        holder.kill()
        holder.wait()
    # released: the same query answers again, and nothing was damaged
    proc = newsdesk("sql", "SELECT count(*) AS n FROM articles", "-w", built_warehouse, "-f", "json")
    assert proc.returncode == 0 and json.loads(proc.stdout)[0]["n"] > 0


def test_newer_schema_is_refused(built_warehouse, tmp_path):
    copy = tmp_path / "newer.duckdb"
    copy.write_bytes(Path(built_warehouse).read_bytes())
    con = duckdb.connect(str(copy))
    con.execute("INSERT INTO schema_version (version, name) VALUES (999, 'future')")
    con.close()
    proc = newsdesk("sql", "SELECT 1", "-w", str(copy))
    assert_one_line_error(proc, 1, "newer")


def test_help_has_examples():
    for command in ("ingest", "sql", "sources", "demo", "views"):
        proc = newsdesk(command, "--help")
        assert proc.returncode == 0
        assert "Example: newsdesk" in proc.stdout, command


def test_demo_runs_clean(tmp_path):
    env = {"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env_clean = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    proc = subprocess.run([*CMD, "demo", "-w", str(tmp_path / "demo.duckdb"), "--format", "json"],
                          capture_output=True, text=True, timeout=300, env={**env_clean, **env, "NO_COLOR": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert " ERROR " not in proc.stderr and "| ERROR" not in proc.stderr
    runs = json.loads(proc.stdout.split("\n]\n")[0] + "\n]")
    assert runs[0]["loaded"] >= 12
    # the second run finds the feeds unchanged (304) or every URL already settled: nothing is fetched again
    assert runs[1]["loaded"] == 0 and runs[1]["fetched"] == 0


def test_prefect_defaults_give_the_temporary_server_time_to_start_and_yield_to_the_user(monkeypatch):
    from flows.cli import prepare_prefect_env

    monkeypatch.delenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", raising=False)
    monkeypatch.delenv("PREFECT_LOGGING_LEVEL", raising=False)  # restored (absent) after the test
    prepare_prefect_env()
    assert int(os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"]) > 20  # Prefect's own is 20 s
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "7")
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "DEBUG")
    prepare_prefect_env()
    assert os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] == "7"
    assert os.environ["PREFECT_LOGGING_LEVEL"] == "DEBUG"
