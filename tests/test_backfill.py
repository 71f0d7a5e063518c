"""Backfills on real parts: WARC files built from real corpus pages, a sitemap served over loopback,
real DuckDB files, the real CLI for kill-and-resume."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from tests.conftest import needs_corpus, prefect_home
from warehouse import open_warehouse

pytestmark = needs_corpus

BIN = Path(sys.executable).parent / "newsdesk"
CMD = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "flows.cli"]


def planted_records(limit: int | None = None) -> list[tuple[str, bytes, datetime]]:
    """Real news pages with crawl times a few hours after their true publication day (months of 2020)."""
    from bench.corpus import load_dated_pages, read_page

    rnd = random.Random(7)
    pages = load_dated_pages()[:limit] if limit else load_dated_pages()
    return [
        (url, read_page(file), datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(hours=rnd.randint(1, 20)))
        for url, file, day in pages
    ]


@pytest.fixture(scope="module")
def records() -> list[tuple[str, bytes, datetime]]:
    return planted_records()


@pytest.fixture
def warc_file(tmp_path: Path, records) -> Path:
    from bench.corpus import build_warc

    return build_warc(tmp_path / "crawl.warc.gz", records)


def settings_for(path: str, **extra):
    from flows.config import load_settings

    options = {"workers": 2, "batch_size": 50, **extra}
    return load_settings(env={}, warehouse=path, **options)


def backfill(settings, **request):
    from flows.backfill import BackfillRequest, run_backfill

    request.setdefault("origin", "warc")
    return asyncio.run(run_backfill(settings, BackfillRequest(**request), []))


def rows(path: str, sql: str) -> list[tuple]:
    with open_warehouse(path, read_only=True) as con:  # with the page_bodies view
        return con.execute(sql).fetchall()


def end_state(path: str) -> dict[str, list[tuple]]:
    return {
        "articles": rows(path, "SELECT url, content_hash, published_date, title FROM articles ORDER BY url"),
        "outcomes": rows(path, "SELECT url, outcome FROM url_outcomes ORDER BY url"),
        "partitions": rows(path, "SELECT source, day, state, candidates FROM backfill_partitions ORDER BY 1, 2"),
        "pages": rows(path, "SELECT canonical_url, md5(body_gz) FROM page_bodies ORDER BY 1"),
    }


def test_warc_backfill_counts_per_day_match_what_was_planted(tmp_path, warc_file, records):
    wh = str(tmp_path / "w.duckdb")
    since, until = date(2020, 3, 1), date(2020, 9, 30)
    report = backfill(settings_for(wh), since=since, until=until, warc=[str(warc_file)])
    planted = Counter(c.date().isoformat() for _, _, c in records if since <= c.date() <= until)
    assert len(planted) > 20, "the planted crawl spans many days"
    got = {day: n for day, n in rows(wh, "SELECT day, candidates FROM backfill_partitions")}
    assert got == dict(planted)
    assert all(state == "done" for (state,) in rows(wh, "SELECT state FROM backfill_partitions"))
    # out-of-range records were not touched
    assert report.counts["discovered"] == sum(planted.values())
    # every record has one outcome; articles are stored under the publication date found in the page
    assert rows(wh, "SELECT count(*) FROM url_outcomes")[0][0] == sum(planted.values())
    truth = {url: crawled.date() for url, _, crawled in records}
    dated = rows(wh, "SELECT o.url, a.published_date, a.published_at_source FROM articles a "
                     "JOIN url_outcomes o ON o.article_id = a.article_id")
    assert dated
    right = sum(1 for url, day, _ in dated if day == truth[url])
    assert right / len(dated) >= 0.85, f"publication dates right for {right} of {len(dated)}"
    assert all(src in ("metadata", "url", "text", None) for _, _, src in dated)


def test_rerun_changes_nothing(tmp_path, warc_file):
    wh = str(tmp_path / "w.duckdb")
    s = settings_for(wh)
    backfill(s, since=date(2020, 1, 1), until=date(2020, 12, 31), warc=[str(warc_file)])
    first = end_state(wh)
    again = backfill(s, since=date(2020, 1, 1), until=date(2020, 12, 31), warc=[str(warc_file)])
    assert again.counts.get("loaded", 0) == 0
    assert all(p["action"] == "skip" for p in again.partitions)
    assert end_state(wh) == first
    # 'all' redoes every partition and still ends in the same state
    redo = backfill(s, since=date(2020, 1, 1), until=date(2020, 12, 31), warc=[str(warc_file)], reprocess="all")
    assert all(p["action"] == "run" for p in redo.partitions)
    assert end_state(wh) == first


def test_dry_run_lists_partitions_and_changes_nothing(tmp_path, warc_file):
    wh = str(tmp_path / "w.duckdb")
    s = settings_for(wh)
    report = backfill(s, since=date(2020, 6, 1), until=date(2020, 6, 30), warc=[str(warc_file)], dry_run=True)
    assert report.partitions and all(p["action"] == "run" and p["previous_state"] == "new" for p in report.partitions)
    assert all(p["day"].startswith("2020-06") for p in report.partitions)
    assert not Path(wh).exists()
    backfill(s, since=date(2020, 6, 1), until=date(2020, 6, 30), warc=[str(warc_file)])
    before = end_state(wh)
    again = backfill(s, since=date(2020, 6, 1), until=date(2020, 6, 30), warc=[str(warc_file)], dry_run=True)
    assert all(p["action"] == "skip" and p["previous_state"] == "done" for p in again.partitions)
    assert end_state(wh) == before


def test_reprocess_failed_redoes_only_failed_partitions(tmp_path, warc_file):
    wh = str(tmp_path / "w.duckdb")
    s = settings_for(wh)
    backfill(s, since=date(2020, 1, 1), until=date(2020, 12, 31), warc=[str(warc_file)])
    con = duckdb.connect(wh)
    day = con.execute("SELECT day FROM backfill_partitions ORDER BY day LIMIT 1").fetchone()[0]
    con.execute("UPDATE backfill_partitions SET state = 'failed' WHERE day = ?", [day])
    con.close()
    missing = backfill(s, since=date(2020, 1, 1), until=date(2020, 12, 31), warc=[str(warc_file)])
    assert not [p for p in missing.partitions if p["action"] == "run"]
    failed = backfill(s, since=date(2020, 1, 1), until=date(2020, 12, 31), warc=[str(warc_file)], reprocess="failed")
    assert [p["day"] for p in failed.partitions if p["action"] == "run"] == [day]
    assert rows(wh, f"SELECT state FROM backfill_partitions WHERE day = '{day}'") == [("done",)]


def test_corrupt_record_is_skipped_and_recorded(tmp_path, records):
    from bench.corpus import build_warc

    sample = records[:12]
    warc = build_warc(tmp_path / "bad.warc.gz", sample)
    data = bytearray(warc.read_bytes())
    starts = [i for i in range(len(data) - 2) if data[i : i + 3] == b"\x1f\x8b\x08"]
    assert len(starts) >= 12
    middle = (starts[5] + starts[6]) // 2
    data[middle : middle + 64] = bytes(64)
    warc.write_bytes(bytes(data))
    wh = str(tmp_path / "w.duckdb")
    report = backfill(settings_for(wh), since=date(2000, 1, 1), until=date(2030, 1, 1), warc=[str(warc)])
    assert report.problems["corrupt_record"] == 1
    assert report.counts["discovered"] == len(sample) - 1
    assert rows(wh, "SELECT count(*) FROM url_outcomes")[0][0] == len(sample) - 1


def test_uncompressed_warc_and_host_filter(tmp_path, records):
    from urllib.parse import urlsplit

    from bench.corpus import build_warc

    warc = build_warc(tmp_path / "plain.warc", records[:20], compress=False)
    host = urlsplit(records[0][0]).hostname
    wh = str(tmp_path / "w.duckdb")
    report = backfill(settings_for(wh), since=date(2000, 1, 1), until=date(2030, 1, 1), warc=[str(warc)], hosts=[host])
    expected = sum(1 for url, _, _ in records[:20] if urlsplit(url).hostname == host)
    assert report.counts["discovered"] == expected >= 1


def test_warc_over_http_is_streamed(tmp_path, records, site):
    from bench.corpus import build_warc
    from flows.siteserver import LoopbackServer, Response

    warc = build_warc(tmp_path / "remote.warc.gz", records[:15])
    payload = warc.read_bytes()
    with LoopbackServer(lambda path, headers: Response(200, payload, {"Content-Type": "application/warc"})) as server:
        wh = str(tmp_path / "w.duckdb")
        s = settings_for(wh, allow_hosts=(server.host,))
        report = backfill(s, since=date(2000, 1, 1), until=date(2030, 1, 1), warc=[f"{server.base}/crawl.warc.gz"])
        assert report.counts["discovered"] == 15
        # without the allowance the loopback address is refused before connecting
        from flows.backfill import BackfillError

        with pytest.raises(BackfillError, match="loopback"):
            backfill(settings_for(str(tmp_path / "x.duckdb")), since=date(2000, 1, 1), until=date(2030, 1, 1),
                     warc=[f"{server.base}/crawl.warc.gz"])


def test_sitemap_backfill_filters_by_lastmod(tmp_path, records):
    """A sitemap over real pages with lastmod across months: only the requested days are fetched."""
    from bench.corpus import load_dated_pages, read_page
    from flows.siteserver import LoopbackServer, Response
    from flows.sources import Source

    pages = load_dated_pages()[:40]
    by_path: dict[str, bytes] = {}
    entries = []
    for _url, file, day in pages:
        path = "/p/" + str(len(by_path)) + ".html"
        by_path[path] = read_page(file)
        entries.append((path, day))

    def handler(path: str, headers: dict[str, str]) -> Response:
        if path == "/sitemap.xml":
            body = "".join(f"<url><loc>{server.base}{p}</loc><lastmod>{d}</lastmod></url>" for p, d in entries)
            xml = f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{body}</urlset>'
            return Response(200, xml.encode(), {"Content-Type": "application/xml"})
        if path in by_path:
            return Response(200, by_path[path], {"Content-Type": "text/html"})
        return Response(404, b"", {})

    with LoopbackServer(handler) as server:
        wh = str(tmp_path / "w.duckdb")
        s = settings_for(wh, allow_hosts=(server.host,), host_delay=0.0, host_concurrency=8)
        from flows.backfill import BackfillRequest, run_backfill

        since, until = date(2020, 4, 1), date(2020, 8, 31)
        source = Source("corpus-sitemap", "sitemap", f"{server.base}/sitemap.xml")
        report = asyncio.run(run_backfill(s, BackfillRequest(since=since, until=until, origin="sitemap"), [source]))
        wanted = [d for _, d in entries if since.isoformat() <= d <= until.isoformat()]
        assert report.counts["discovered"] == len(wanted) > 0
        assert sorted({p["day"] for p in report.partitions}) == sorted(set(wanted))
        assert rows(wh, "SELECT count(*) FROM url_outcomes")[0][0] == len(wanted)


def test_reprocess_after_version_change(tmp_path, warc_file):
    wh = str(tmp_path / "w.duckdb")
    s = settings_for(wh)
    backfill(s, since=date(2020, 1, 1), until=date(2020, 12, 31), warc=[str(warc_file)])
    con = duckdb.connect(wh)
    old = [r[0] for r in con.execute("SELECT url FROM articles ORDER BY url LIMIT 5").fetchall()]
    con.execute("UPDATE articles SET extractor_version = '0.0-old', text = 'stale' WHERE list_contains(?, url)", [old])
    untouched = con.execute("SELECT url, extracted_at FROM articles WHERE NOT list_contains(?, url) ORDER BY url",
                            [old]).fetchall()
    con.close()
    no_article = rows(wh, "SELECT count(*) FROM pages p ANTI JOIN articles a ON a.url = p.canonical_url")[0][0]
    report = backfill(s, since=date(1900, 1, 1), until=date(2999, 12, 31), origin="raw", reprocess="all",
                      outdated_only=True)
    # the outdated articles, and stored pages that gave no article (a newer extractor may do better)
    assert report.counts["discovered"] == 5 + no_article
    from flows.clean import EXTRACTOR_VERSION

    assert rows(wh, f"SELECT count(*) FROM articles WHERE extractor_version = '{EXTRACTOR_VERSION}' "
                    "AND text <> 'stale'")[0][0] == rows(wh, "SELECT count(*) FROM articles")[0][0]
    assert rows(wh, "SELECT url, extracted_at FROM articles WHERE NOT list_contains("
                    f"{old!r}, url) ORDER BY url") == untouched


def test_backfill_flow_runs_under_prefect(tmp_path, warc_file, prefect_harness):
    from flows.ingest import backfill_flow

    wh = str(tmp_path / "w.duckdb")
    s = settings_for(wh)
    request = {"since": "2020-05-01", "until": "2020-05-31", "origin": "warc", "warc": [str(warc_file)]}
    summary = asyncio.run(backfill_flow(request, dataclasses.asdict(s)))
    assert summary["status"] == "completed"
    assert summary["partitions"] and all(p["day"].startswith("2020-05") for p in summary["partitions"])
    assert rows(wh, "SELECT count(*) FROM runs WHERE flow = 'backfill' AND status = 'completed'")[0][0] == 1


def _cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update({"PREFECT_HOME": str(prefect_home(tmp_path / "prefect")), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "NEWSDESK_WORKERS": "1", "NEWSDESK_BATCH_SIZE": "5", "NEWSDESK_LOAD_BATCH_SIZE": "5",
                "NO_COLOR": "1"})  # a write per batch: partitions finish one by one, so a kill lands mid-run
    return env


def _start_backfill(tmp_path: Path, wh: str, warc: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CMD, "backfill", "--since", "2020-01-01", "--until", "2020-12-31", "--from", "warc", "--warc", str(warc),
         "-w", wh, "--parallel", "1", "-f", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_cli_env(tmp_path), start_new_session=True,
    )


def _wait_for_partitions(proc: subprocess.Popen[str], count: int, timeout: float = 120) -> list[str]:
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if sum("backfill: partition" in s for s in seen) >= count:
            return seen
    raise AssertionError("backfill did not report partitions in time:\n" + "".join(seen[-20:]))


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, records):
    from bench.corpus import build_warc

    warc = build_warc(tmp_path / "k.warc.gz", records[:40])
    reference = str(tmp_path / "reference.duckdb")
    backfill(settings_for(reference, batch_size=5, workers=1), since=date(2020, 1, 1), until=date(2020, 12, 31),
             warc=[str(warc)], parallel=1)

    wh = str(tmp_path / "killed.duckdb")
    proc = _start_backfill(tmp_path, wh, warc)
    try:
        _wait_for_partitions(proc, 3)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    states = Counter(s for (s,) in rows(wh, "SELECT state FROM backfill_partitions"))
    assert states["done"] >= 3 and sum(states.values()) >= states["done"]
    resumed = subprocess.run([*CMD, "backfill", "--since", "2020-01-01", "--until", "2020-12-31", "--from", "warc",
                              "--warc", str(warc), "-w", wh, "--parallel", "1", "-f", "json"],
                             capture_output=True, text=True, env=_cli_env(tmp_path), timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Traceback" not in resumed.stderr, resumed.stderr[max(0, resumed.stderr.find("Traceback") - 1500):][:5000]
    mine, ref = end_state(wh), end_state(reference)
    assert mine["articles"] == ref["articles"]
    assert mine["outcomes"] == ref["outcomes"]
    assert [(s, d, st) for s, d, st, _ in mine["partitions"]] == [(s, d, st) for s, d, st, _ in ref["partitions"]]


def test_sigint_stops_cleanly_after_the_current_batch(tmp_path, records):
    from bench.corpus import build_warc

    warc = build_warc(tmp_path / "i.warc.gz", records[:40])
    wh = str(tmp_path / "w.duckdb")
    proc = _start_backfill(tmp_path, wh, warc)
    try:
        _wait_for_partitions(proc, 1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 1, err[-2000:]
    assert "Traceback" not in err
    assert "run the same command again to resume" in err
    states = Counter(s for (s,) in rows(wh, "SELECT state FROM backfill_partitions"))
    assert "running" not in states
    assert states["done"] >= 1
    # every URL of a done partition has its outcome
    done_urls = rows(wh, "SELECT sum(candidates - known) FROM backfill_partitions WHERE state = 'done'")[0][0]
    assert rows(wh, "SELECT count(*) FROM url_outcomes")[0][0] >= done_urls
    summary = json.loads(out.split("\n]\n")[0] + "\n]") if out.strip().startswith("[") else None
    assert summary is None or summary[0]["status"] in ("stopped", "completed")


def test_newest_first_orders_partitions(tmp_path, warc_file):
    report = backfill(settings_for(str(tmp_path / "w.duckdb")), since=date(2020, 1, 1), until=date(2020, 12, 31),
                      warc=[str(warc_file)], dry_run=True, newest_first=True)
    days = [p["day"] for p in report.partitions if p["day"] != "undated"]
    assert len(days) > 10 and days == sorted(days, reverse=True)


def test_backfill_overlapping_the_scheduled_ingest_duplicates_nothing(site, tmp_path):
    """The sample site ingested on schedule, then backfilled from its sitemap over the same days."""
    from flows.config import load_settings
    from flows.demo import write_demo_sources
    from flows.pipeline import run_pipeline
    from flows.sources import read_sources

    server, handler = site
    sources = write_demo_sources(server.base, tmp_path)
    s = load_settings(env={}, warehouse=str(tmp_path / "w.duckdb"), sources=str(sources),
                      allow_hosts=(server.host,), host_delay=0.0)
    asyncio.run(run_pipeline(s, read_sources(sources)))
    before = end_state(s.warehouse)
    handler.requests.clear()
    from flows.backfill import BackfillRequest, run_backfill

    report = asyncio.run(run_backfill(s, BackfillRequest(since=date(2020, 1, 1), until=date(2024, 12, 31)),
                                      read_sources(sources)))
    assert report.counts.get("loaded", 0) == 0 and report.counts["known"] > 0
    assert not [p for p in handler.requests if p.endswith(".html")], "known articles were fetched again"
    after = end_state(s.warehouse)
    assert after["articles"] == before["articles"] and after["outcomes"] == before["outcomes"]
    assert rows(s.warehouse, "SELECT count(*) FROM backfill_partitions WHERE state = 'done'")[0][0] > 0


def test_partitions_are_done_exactly_when_all_their_urls_are_stored(tmp_path, warc_file, records):
    """Partitions go through one pipeline in groups of --parallel: a stop part-way leaves every
    partition whose URLs are all stored done, every started one that is not pending, none running."""
    from flows.backfill import BackfillRequest, run_backfill
    from flows.clean import url_date

    wh = str(tmp_path / "w.duckdb")
    finished: list[dict] = []

    def progress(event: str, data: dict) -> None:
        if event == "partition":
            finished.append(data)

    request = BackfillRequest(since=date(2020, 1, 1), until=date(2020, 12, 31), origin="warc", warc=[str(warc_file)],
                              parallel=2)
    settings = settings_for(wh, batch_size=3, load_batch_size=3)
    report = asyncio.run(run_backfill(settings, request, [], stop=lambda: len(finished) >= 6, progress=progress))
    assert report.stopped and report.status == "stopped"
    states = dict(((s, d), st) for s, d, st in rows(wh, "SELECT source, day, state FROM backfill_partitions"))
    assert "running" not in states.values()
    done = {k for k, st in states.items() if st == "done"}
    day_of = {url: url_date(url) or crawled.date().isoformat() for url, _, crawled in records}
    planted = {d for d in day_of.values() if "2020-01-01" <= d <= "2020-12-31"}
    assert 6 <= len(done) < len(planted), "the run stopped part-way"
    stored = {u for (u,) in rows(wh, "SELECT url FROM url_outcomes")}
    for source, day in states:
        urls = {u for u, d in day_of.items() if d == day}
        if (source, day) in done:
            assert urls <= stored, f"partition {day} is done but not all of its URLs are stored"
        else:
            assert not urls <= stored or not urls, f"partition {day} has every URL stored but is not done"
    # the rest of the run finishes it, and the end state is that of an uninterrupted run
    asyncio.run(run_backfill(settings, request, []))
    reference = str(tmp_path / "reference.duckdb")
    asyncio.run(run_backfill(settings_for(reference, batch_size=3, load_batch_size=3), request, []))
    assert end_state(wh)["articles"] == end_state(reference)["articles"]
    assert {st for (st,) in rows(wh, "SELECT state FROM backfill_partitions")} == {"done"}
