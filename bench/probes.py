"""Cost probes: where the end-to-end run's CPU goes beyond the CPU-work limit, one part at a time.

    python -m bench.probes fetch  [--articles 3000]   # main-process CPU a page of Fetcher.fetch over loopback
    python -m bench.probes load   [--articles 6000]   # CPU a page of the warehouse writes, with and without
                                                      # the stored page bodies and the fields
    python -m bench.probes server [--articles 2000]   # CPU of `newsdesk ingest`'s processes over time
                                                      # (Prefect's temporary server: start-up against the run)
    python -m bench.probes flow   [--articles 1500]   # the plain steps and the Prefect flow, alternating, two
                                                      # rounds, against one running `prefect server`: main-process
                                                      # and server CPU a page of each

Each prints its figures; nothing is written to bench/results. The figures move with the machine
(see docs/performance.md), so compare rows of one invocation, not across invocations.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _self_cpu() -> float:
    """CPU seconds of this process alone, all its threads (DuckDB's included), not its children."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _tree_cpu(root: int) -> float:
    from bench.throughput import _cpu_seconds, tree

    return sum(_cpu_seconds(pid) or 0.0 for pid in tree(root))


def _label(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            cmd = f.read().replace("\0", " ")
    except OSError:
        return "gone"
    if "uvicorn" in cmd or "prefect.server" in cmd:
        return "prefect-server"
    if "forkserver" in cmd:
        return "forkserver and workers"
    if "resource_tracker" in cmd:
        return "resource-tracker"
    return "child"


# -- fetch -----------------------------------------------------------------------------------------------
async def _fetch_all(port: int, n: int) -> tuple[float, float, int, float, float]:
    from bench.workload import Workload
    from flows.config import load_settings
    from flows.fetch import Fetcher

    wl = Workload(n, 1, port)
    settings = load_settings(env={}, warehouse=str(Path(tempfile.gettempdir()) / "probe.duckdb"),
                             allow_hosts=wl.allow_hosts(), host_delay=0.0)
    urls = wl.urls()
    async with Fetcher(settings) as fetcher:
        await asyncio.gather(*(fetcher.fetch(u) for u in urls[:50]))  # connections open, code warm
        cpu0, t0 = _self_cpu(), time.perf_counter()
        results = await asyncio.gather(*(fetcher.fetch(u) for u in urls))
        cpu, wall = _self_cpu() - cpu0, time.perf_counter() - t0
    ok = sum(r.outcome == "ok" for r in results)
    body = sum(len(r.body or b"") for r in results) / n / 1000
    gz = sum(len(r.body_gzip or b"") for r in results) / n / 1000
    return cpu, wall, ok, body, gz


def probe_fetch(args: argparse.Namespace) -> None:
    from bench.throughput import _serve_workload

    n = args.articles
    _, server = _serve_workload(n, 1)
    with server:
        cpu, wall, ok, body, gz = asyncio.run(_fetch_all(server.port, n))
    print(f"fetch: {ok}/{n} ok in {wall:.1f} s; main-process CPU {1000 * cpu / n:.2f} ms a page "
          f"(bodies {body:.0f} KB decoded, {gz:.0f} KB as sent)")


# -- load ------------------------------------------------------------------------------------------------
def _load_batches(frames: Any, total: int, step: int, variant: str) -> list[tuple[Any, ...]]:
    import polars as pl

    from warehouse.load import OUTCOME_SCHEMA

    ids = frames.articles["article_id"].to_list()
    url_of = dict(zip(ids, frames.articles["url"].to_list(), strict=True))
    page_of = {u: i for i, u in enumerate(frames.pages["canonical_url"].to_list())}
    rows = [page_of[url_of[a]] for a in ids]
    out = []
    for start in range(0, total, step):
        size = min(step, total - start)
        pick = [(start + j) % len(ids) for j in range(size)]
        new_ids = [f"{start + j:016x}" for j in range(size)]
        urls = [f"https://probe.example/{start + j}" for j in range(size)]
        mapping = pl.DataFrame({"article_id": [ids[p] for p in pick], "new_id": new_ids})
        arts = frames.articles[pick].with_columns(article_id=pl.Series(new_ids), url=pl.Series(urls))
        pages = frames.pages[[rows[p] for p in pick]].with_columns(canonical_url=pl.Series(urls), url=pl.Series(urls))
        if variant == "no page bodies":
            pages = pages.with_columns(pl.lit(None, dtype=pages["body_gz"].dtype).alias("body_gz"))
        outcomes = pl.DataFrame({"url": urls, "canonical_url": urls, "source": ["probe"] * size,
                                 "outcome": ["loaded"] * size, "article_id": new_ids, "attempts": [1] * size,
                                 "updated_at": [datetime.now(UTC)] * size},
                                schema_overrides={"attempts": pl.Int32, "updated_at": pl.Datetime("us", "UTC")})
        outcomes = outcomes.with_columns([pl.lit(None, dtype=t).alias(c) for c, t in OUTCOME_SCHEMA.items()
                                          if c not in outcomes.columns]).select(list(OUTCOME_SCHEMA))
        fields = {}
        if variant != "no fields":
            for name, frame in frames.fields.items():
                fields[name] = (mapping.join(frame, on="article_id", how="inner").drop("article_id")
                                .rename({"new_id": "article_id"}).select(frame.columns))
        out.append((arts, pages, outcomes, fields))
    return out


def probe_load(args: argparse.Namespace) -> None:
    from bench.throughput import real_frames
    from flows.config import Settings
    from warehouse.connection import open_warehouse
    from warehouse.load import load_batch

    frames, _ = real_frames(args)
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="newsdesk-probe-") as tmp:
        for round_ in (1, 2):
            for variant in ("as the pipeline writes", "no page bodies", "no fields"):
                batches = _load_batches(frames, args.articles, settings.load_batch_size, variant)
                path = str(Path(tmp) / f"{round_}-{variant.replace(' ', '-')}.duckdb")
                with open_warehouse(path):
                    pass
                cpu0, t0 = _self_cpu(), time.perf_counter()
                for arts, pages, outcomes, fields in batches:  # opened per write, as load_frames does
                    with open_warehouse(path, memory_limit=settings.load_memory_limit or None,
                                        threads=settings.load_threads or None) as con:
                        load_batch(con, arts, pages, outcomes, fields)
                cpu, wall = _self_cpu() - cpu0, time.perf_counter() - t0
                print(f"load, round {round_}, {variant}: {args.articles} articles in {wall:.1f} s, "
                      f"CPU {1000 * cpu / args.articles:.2f} ms a page", flush=True)


# -- server ----------------------------------------------------------------------------------------------
def probe_server(args: argparse.Namespace) -> None:
    from bench.throughput import VENV_BIN, _children_map, _cpu_seconds, _serve_workload, prefect_env

    n = args.articles
    wl, server = _serve_workload(n, 1)
    with server, tempfile.TemporaryDirectory(prefix="newsdesk-probe-") as tmp_name:
        tmp = Path(tmp_name)
        sources = tmp / "sources.csv"
        sources.write_text(wl.sources_csv())
        cmd = [str(VENV_BIN / "newsdesk"), "ingest", "--sources", str(sources), "--warehouse", str(tmp / "w.duckdb"),
               "--delay", "0", "-f", "json"]
        for host in wl.allow_hosts():
            cmd += ["--allow-host", host]
        env = prefect_env(tmp, {"NEWSDESK_HOST_CONCURRENCY": "2"})
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        labels: dict[int, str] = {}
        last: dict[str, float] = {}
        print("seconds  CPU seconds so far per process")
        while proc.poll() is None:
            for child in _children_map().get(proc.pid, []):
                labels.setdefault(child, _label(child))
            totals: dict[str, float] = {"main": _cpu_seconds(proc.pid) or 0.0}
            for pid, name in labels.items():  # a child with its own children (the forkserver's workers)
                if _cpu_seconds(pid) is not None:
                    totals[name] = totals.get(name, 0.0) + _tree_cpu(pid)
            # a process that has ended keeps its last reading
            last = {**last, **{k: max(v, last.get(k, 0.0)) for k, v in totals.items()}}
            print(f"{time.perf_counter() - t0:7.1f}  " + "  ".join(f"{k} {v:.1f}" for k, v in sorted(last.items())),
                  flush=True)
            time.sleep(args.interval)
        out = proc.stdout.read() if proc.stdout else ""
    summary = json.loads(out)[0] if proc.returncode == 0 else {}
    print(f"exit {proc.returncode}; the flow's own seconds: {summary.get('seconds')}; loaded {summary.get('loaded')}")


# -- flow ------------------------------------------------------------------------------------------------
def probe_flow(args: argparse.Namespace) -> None:
    import dataclasses

    from bench.throughput import VENV_BIN, _serve_workload, free_port, prefect_env

    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="newsdesk-probe-"))
    env = prefect_env(tmp)

    server = subprocess.Popen([str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        os.environ.update(env)
        os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
        import httpx

        for _ in range(180):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        else:
            raise SystemExit("prefect server did not start")
        from flows.config import load_settings
        from flows.ingest import ingest_flow
        from flows.pipeline import PLAIN_STEPS, run_pipeline
        from flows.sources import read_sources

        n = args.articles
        wl, pages = _serve_workload(n, 1)
        with pages:
            sources = tmp / "sources.csv"
            sources.write_text(wl.sources_csv())
            for round_ in (1, 2):
                for mode in ("plain", "flow"):
                    settings = load_settings(env={}, warehouse=str(tmp / f"{mode}{round_}.duckdb"), sources=str(sources),
                                             allow_hosts=tuple(wl.allow_hosts()), host_delay=0.0,
                                             search_index="maintenance")
                    cpu0, srv0 = _self_cpu(), _tree_cpu(server.pid)
                    if mode == "plain":
                        summary = asyncio.run(run_pipeline(settings, read_sources(str(sources)), steps=PLAIN_STEPS,
                                                           progress=lambda _m: None)).summary()
                    else:
                        summary = asyncio.run(ingest_flow(dataclasses.asdict(settings), str(sources)))
                    cpu, srv = _self_cpu() - cpu0, _tree_cpu(server.pid) - srv0
                    print(f"round {round_}, {mode}: {summary['loaded']} loaded, {n / summary['seconds']:.1f} pages/s; "
                          f"CPU a page: main process {1000 * cpu / n:.2f} ms, Prefect server {1000 * srv / n:.2f} ms",
                          flush=True)
    finally:
        server.terminate()
        server.wait(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("probe", choices=["fetch", "load", "server", "flow"])
    parser.add_argument("--articles", type=int, default=0, help="pages to use (default: 3000, 6000, 2000, 1500)")
    parser.add_argument("--interval", type=float, default=2.0, help="server: seconds between readings")
    args = parser.parse_args(argv)
    args.articles = args.articles or {"fetch": 3000, "load": 6000, "server": 2000, "flow": 1500}[args.probe]
    args.quick = False
    {"fetch": probe_fetch, "load": probe_load, "server": probe_server, "flow": probe_flow}[args.probe](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
