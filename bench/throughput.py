"""Throughput benchmark (issue 7): newsdesk against its limits, a naive loop and its peers, in one run.

    python -m bench.throughput --articles 5000 [--hosts N] [--only limits,e2e,...] [--quick]

Sub-benchmarks (``--only``, comma-separated; all by default):

- ``limits``: trafilatura alone over the HTML in memory, one process per core (with newsdesk's
  options, and with trafilatura's defaults); newsdesk's own CPU work (``flows.clean.extract_chunk``,
  i.e. cleaning plus structured fields, and ``transform_batch``) over the same HTML, no I/O.
- ``e2e``: ``newsdesk ingest`` (the CLI, a subprocess) into a fresh warehouse over the loopback
  workload, wall time with Prefect start-up and the flow's own ``seconds``; then the plain steps
  (``run_pipeline`` with ``PLAIN_STEPS`` wrapped in timers) for the split of time across stages.
- ``baseline``: sequential httpx.get + trafilatura + one INSERT per row into DuckDB.
- ``peers``: newspaper4k and news-please (extraction only) in a separate venv, one process, over
  the unique corpus pages, next to trafilatura and newsdesk in one process over the same pages.
- ``memory``: peak memory (RSS and PSS summed over the process tree) of ingests of N/4 and N articles.
- ``incremental``: a run that finds nothing new (a feed of 500 known URLs) against warehouses of
  1,000 and 100,000 synthetic articles.
- ``loading``: ``load_batch`` of 100,000 articles with fields (real rows repeated with distinct ids)
  against the extraction time of as many pages.
- ``sql``: the views articles_per_source_day and top_quoted_speakers against a full-column scan,
  over 1,000,000 synthetic articles.

Writes bench/results/throughput-<articles>[-<only>].md and prints the same tables.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
VENV_BIN = Path(sys.executable).parent
PEERS_VENV = Path(os.environ.get("NEWSDESK_PEERS_VENV", "/tmp/newsdesk-peers-venv"))
ALL = ("limits", "e2e", "baseline", "peers", "memory", "incremental", "loading", "sql")
TRAF_OPTIONS: dict[str, Any] = {"with_metadata": True, "include_comments": False, "include_tables": True,
                                "favor_precision": True}


def cores() -> int:
    return os.cpu_count() or 1


# -- memory of a process tree -----------------------------------------------------------------------------
def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def tree(root: int) -> list[int]:
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def _mem_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in kB."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def _name(pid: int) -> str:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [a.decode(errors="replace").rsplit("/", 1)[-1] for a in args if a][:4]
    return " ".join(words)[:60]


_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _rss_kb(pid: int) -> int:
    """RSS of one process in kB from /proc/PID/statm: a counter read, unlike smaps_rollup, which walks
    the page tables (about 8 ms of CPU for a 1 GB process)."""
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE_KB
    except (OSError, ValueError, IndexError):
        return 0


def _cpu_seconds(pid: int, reaped_children: bool = False) -> float | None:
    """User plus system CPU seconds one process has used so far (with ``reaped_children``, also
    those of its children it has waited for)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        fields = stat[stat.rfind(b")") + 2:].split()
        ticks = int(fields[11]) + int(fields[12])
        if reaped_children:
            ticks += int(fields[13]) + int(fields[14])
        return ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class TreeMemory:
    """Samples the summed RSS (and, with ``pss``, PSS) of a process and all its descendants; keeps the
    peaks. PSS sampling costs CPU (15-20 ms per sample of a newsdesk run's tree), so timed runs sample
    RSS only and the memory section, which is not timed against anything, samples both."""

    def __init__(self, root: int, interval: float = 0.2, pss: bool = True) -> None:
        self.root, self.interval, self.pss = root, interval, pss
        self.peak_rss = self.peak_pss = 0
        self.peak_procs = 0
        self.peak_detail: list[tuple[str, int]] = []
        self.cpu: dict[int, tuple[str, float]] = {}  # pid -> (name, CPU seconds when last seen)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        pids = tree(self.root)
        rss = pss = 0
        detail = []
        for pid in pids:
            r, p = _mem_kb(pid) if self.pss else (_rss_kb(pid), 0)
            rss += r
            pss += p
            detail.append((_name(pid), r))
            cpu = _cpu_seconds(pid)
            if cpu is not None:
                known = self.cpu.get(pid)
                self.cpu[pid] = (known[0] if known else _name(pid), cpu)
        if rss > self.peak_rss:
            self.peak_detail = sorted(detail, key=lambda d: -d[1])
        self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
        self.peak_procs = max(self.peak_procs, len(pids))

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- other work on the machine ----------------------------------------------------------------------------
_HZ = os.sysconf("SC_CLK_TCK")


def _busy_seconds() -> float:
    with open("/proc/stat") as fh:
        parts = [int(x) for x in fh.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return (sum(parts[:8]) - idle) / _HZ


def _own_cpu() -> float:
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    # children still running (not yet in RUSAGE_CHILDREN)
    live = sum(_cpu_seconds(pid, reaped_children=True) or 0.0 for pid in tree(os.getpid())[1:])
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime + live


class Others:
    """CPU used on the machine by processes outside this benchmark's tree while a section runs, in cores."""

    def __enter__(self) -> Others:
        self.t, self.busy, self.own = time.perf_counter(), _busy_seconds(), _own_cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self.t
        self.cores = max(0.0, ((_busy_seconds() - self.busy) - (_own_cpu() - self.own)) / max(wall, 1e-6))

    @property
    def note(self) -> str:
        return f"other load {self.cores:.2f} cores"


# -- results ---------------------------------------------------------------------------------------------
@dataclass
class Report:
    args: argparse.Namespace
    rows: list[list[str]] = field(default_factory=list)  # the main table: what, pages, seconds, pages/s, ratios
    sections: list[str] = field(default_factory=list)
    floors: list[tuple[str, str, str, bool | None]] = field(default_factory=list)  # floor, measured, target, pass
    values: dict[str, float] = field(default_factory=dict)

    def add_rate(self, key: str, what: str, pages: int, seconds: float, note: str = "") -> float:
        rate = pages / seconds if seconds > 0 else float("nan")
        self.values[key] = rate
        self.rows.append([what, str(pages), f"{seconds:.2f}", f"{rate:.1f}", note])
        return rate

    def floor(self, name: str, measured: float | None, target: float, kind: str = ">=", fmt: str = "{:.2f}") -> None:
        if measured is None:
            self.floors.append((name, "not measured", f"{kind} {fmt.format(target)}", None))
            return
        ok = measured >= target if kind == ">=" else measured <= target
        self.floors.append((name, fmt.format(measured), f"{kind} {fmt.format(target)}", ok))

    def say(self, msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)


def md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _git_rev() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "flows", "transforms", "warehouse"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"
    return f"commit {rev}" + (" with uncommitted changes under flows/transforms/warehouse" if dirty else "")


def machine() -> str:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    libs = []
    for name in ("trafilatura", "htmldate", "lxml", "polars", "duckdb", "httpx", "prefect"):
        with contextlib.suppress(Exception):
            libs.append(f"{name} {version(name)}")
    return (f"CPU {model}, {cores()} cores, {mem / 1024:.1f} GiB RAM; {platform.platform()}; "
            f"Python {platform.python_version()}; " + ", ".join(libs))


# -- limits: the HTML in memory, one process per core -----------------------------------------------------
_W: dict[str, Any] = {}


def _init_worker(kind: str) -> None:
    from bench.workload import corpus_bodies

    _W["bodies"] = [b for _, b in corpus_bodies()]
    if kind == "newsdesk":
        from flows.clean import _warm

        _warm()
    else:
        import trafilatura  # noqa: F401


def _ready(_: int) -> int:
    time.sleep(0.3)
    return os.getpid()


def _traf_chunk(task: tuple[list[tuple[int, str]], bool]) -> int:
    import trafilatura

    tasks, defaults = task
    n = 0
    for page, url in tasks:
        body = _W["bodies"][page]
        opts = {} if defaults else TRAF_OPTIONS
        if trafilatura.extract(body, url=url, **opts):
            n += 1
    return n


def _newsdesk_chunk(tasks: list[tuple[int, str]]) -> list[dict[str, Any]]:
    from flows.clean import extract_chunk

    # keep_body false, as in the end-to-end run: the workload's server sends gzip, whose stream is
    # stored as it came, so the workers never compress a page (until the eighth session this limit
    # compressed every page, work the end-to-end run does not do, which flattered the ratio)
    items = [{"url": url, "final_url": url, "body": _W["bodies"][page], "content_type": "text/html",
              "has_source_date": False, "keep_body": False} for page, url in tasks]
    return extract_chunk(items)


def _pool(kind: str) -> Any:
    ctx = multiprocessing.get_context("spawn")
    pool = ctx.Pool(cores(), initializer=_init_worker, initargs=(kind,))
    pool.map(_ready, range(cores() * 2), chunksize=1)  # every worker started and warmed
    return pool


def _chunks(seq: list[Any], size: int) -> list[list[Any]]:
    return [seq[i:i + size] for i in range(0, len(seq), size)]


def fetched_for(url: str, body: bytes) -> Any:
    from flows.discover import Candidate
    from flows.fetch import FetchResult
    from flows.pipeline import Fetched, Planned

    result = FetchResult(url, url, "ok", 200, headers={"content-type": "text/html"}, body=body)
    return Fetched(Planned(Candidate("bench", url), url), result)


def run_limits(rep: Report, n: int, tag: str = "", parts: tuple[str, ...] = ("traf", "newsdesk")) -> None:
    """The limits (``parts``: trafilatura's two, newsdesk's); ``tag`` (" before", " after") marks a run
    bracketing the end-to-end runs: values are then stored under ``<key>_before`` / ``<key>_after`` and
    ``bracket_limits`` takes their mean."""
    from bench.workload import Workload, corpus_bodies
    from flows.config import load_settings
    from flows.pipeline import transform_batch

    wl = Workload(n, 1, 8000)
    tasks = [(wl.page_index(i), wl.url(i)) for i in range(n)]
    for defaults, key, label in ((False, "traf", "trafilatura alone, newsdesk's options (metadata, precision, tables)"),
                                 (True, "traf_default", "trafilatura alone, default options")):
        if "traf" not in parts:
            break
        pool = _pool("traf")
        try:
            with Others() as oth:
                t0 = time.perf_counter()
                list(pool.imap_unordered(_traf_chunk, [(c, defaults) for c in _chunks(tasks, 10)]))
                secs = time.perf_counter() - t0
        finally:
            pool.terminate()
        rep.add_rate(key + tag.replace(" ", "_"), f"limit: {label}, {cores()} processes, HTML in memory{tag}", n, secs,
                     oth.note)
        rep.say(f"limits{tag}: {label}: {n / secs:.1f} pages/s")

    if "newsdesk" not in parts:
        return
    bodies = [b for _, b in corpus_bodies()]
    settings = load_settings(env={}, warehouse="/nonexistent")
    pool = _pool("newsdesk")
    transform_s = 0.0
    oth = Others().__enter__()
    try:
        t0 = time.perf_counter()
        cpu0 = _own_cpu()
        pending_rows: list[dict[str, Any]] = []
        pending_fetched: list[Any] = []
        seen: set[str] = set()
        loaded = 0

        def flush() -> None:
            nonlocal transform_s, loaded
            t = time.perf_counter()
            frames = transform_batch(pending_fetched, pending_rows, "bench", settings, seen)
            transform_s += time.perf_counter() - t
            loaded += frames.articles.height
            pending_rows.clear()
            pending_fetched.clear()

        for chunk_tasks, rows in zip(_chunks(tasks, 10), pool.imap(_newsdesk_chunk, _chunks(tasks, 10)), strict=True):
            pending_rows.extend(rows)
            pending_fetched.extend(fetched_for(url, bodies[page]) for page, url in chunk_tasks)
            if len(pending_rows) >= 200:
                flush()
        if pending_rows:
            flush()
        secs = time.perf_counter() - t0
        cpu = _own_cpu() - cpu0
        oth.__exit__()
    finally:
        pool.terminate()
    rep.values["limit_cpu_ms" + tag.replace(" ", "_")] = 1000 * cpu / n
    rep.values["limit_transform_s"] = transform_s
    rep.values["limit_loaded"] = loaded
    rep.add_rate("limit" + tag.replace(" ", "_"), f"limit: newsdesk CPU work (extract_chunk in {cores()} processes + "
                 f"transform_batch), HTML in memory{tag}", n, secs,
                 f"transform_batch {transform_s:.1f}s in the parent; {loaded} articles; CPU {1000 * cpu / n:.1f} ms "
                 f"a page; {oth.note}")
    rep.say(f"limits{tag}: newsdesk CPU work: {n / secs:.1f} pages/s")


def bracket_limits(rep: Report, n: int) -> None:
    """The limits as the mean of their runs before and after the end-to-end runs, so that a machine
    whose speed drifts during the benchmark moves both sides of each ratio alike."""
    labels = {"traf": "trafilatura alone, newsdesk's options", "traf_default": "trafilatura alone, default options",
              "limit": "newsdesk CPU work"}
    for key, label in labels.items():
        if key + "_before" not in rep.values or key + "_after" not in rep.values:
            continue
        before, after = rep.values[key + "_before"], rep.values[key + "_after"]
        mean = (before + after) / 2
        rep.add_rate(key, f"limit: {label}, mean of the runs before and after (the ratios use it)", n, n / mean,
                     f"before {before:.1f}, after {after:.1f} pages/s")


# -- end to end ------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prefect_env(tmp: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSDESK_", "PREFECT_"))}
    env.update(PREFECT_HOME=str(tmp / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_LOGGING_LEVEL="WARNING")
    env.update(extra or {})
    return env


def cli_ingest(tmp: Path, wl: Any, args: argparse.Namespace, warehouse: Path, sources: Path,
               pss: bool = True) -> dict[str, Any]:
    """``newsdesk ingest`` as a subprocess; wall time, the flow's seconds, peak memory of its tree
    (RSS only, sampled cheaply, when ``pss`` is false: for runs whose speed is compared)."""
    cmd = [str(VENV_BIN / "newsdesk"), "ingest", "--sources", str(sources), "--warehouse", str(warehouse),
           "--delay", "0", "--concurrency", str(args.concurrency), "-f", "json"]
    for host in wl.allow_hosts():
        cmd += ["--allow-host", host]
    env = prefect_env(tmp, {"NEWSDESK_HOST_CONCURRENCY": str(args.host_concurrency),
                            "NEWSDESK_BATCH_SIZE": str(args.batch_size)})
    oth = Others().__enter__()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreeMemory(proc.pid, interval=0.2 if pss else 0.5, pss=pss) as mem:
        out, err = proc.communicate()
    wall = time.perf_counter() - t0
    oth.__exit__()
    if proc.returncode != 0:
        raise RuntimeError(f"newsdesk ingest failed ({proc.returncode}): {err[-2000:]}")
    summary = json.loads(out)[0]
    return {"wall": wall, "seconds": float(summary["seconds"]), "loaded": summary["loaded"], "summary": summary,
            "peak_rss_mb": mem.peak_rss / 1024, "peak_pss_mb": mem.peak_pss / 1024, "procs": mem.peak_procs,
            "detail": mem.peak_detail, "others": oth.note, "cpu": mem.cpu}


def _serve_workload(n: int, hosts: int, extra: dict[str, tuple[str, bytes]] | None = None) -> tuple[Any, Any]:
    from bench.workload import FastServer, Workload

    wl = Workload(n, hosts, free_port())
    routes = wl.list_routes()
    routes.update(extra or {})
    return wl, FastServer(hosts, routes, wl.port)


class StageTimer:
    """PLAIN_STEPS with every call of every step timed: its seconds, and its interval, since calls
    overlap (two batches in flight, a write in a thread beside them)."""

    def __init__(self) -> None:
        from flows import pipeline

        self.busy: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.spans: dict[str, list[tuple[float, float]]] = {}
        base = pipeline.PLAIN_STEPS
        self.steps = pipeline.PlainSteps(
            discover=self._async("discover", base.discover), fetch=self._async("fetch", base.fetch),
            extract=self._async("extract", base.extract), transform=self._sync("transform", base.transform),
            load=self._sync("load", base.load))

    def _add(self, name: str, began: float) -> None:
        ended = time.perf_counter()
        self.busy[name] = self.busy.get(name, 0.0) + ended - began
        self.calls[name] = self.calls.get(name, 0) + 1
        self.spans.setdefault(name, []).append((began, ended))

    def covered(self, names: tuple[str, ...]) -> float:
        """Wall seconds during which at least one call of the named steps was running."""
        spans = sorted(span for name in names for span in self.spans.get(name, []))
        total, end = 0.0, float("-inf")
        for a, b in spans:
            if b > end:
                total += b - max(a, end)
                end = b
        return total

    def _async(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapped(*a: Any) -> Any:
            t = time.perf_counter()
            try:
                return await fn(*a)
            finally:
                self._add(name, t)
        return wrapped

    def _sync(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*a: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a)
            finally:
                self._add(name, t)
        return wrapped


def plain_run(wl: Any, args: argparse.Namespace, warehouse: Path, kind: str = "urls",
              route: str = "/lists/h{k}.txt", timer: StageTimer | None = None) -> dict[str, Any]:
    from flows.config import load_settings
    from flows.pipeline import PLAIN_STEPS, run_pipeline
    from flows.sources import Source

    # the search index is left to maintenance: its rebuild follows the run (outside its seconds) and would
    # only blur the CPU a page costs
    settings = load_settings(env={}, warehouse=str(warehouse), allow_hosts=tuple(wl.allow_hosts()), host_delay=0.0,
                             host_concurrency=args.host_concurrency, concurrency=args.concurrency,
                             batch_size=args.batch_size, search_index="maintenance")
    sources = [Source(f"bench{k}", kind, wl.base(k) + route.format(k=k)) for k in range(wl.hosts)]
    with Others() as oth:
        t0 = time.perf_counter()
        report = asyncio.run(run_pipeline(settings, sources, steps=timer.steps if timer else PLAIN_STEPS,
                                          progress=lambda m: None))
        wall = time.perf_counter() - t0
    summary = report.summary()
    return {"wall": wall, "seconds": float(summary["seconds"]), "loaded": summary["loaded"], "summary": summary,
            "others": oth.note}


def _cpu_by_role(cpu: dict[int, tuple[str, float]]) -> dict[str, float]:
    roles: dict[str, float] = {}
    for name, seconds in cpu.values():
        role = ("Prefect's temporary server" if "uvicorn" in name else
                "newsdesk ingest (main process)" if "newsdesk" in name and "ingest" in name else
                "resource tracker" if "resource_tracker" in name else "extraction workers")
        roles[role] = roles.get(role, 0.0) + seconds
    return roles


def run_e2e(rep: Report, n: int, args: argparse.Namespace, tmp: Path,
            between: Callable[[], None] | None = None) -> None:
    """``newsdesk ingest`` (CLI), then ``between`` (the newsdesk limit run again, right after it), then
    the plain steps in-process."""
    wl, server = _serve_workload(n, args.hosts)
    with server:
        sources = tmp / "e2e-sources.csv"
        sources.write_text(wl.sources_csv())
        res = cli_ingest(tmp, wl, args, tmp / "e2e.duckdb", sources, pss=False)
        rep.values.update(e2e_wall=res["wall"], e2e_flow=res["seconds"], e2e_rss=res["peak_rss_mb"])
        rep.add_rate("e2e_wall", f"newsdesk ingest (CLI, {args.hosts} host(s)), wall incl. Prefect start-up", n,
                     res["wall"], f"{res['loaded']} loaded; peak RSS {res['peak_rss_mb']:.0f} MB "
                     f"({res['procs']} processes, RSS sampled every 0.5 s); {res['others']}")
        rep.add_rate("e2e", "newsdesk ingest (CLI), flow's own time (run `seconds`, excl. Prefect start-up)", n,
                     res["seconds"], f"Prefect start-up and teardown {res['wall'] - res['seconds']:.1f}s")
        rep.say(f"e2e: {n / res['seconds']:.1f} pages/s flow, {n / res['wall']:.1f} wall; {res['summary']}")
        if res["loaded"] < n * 0.9:
            rep.say(f"WARNING: only {res['loaded']} of {n} loaded: {res['summary']['outcomes']}")
        roles = _cpu_by_role(res["cpu"])
        if between is not None:
            between()
        timer = StageTimer()
        cpu0 = _own_cpu()
        res = plain_run(wl, args, tmp / "plain.duckdb", timer=timer)
        plain_cpu = _own_cpu() - cpu0
    rep.values["plain_cpu_ms"] = 1000 * plain_cpu / n
    rep.add_rate("plain", "newsdesk run_pipeline with PLAIN_STEPS (no Prefect), in-process", n, res["seconds"],
                 f"{res['loaded']} loaded; CPU {1000 * plain_cpu / n:.1f} ms a page (all processes, pool start-up "
                 f"included); {res['others']}")
    total = sum(roles.values())
    rep.sections.append(
        f"### CPU by process (`newsdesk ingest`, {n} articles, whole run)\n\n"
        "CPU seconds (user + system) of each process of the CLI's tree, read from /proc every 0.5 s (the "
        "last half second of a process is missed), start-up, Prefect's server and the search index rebuild "
        "included. On two cores every CPU second outside the extraction workers is taken from them.\n\n"
        + md_table(["process", "CPU s", "ms per page", "share"],
                   [[role, f"{sec:.1f}", f"{1000 * sec / n:.1f}", f"{100 * sec / total:.0f}%"]
                    for role, sec in sorted(roles.items(), key=lambda kv: -kv[1])]
                   + [["all", f"{total:.1f}", f"{1000 * total / n:.1f}", "100%"]]))
    rows = []
    steps = ("discover", "fetch", "extract", "transform", "load")
    for name in steps:
        busy, wall = timer.busy.get(name, 0.0), timer.covered((name,))
        rows.append([name, str(timer.calls.get(name, 0)), f"{busy:.2f}", f"{wall:.2f}",
                     f"{100 * wall / res['seconds']:.0f}%"])
    idle = res["seconds"] - timer.covered(steps)
    rows.append(["none of them (plan, triage, run bookkeeping, pool start-up)", "", "", f"{idle:.2f}",
                 f"{100 * idle / res['seconds']:.0f}%"])
    rep.values["stage_extract"] = timer.busy.get("extract", 0.0)
    rep.values["stage_transform"] = timer.busy.get("transform", 0.0)
    rep.values["stage_load"] = timer.busy.get("load", 0.0)
    rep.sections.append(
        f"### Where the time goes (plain steps, {n} articles, {res['seconds']:.1f}s)\n\n"
        "Seconds per step, summed over its calls, and the wall time during which at least one of its calls "
        "ran. Calls overlap: two batches are in flight (one fetched and extracted while the other is "
        "transformed), and a warehouse write runs in a thread beside them, so the shares add up to more "
        "than the run.\n\n"
        + md_table(["step", "calls", "seconds (sum of calls)", "wall seconds", "share of run"], rows))


# -- naive baseline --------------------------------------------------------------------------------------
def run_baseline(rep: Report, n: int, args: argparse.Namespace, tmp: Path) -> None:
    import duckdb
    import httpx
    import trafilatura

    wl, server = _serve_workload(n, args.hosts)
    with server:
        urls = wl.urls()
        con = duckdb.connect(str(tmp / "naive.duckdb"))
        con.execute("CREATE TABLE articles (url VARCHAR PRIMARY KEY, title VARCHAR, author VARCHAR, date VARCHAR, "
                    "sitename VARCHAR, text VARCHAR)")
        oth = Others().__enter__()
        t0 = time.perf_counter()
        with httpx.Client() as client:
            for url in urls:
                html = client.get(url).text
                doc = trafilatura.bare_extraction(html, url=url, **TRAF_OPTIONS)
                if doc is None or isinstance(doc, dict):  # a Document unless as_dict is asked for
                    continue
                con.execute("INSERT INTO articles VALUES (?, ?, ?, ?, ?, ?)",
                            [url, doc.title, doc.author, doc.date, doc.sitename, doc.text])
        secs = time.perf_counter() - t0
        oth.__exit__()
        stored = con.execute("SELECT count(*) FROM articles").fetchone()[0]  # type: ignore[index]
        con.close()
    rep.add_rate("baseline", "naive: sequential httpx.get + trafilatura + one INSERT per row", n, secs,
                 f"{stored} stored; {oth.note}")
    rep.say(f"baseline: {n / secs:.1f} pages/s")


# -- peers -----------------------------------------------------------------------------------------------
PEER_SCRIPT = r'''
import json, socket, sys, time, warnings, logging
warnings.filterwarnings("ignore"); logging.disable(logging.CRITICAL)
_resolve = socket.getaddrinfo
def _offline(host, *a, **k):  # offline benchmark: no DNS, no downloads (image sizes, suffix lists)
    if host in ("localhost", "127.0.0.1", "::1"):
        return _resolve(host, *a, **k)
    raise socket.gaierror("offline benchmark")
socket.getaddrinfo = _offline
limit = int(sys.argv[3]) if len(sys.argv) > 3 else None
manifest = json.load(open(sys.argv[1])); which = sys.argv[2]
pages = [(m["url"], open(m["file"], "rb").read().decode("utf-8", "replace")) for m in manifest][:limit]
if which == "newspaper4k":
    import newspaper
    def run(url, html):
        a = newspaper.Article(url, fetch_images=False); a.download(input_html=html); a.parse(); return a.text
    ver = newspaper.__version__
else:
    from newsplease import NewsPlease
    from importlib.metadata import version
    def run(url, html):
        return NewsPlease.from_html(html, url=url, fetch_images=False).maintext
    ver = version("news-please")
run(*pages[0])
ok = 0; t = time.perf_counter()
for url, html in pages:
    try:
        ok += bool(run(url, html))
    except Exception:
        pass
print(json.dumps({"pages": len(pages), "seconds": time.perf_counter() - t, "ok": ok, "version": ver}))
'''


def ensure_peers_venv(rep: Report) -> str | None:
    py = PEERS_VENV / "bin" / "python"
    if py.exists():
        check = subprocess.run([str(py), "-c", "import newspaper, newsplease"], capture_output=True)
        if check.returncode == 0:
            return None
    rep.say(f"peers: installing newspaper4k and news-please into {PEERS_VENV} (separate venv)")
    if not py.exists():
        made = subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], capture_output=True, text=True)
        if made.returncode != 0:
            return "could not create a venv: " + made.stderr.strip()[-200:]
    res = subprocess.run([str(py), "-m", "pip", "install", "-q", "newspaper4k", "news-please"], capture_output=True,
                         text=True)
    if res.returncode != 0:
        return "pip install failed: " + (res.stderr.strip().splitlines() or ["?"])[-1][:200]
    return None


def run_peers(rep: Report, args: argparse.Namespace, tmp: Path) -> None:
    import trafilatura

    from bench.workload import Workload, corpus_bodies
    from flows.clean import _warm, extract_chunk

    bodies = corpus_bodies()[: 60 if args.quick else None]
    wl = Workload(len(bodies), 1, 8000)
    manifest = []
    folder = tmp / "peer-html"
    folder.mkdir(exist_ok=True)
    for i, (_, body) in enumerate(bodies):
        f = folder / f"{i}.html"
        f.write_bytes(body)
        manifest.append({"url": wl.url(i), "file": str(f)})
    (tmp / "manifest.json").write_text(json.dumps(manifest))
    (tmp / "peer.py").write_text(PEER_SCRIPT)
    n = len(bodies)
    # one process: trafilatura (both option sets) and newsdesk's extract_chunk over the same pages
    _warm()
    for key, label, fn in (  # noqa: B007
        ("one_traf", "one process: trafilatura, newsdesk's options",
         lambda: [trafilatura.extract(b, url=m["url"], **TRAF_OPTIONS) for (_, b), m in zip(bodies, manifest, strict=True)]),
        ("one_traf_default", "one process: trafilatura, default options",
         lambda: [trafilatura.extract(b, url=m["url"]) for (_, b), m in zip(bodies, manifest, strict=True)]),
        ("one_newsdesk", "one process: newsdesk extract_chunk (cleaning + structured fields)",
         lambda: extract_chunk([{"url": m["url"], "final_url": m["url"], "body": b, "content_type": "text/html",
                                 "has_source_date": False} for (_, b), m in zip(bodies, manifest, strict=True)])),
    ):
        fn() if key == "one_traf" else None  # warm caches once
        with Others() as oth:
            t0 = time.perf_counter()
            fn()
            secs = time.perf_counter() - t0
        rep.add_rate(key, label, n, secs, oth.note)
    problem = ensure_peers_venv(rep)
    for peer in ("newspaper4k", "news-please"):
        if problem:
            rep.rows.append([f"one process: {peer}", str(n), "-", "-", f"not installed here: {problem}"])
            continue
        res = subprocess.run([str(PEERS_VENV / "bin" / "python"), str(tmp / "peer.py"), str(tmp / "manifest.json"),
                              peer], capture_output=True, text=True, timeout=900)
        if res.returncode != 0:
            rep.rows.append([f"one process: {peer}", str(n), "-", "-", "failed: " + res.stderr.strip()[-200:]])
            continue
        out = json.loads(res.stdout.strip().splitlines()[-1])
        rep.add_rate("peer_" + peer, f"one process: {peer} {out['version']} (extraction only, separate venv)", n,
                     out["seconds"], f"{out['ok']} with text")
        rep.say(f"peers: {peer} {n / out['seconds']:.1f} pages/s")


# -- memory ----------------------------------------------------------------------------------------------
def run_memory(rep: Report, n: int, args: argparse.Namespace, tmp: Path) -> None:
    sizes = sorted({max(100, n // 4), n})
    peaks = []
    for size in sizes:
        wl, server = _serve_workload(size, args.hosts)
        with server:
            sources = tmp / f"mem-{size}.csv"
            sources.write_text(wl.sources_csv())
            res = cli_ingest(tmp, wl, args, tmp / f"mem-{size}.duckdb", sources)
        peaks.append((size, res))
        rep.say(f"memory: {size} articles: peak RSS {res['peak_rss_mb']:.0f} MB, PSS {res['peak_pss_mb']:.0f} MB")
    rows = [[str(s), f"{r['peak_rss_mb']:.0f}", f"{r['peak_pss_mb']:.0f}", str(r["procs"]), f"{r['wall']:.1f}",
             str(r["loaded"])] for s, r in peaks]
    rep.sections.append("### Peak memory of `newsdesk ingest` (whole process tree, sampled every 0.2 s)\n\n"
                        + md_table(["articles", "peak RSS MB", "peak PSS MB", "processes", "wall s", "loaded"], rows)
                        + "\n\nRSS sums every process of the tree (shared pages counted once per process); PSS "
                        "shares them out. At the largest size's peak: "
                        + "; ".join(f"`{name}` {kb / 1024:.0f} MB" for name, kb in peaks[-1][1]["detail"]) + ".")
    big = peaks[-1][1]["peak_rss_mb"]
    rep.values["mem_peak_mb"] = big
    rep.values["mem_articles"] = sizes[-1]
    if len(peaks) == 2:
        # marginal memory per 1,000 more articles: ~0 when memory does not grow with the run
        slope = (peaks[1][1]["peak_rss_mb"] - peaks[0][1]["peak_rss_mb"]) / ((sizes[1] - sizes[0]) / 1000)
        rep.values["mem_slope"] = slope
        rep.values["mem_at_20000"] = peaks[1][1]["peak_rss_mb"] + slope * (20000 - sizes[1]) / 1000


# -- incremental -----------------------------------------------------------------------------------------
def synth_warehouse(path: Path, n: int, known: list[str]) -> None:
    """A migrated warehouse with ``n`` synthetic articles (and their url_outcomes and pages); the first
    ``len(known)`` use the given URLs, settled as loaded."""
    import pyarrow as pa

    from flows.urls import article_id, canonical_url
    from warehouse.connection import open_warehouse

    with open_warehouse(str(path)) as con:
        con.register("known", pa.table({
            "i": pa.array(range(len(known)), pa.int64()), "url": pa.array(known),
            "canon": pa.array([canonical_url(u) for u in known]),
            "aid": pa.array([article_id(canonical_url(u)) for u in known])}))
        con.execute(f"""
            CREATE TEMP TABLE synth AS
            SELECT r.range AS i,
                   coalesce(k.url, 'https://news' || (r.range % 50) || '.example/' || r.range || '.html') AS url,
                   coalesce(k.canon, 'https://news' || (r.range % 50) || '.example/' || r.range || '.html') AS canon,
                   coalesce(k.aid, substr(md5(r.range::VARCHAR), 1, 16)) AS aid
            FROM range({n}) r LEFT JOIN known k ON k.i = r.range""")
        con.execute("""
            INSERT INTO articles (article_id, url, final_url, source, title, authors, published_at, published_date,
                published_at_source, language, site_name, description, categories, tags, text, word_count,
                content_hash, guid, fetched_at, extracted_at, extractor, extractor_version, transform_version, run_id)
            SELECT aid, canon, url, 'source' || (i % 50), 'Title ' || i, ['Author ' || (i % 997)],
                   TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds(i * 37),
                   (DATE '2024-01-01' + (i * 37 // 86400)::INTEGER), 'metadata', 'en', 'Site ' || (i % 50), 'desc',
                   ['news'], [], repeat('word ', 50), 500 + i % 700, md5(i::VARCHAR), NULL,
                   now(), now(), 'trafilatura', '2.3.1', '1', 'synthetic'
            FROM synth""")
        con.execute("""
            INSERT INTO url_outcomes (url, canonical_url, source, outcome, http_status, attempts, article_id,
                first_seen_at, updated_at, run_id)
            SELECT url, canon, 'source' || (i % 50), 'loaded', 200, 1, aid, now(), now(), 'synthetic' FROM synth""")
        con.execute("""
            INSERT INTO pages (canonical_url, url, final_url, source, status, headers, encoding, body_gz, body_bytes,
                fetched_at, run_id)
            SELECT canon, url, url, 'source' || (i % 50), 200, '{}', 'utf-8', repeat('x', 2000)::BLOB, 250000,
                   now(), 'synthetic' FROM synth""")
        con.execute("CHECKPOINT")


def run_incremental(rep: Report, args: argparse.Namespace, tmp: Path) -> None:
    from bench.workload import Workload, rss_feed

    sizes = (1000, 10000) if args.quick else (1000, 100_000)
    port = free_port()
    wl = Workload(500, 1, port)
    known = [wl.base(0) + f"/known/{i}.html" for i in range(500)]
    extra = {"/feeds/known.xml": ("application/rss+xml", rss_feed(known, wl.base(0)))}
    from bench.workload import FastServer

    times: dict[int, list[float]] = {}
    with FastServer(1, extra, port):
        for size in sizes:
            path = tmp / f"incr-{size}.duckdb"
            t0 = time.perf_counter()
            synth_warehouse(path, size, known)
            rep.say(f"incremental: built {size} articles in {time.perf_counter() - t0:.1f}s")
        for _ in range(args.repeat):
            for size in sizes:
                res = plain_run(wl, args, tmp / f"incr-{size}.duckdb", kind="rss", route="/feeds/known.xml")
                assert res["summary"]["known"] == 500 and res["summary"]["fetched"] == 0, res["summary"]
                times.setdefault(size, []).append(res["seconds"])
    med = {s: statistics.median(v) for s, v in times.items()}
    rows = [[f"{s:,}", ", ".join(f"{x:.3f}" for x in times[s]), f"{med[s]:.3f}"] for s in sizes]
    ratio = med[sizes[1]] / med[sizes[0]]
    rep.values["incr_ratio"] = ratio
    rep.sections.append("### Incremental run (feed of 500 URLs, all known; plain steps, run `seconds`)\n\n"
                        + md_table(["warehouse articles", "runs (s)", "median (s)"], rows)
                        + f"\n\nRatio {sizes[1]:,} / {sizes[0]:,}: **{ratio:.2f}**")
    rep.say(f"incremental: {med}")


# -- loading ---------------------------------------------------------------------------------------------
def real_frames(args: argparse.Namespace) -> Any:
    """transform_batch over the corpus pages once (real extracted rows)."""
    from bench.workload import Workload, corpus_bodies
    from flows.clean import extract_chunk
    from flows.config import load_settings
    from flows.pipeline import transform_batch

    bodies = corpus_bodies()
    wl = Workload(len(bodies), 1, 8000)
    items: list[dict[str, Any]] = [{"url": wl.url(i), "final_url": wl.url(i), "body": b, "content_type": "text/html",
                                    "has_source_date": False} for i, (_, b) in enumerate(bodies)]
    t0 = time.perf_counter()
    rows = extract_chunk(items)
    one_page = (time.perf_counter() - t0) / len(items)
    fetched = [fetched_for(it["url"], it["body"]) for it in items]
    frames = transform_batch(fetched, rows, "bench", load_settings(env={}, warehouse="/x"), set())
    return frames, one_page


def run_loading(rep: Report, args: argparse.Namespace, tmp: Path) -> None:
    import polars as pl

    from warehouse.connection import open_warehouse
    from warehouse.load import load_batch

    total = 2000 if args.quick else args.loading_articles
    frames, one_page = real_frames(args)
    base_n = frames.articles.height
    ids = frames.articles["article_id"].to_list()
    url_of = dict(zip(frames.articles["article_id"].to_list(), frames.articles["url"].to_list(), strict=True))
    canon_page = {u: i for i, u in enumerate(frames.pages["canonical_url"].to_list())}
    page_rows = [canon_page[url_of[a]] for a in ids]
    batches = []
    t_build = time.perf_counter()
    from flows.config import Settings

    step = Settings().load_batch_size  # the pipeline writes this many settled URLs at a time
    for start in range(0, total, step):
        size = min(step, total - start)
        pick = [(start + j) % base_n for j in range(size)]
        new_ids = [f"{start + j:016x}" for j in range(size)]
        new_urls = [f"https://bench.example/{start + j}" for j in range(size)]
        mapping = pl.DataFrame({"article_id": [ids[p] for p in pick], "new_id": new_ids, "new_url": new_urls,
                                "_o": list(range(size))})
        arts = frames.articles[pick].with_columns(article_id=pl.Series(new_ids), url=pl.Series(new_urls))
        pages = frames.pages[[page_rows[p] for p in pick]].with_columns(canonical_url=pl.Series(new_urls),
                                                                         url=pl.Series(new_urls))
        outcomes = pl.DataFrame({"url": new_urls, "canonical_url": new_urls, "source": ["bench"] * size,
                                 "outcome": ["loaded"] * size, "article_id": new_ids, "http_status": [200] * size,
                                 "attempts": [1] * size}, schema_overrides={"http_status": pl.Int32,
                                                                            "attempts": pl.Int32})
        from warehouse.load import OUTCOME_SCHEMA

        outcomes = outcomes.with_columns([pl.lit(None, dtype=t).alias(c) for c, t in OUTCOME_SCHEMA.items()
                                          if c not in outcomes.columns]).with_columns(
            pl.lit(datetime.now(UTC)).cast(pl.Datetime("us", "UTC")).alias("updated_at")).select(list(OUTCOME_SCHEMA))
        fields = {}
        for name, frame in frames.fields.items():
            joined = mapping.join(frame, on="article_id", how="inner")
            fields[name] = joined.drop("article_id", "new_url", "_o").rename({"new_id": "article_id"}).select(frame.columns)
        batches.append((arts, pages, outcomes, fields))
    rep.say(f"loading: built {len(batches)} batches in {time.perf_counter() - t_build:.1f}s")
    path = tmp / "loading.duckdb"
    t0 = time.perf_counter()
    for arts, pages, outcomes, fields in batches:  # as load_frames does: open the warehouse per batch
        with open_warehouse(str(path), memory_limit=Settings().load_memory_limit or None,
                            threads=Settings().load_threads or None) as con:
            load_batch(con, arts, pages, outcomes, fields)
    secs = time.perf_counter() - t0
    with open_warehouse(str(path), read_only=True) as con:
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
                  for t in ("articles", "pages", "quotes", "entities", "amounts")}
    size_mb = path.stat().st_size / 1e6
    from warehouse.bodystore import store_dir

    bodies_mb = sum(f.stat().st_size for f in store_dir(path).glob("*")) / 1e6
    per_page_wall = (1 / rep.values["limit"]) if "limit" in rep.values else one_page / cores()
    extraction = per_page_wall * total
    ratio = secs / extraction
    rep.values["load_ratio"] = ratio
    rep.sections.append(
        f"### Loading {total:,} articles with fields (`load_batch`, writes of {step} as the pipeline groups them, "
        f"warehouse opened per write as `load_frames` does)\n\n"
        + md_table(["articles", "load s", "rows", "warehouse MB (file + body files)", "extraction of as many pages s",
                    "load / extraction"],
                   [[f"{total:,}", f"{secs:.1f}", ", ".join(f"{k} {v:,}" for k, v in counts.items()),
                     f"{size_mb:.0f} + {bodies_mb:.0f}", f"{extraction:.0f}", f"{ratio:.3f}"]])
        + f"\n\nExtraction time per page: {1000 * per_page_wall:.1f} ms wall with {cores()} processes "
        f"({'the newsdesk CPU-work limit measured in this run' if 'limit' in rep.values else 'one process / cores'}); "
        f"one process: {1000 * one_page:.1f} ms. Rows are the {base_n} real extracted corpus articles repeated "
        "with distinct ids and URLs (pages carry their real compressed bodies).")
    rep.say(f"loading: {secs:.1f}s for {total}, ratio {ratio:.3f}")


# -- ad-hoc SQL ------------------------------------------------------------------------------------------
def synth_sql_warehouse(path: Path, n: int) -> dict[str, int]:
    from warehouse.connection import open_warehouse
    from warehouse.load import rebuild_aggregates

    with open_warehouse(str(path)) as con:
        con.execute(f"""
            INSERT INTO articles (article_id, url, final_url, source, title, authors, published_at, published_date,
                published_at_source, language, site_name, categories, tags, text, word_count, content_hash,
                fetched_at, extracted_at, extractor, extractor_version, transform_version, run_id)
            SELECT substr(md5(range::VARCHAR), 1, 16), 'https://news' || (range % 200) || '.example/' || range,
                   NULL, 'source' || (range % 200), 'Title ' || range, ['Author ' || (range % 5000)],
                   TIMESTAMPTZ '2022-01-01 00:00:00+00' + to_seconds(range * 90),
                   (DATE '2022-01-01' + (range * 90 // 86400)::INTEGER), 'metadata', 'en', 'Site', ['news'], [],
                   'text of article ' || range, 300 + (range * 7919) % 1500, md5(range::VARCHAR), now(), now(),
                   'trafilatura', '2.3.1', '1', 'synthetic'
            FROM range({n})""")
        # about 3 quotes per article, speakers from a skewed pool of 20,000 names
        con.execute(f"""
            INSERT INTO quotes (article_id, quote, speaker, speaker_type, speaker_role, verb, paragraph, start_char,
                end_char, transform_version, source, published_date)
            SELECT substr(md5((range // 3)::VARCHAR), 1, 16), 'quoted words ' || range,
                   'Speaker ' || ((hash(range) % 1000) * (hash(range * 31) % 20) // 1),
                   CASE WHEN range % 7 = 0 THEN 'organization' WHEN range % 11 = 0 THEN 'unknown' ELSE 'person' END,
                   NULL, 'said', (range % 3)::INTEGER, 0, 40, '1',
                   'source' || ((range // 3) % 200), (DATE '2022-01-01' + ((range // 3) * 90 // 86400)::INTEGER)
            FROM range({3 * n})""")
        # the rows were inserted in bulk, not through load_batch: compute the aggregates it keeps
        rebuild_aggregates(con)
        con.execute("CHECKPOINT")
        return {"articles": con.execute("SELECT count(*) FROM articles").fetchone()[0],  # type: ignore[index]
                "quotes": con.execute("SELECT count(*) FROM quotes").fetchone()[0]}  # type: ignore[index]


def run_sql(rep: Report, args: argparse.Namespace, tmp: Path) -> None:
    import duckdb

    n = 100_000 if args.quick else 1_000_000
    path = tmp / "sql.duckdb"
    t0 = time.perf_counter()
    counts = synth_sql_warehouse(path, n)
    rep.say(f"sql: built {counts} in {time.perf_counter() - t0:.1f}s")
    queries = {
        "full-column scan: SELECT sum(word_count) FROM articles": "SELECT sum(word_count) FROM articles",
        "SELECT * FROM articles_per_source_day": "SELECT * FROM articles_per_source_day",
        "SELECT * FROM top_quoted_speakers": "SELECT * FROM top_quoted_speakers",
        "SELECT * FROM articles_per_source_day LIMIT 20": "SELECT * FROM articles_per_source_day LIMIT 20",
        "SELECT * FROM top_quoted_speakers LIMIT 20": "SELECT * FROM top_quoted_speakers LIMIT 20",
        # not a floor: every (source, speaker) pair, for comparison
        "SELECT * FROM quoted_speakers_by_source": "SELECT * FROM quoted_speakers_by_source",
    }
    con = duckdb.connect(str(path), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    med: dict[str, float] = {}
    result_rows: dict[str, int] = {}
    for label, q in queries.items():
        runs = []
        for _ in range(1 + args.repeat):
            t = time.perf_counter()
            cur = con.execute(q)
            table = cur.to_arrow_table() if hasattr(cur, "to_arrow_table") else cur.fetch_arrow_table()
            runs.append(time.perf_counter() - t)
        result_rows[label] = table.num_rows
        med[label] = statistics.median(runs[1:])
    con.close()
    scan = med[next(iter(queries))]
    rows = [[f"`{k}`", str(result_rows[k]), f"{1000 * v:.1f}", f"{v / scan:.1f}"] for k, v in med.items()]
    labels = list(queries)
    rep.values["sql_day_ratio"] = med[labels[1]] / scan
    rep.values["sql_quoted_ratio"] = med[labels[2]] / scan
    rep.values["sql_day_top_ratio"] = med[labels[3]] / scan
    rep.values["sql_quoted_top_ratio"] = med[labels[4]] / scan
    rep.sections.append(f"### Ad-hoc SQL over {counts['articles']:,} synthetic articles and {counts['quotes']:,} quotes "
                        f"(warm, median of {args.repeat}, results fetched as Arrow)\n\n"
                        + md_table(["query", "rows", "ms", "x scan"], rows))
    rep.say(f"sql: {med}")


# -- main ------------------------------------------------------------------------------------------------
def write_report(rep: Report, args: argparse.Namespace, only: list[str], elapsed: float) -> Path:
    v = rep.values
    if "e2e" in v and "limit" in v:
        rep.floor("e2e (excl. Prefect) / newsdesk CPU-work limit", v["e2e"] / v["limit"], 0.85)
    if "e2e" in v and "traf" in v:
        rep.floor("e2e (excl. Prefect) / trafilatura alone (newsdesk's options)", v["e2e"] / v["traf"], 0.7)
    if "e2e" in v and "traf_default" in v:
        rep.floor("e2e (excl. Prefect) / trafilatura alone (default options)", v["e2e"] / v["traf_default"], 0.7)
    if "e2e" in v and "baseline" in v:
        rep.floor("e2e (excl. Prefect) / naive baseline", v["e2e"] / v["baseline"], 1.7)
    if "mem_peak_mb" in v:
        rep.floor(f"peak RSS at {int(v['mem_articles']):,} articles (MB)", v["mem_peak_mb"], 1536, "<=", "{:.0f}")
    if "mem_slope" in v:
        rep.floor("memory growth: MB more per 1,000 more articles (sub-linear: about 0)", v["mem_slope"], 25, "<=",
                  "{:.0f}")
        if v["mem_articles"] < 20000:
            rep.floor("peak RSS extrapolated to 20,000 articles (MB)", v["mem_at_20000"], 1536, "<=", "{:.0f}")
    if "incr_ratio" in v:
        rep.floor("incremental: no-new run, big / small warehouse", v["incr_ratio"], 1.5, "<=")
    if "load_ratio" in v:
        rep.floor("loading / extraction time", v["load_ratio"], 0.10, "<=", "{:.3f}")
    if "sql_day_ratio" in v:
        rep.floor("articles_per_source_day / full-column scan", v["sql_day_ratio"], 3.0, "<=", "{:.1f}")
    if "sql_quoted_ratio" in v:
        rep.floor("top_quoted_speakers / full-column scan", v["sql_quoted_ratio"], 3.0, "<=", "{:.1f}")
        rep.floor("(first 20 rows) articles_per_source_day LIMIT 20 / scan", v["sql_day_top_ratio"], 3.0, "<=", "{:.1f}")
        rep.floor("(first 20 rows) top_quoted_speakers LIMIT 20 / scan", v["sql_quoted_top_ratio"], 3.0, "<=", "{:.1f}")

    limit_cpu = [v[k] for k in ("limit_cpu_ms", "limit_cpu_ms_before", "limit_cpu_ms_after") if k in v]
    if "plain_cpu_ms" in v and limit_cpu:
        mean = sum(limit_cpu) / len(limit_cpu)
        rep.sections.append(
            "### CPU per page\n\n"
            f"newsdesk's CPU-work limit used {mean:.1f} ms of CPU a page ("
            + ", ".join(f"{x:.1f}" for x in limit_cpu) + " in its runs); the plain steps end to end used "
            f"{v['plain_cpu_ms']:.1f} ms (fetching, loading and the pool's start-up included). Their ratio, "
            f"**{mean / v['plain_cpu_ms']:.2f}**, is what the end-to-end run would reach against the limit if both "
            "were bound by CPU alone; where the throughput ratio falls short of it, the run waited rather than "
            "worked. CPU seconds a page move with the machine too (by 60% between runs of the eighth session), "
            "so this ratio is no steadier than the other (it is not a floor).")
    ref = v.get("limit") or v.get("traf")
    rows = []
    for r in rep.rows:
        rate = float(r[3]) if r[3] not in ("-", "nan") else None
        vs_limit = f"{rate / v['limit']:.2f}" if rate and "limit" in v else ""
        vs_traf = f"{rate / v['traf']:.2f}" if rate and "traf" in v else ""
        vs_naive = f"{rate / v['baseline']:.2f}" if rate and "baseline" in v else ""
        vs_one = f"{rate / v['one_traf']:.2f}" if rate and "one_traf" in v and r[0].startswith("one process") else ""
        rows.append(r[:4] + [vs_limit, vs_traf, vs_naive, vs_one, r[4]])
    del ref
    cmd = "python -m bench.throughput " + " ".join(sys.argv[1:])
    text = [f"# newsdesk throughput ({args.articles:,} articles)\n",
            f"Command: `{cmd}` ({elapsed / 60:.1f} min, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n",
            f"Machine: {machine()}\n",
            f"Code: {_git_rev()}\n",
            f"Load average (1 min) at start {args.load_start:.2f}, at end {os.getloadavg()[0]:.2f} "
            "(other work on the machine shows here; the figures are only as steady as it).\n",
            f"Workload: {len(__import__('bench.workload', fromlist=['x']).corpus_pages())} corpus pages (aeb + fundus) "
            f"replicated under distinct URLs, served by bench.workload.FastServer (asyncio, pre-encoded gzip) on "
            f"{args.hosts} loopback host(s); newsdesk settings host_delay=0, host_concurrency={args.host_concurrency}, "
            f"concurrency={args.concurrency}, batch_size={args.batch_size}, workers={cores()}.\n"]
    if rows:
        text.append(md_table(["what", "pages", "seconds", "pages/s", "/ newsdesk limit", "/ trafilatura alone",
                              "/ naive", "/ trafilatura 1 proc", "notes"], rows) + "\n")
    if rep.floors:
        text.append("## Floors\n\n" + md_table(["floor", "measured", "target", "result"],
                                               [[a, b, c, {True: "pass", False: "**FAIL**", None: "-"}[d]]
                                                for a, b, c, d in rep.floors]) + "\n")
    text += [s + "\n" for s in rep.sections]
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if set(only) == set(ALL) else "-" + "-".join(only)
    if args.quick:
        suffix += "-quick"
    out = RESULTS / f"throughput-{args.articles}{suffix}.md"
    out.write_text("\n".join(text), encoding="utf-8")
    print("\n".join(text))
    return out


def main(argv: list[str] | None = None) -> int:
    from flows.config import Settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=5000)
    parser.add_argument("--hosts", type=int, default=1, help="loopback hosts 127.0.0.1..N serving the workload")
    parser.add_argument("--only", default=",".join(ALL), help="comma-separated: " + ",".join(ALL))
    parser.add_argument("--quick", action="store_true", help="small sizes, for smoke tests (under 2 minutes)")
    defaults = Settings()
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency,
                        help=f"parallel requests in all (newsdesk's default: {defaults.concurrency})")
    parser.add_argument("--host-concurrency", type=int, default=defaults.host_concurrency,
                        help=f"parallel requests per host (newsdesk's default: {defaults.host_concurrency}); "
                             "only the per-host delay is switched off for the benchmark")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--loading-articles", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="repetitions for the incremental and SQL timings")
    args = parser.parse_args(argv)
    only = [o.strip() for o in args.only.split(",") if o.strip()]
    unknown = set(only) - set(ALL)
    if unknown:
        parser.error(f"unknown sub-benchmark(s): {', '.join(sorted(unknown))}")
    if args.quick:
        args.articles = min(args.articles, 400)
        args.repeat = min(args.repeat, 3)
    args.load_start = os.getloadavg()[0]
    rep = Report(args)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="newsdesk-bench-") as name:
        tmp = Path(name)
        bracket = "limits" in only and ("e2e" in only or "baseline" in only)
        if "limits" in only:
            # trafilatura's limits first, newsdesk's right before the CLI run and again right after it,
            # so that the ratio of the e2e floor compares runs minutes apart, not a quarter of an hour
            run_limits(rep, args.articles, " before" if bracket else "")
        tight = bracket and "e2e" in only
        if "e2e" in only:
            run_e2e(rep, args.articles, args, tmp,
                    between=(lambda: run_limits(rep, args.articles, " after", ("newsdesk",))) if tight else None)
        if "baseline" in only:
            run_baseline(rep, min(args.articles, 1000) if args.quick else args.articles, args, tmp)
        if bracket:
            run_limits(rep, args.articles, " after", ("traf",) if tight else ("traf", "newsdesk"))
            bracket_limits(rep, args.articles)
        if "peers" in only:
            run_peers(rep, args, tmp)
        if "memory" in only:
            run_memory(rep, args.articles, args, tmp)
        if "incremental" in only:
            run_incremental(rep, args, tmp)
        if "loading" in only:
            run_loading(rep, args, tmp)
        if "sql" in only:
            run_sql(rep, args, tmp)
    out = write_report(rep, args, only, time.perf_counter() - started)
    print(f"written {out.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
