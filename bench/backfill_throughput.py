"""Backfill throughput from a local WARC file, as a ratio to trafilatura alone over the same records.

    python -m bench.backfill_throughput [--records 1000]

Builds a WARC (gzip per record) from the shared corpus pages, replicated under distinct URLs; then,
in the same run: trafilatura alone over the records' HTML in memory (one process per core), before
and after ``newsdesk``'s WARC backfill of the same file into a fresh warehouse (plain pipeline, no
Prefect, the CLI's default ``--parallel``). The ratio is against the mean of the two trafilatura
runs, so a machine that speeds up or slows down during the run moves both sides alike.
Writes bench/results/backfill-<records>.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bench.corpus import build_warc, corpus_dir, load_pages
from flows.backfill import BackfillRequest

RESULTS = Path(__file__).resolve().parent / "results"


def _trafilatura_chunk(pages: list[tuple[str, bytes]]) -> int:
    import trafilatura

    done = 0
    for url, html in pages:
        trafilatura.bare_extraction(html, url=url, with_metadata=True, include_comments=False, favor_precision=True)
        done += 1
    return done


def trafilatura_alone(records: list[tuple[str, bytes, datetime]], workers: int) -> float:
    """Pages per second, one process per core, HTML already in memory."""
    import multiprocessing

    pages = [(u, h) for u, h, _ in records]
    size = max(1, len(pages) // (workers * 8))
    chunks = [pages[i : i + size] for i in range(0, len(pages), size)]
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        list(pool.map(_trafilatura_chunk, chunks[:workers]))  # warm the workers (imports)
        started = time.perf_counter()
        done = sum(pool.map(_trafilatura_chunk, chunks))
        return done / (time.perf_counter() - started)


def make_records(count: int) -> list[tuple[str, bytes, datetime]]:
    pages = load_pages("aeb") + load_pages("fundus")
    bodies = [(p.url, p.file.read_bytes()) for p in pages]
    import gzip

    out = []
    start = datetime(2020, 1, 1, 8, tzinfo=UTC)
    for i in range(count):
        url, gz = bodies[i % len(bodies)]
        html = gzip.decompress(gz)
        out.append((f"{url.rstrip('/')}/copy-{i // len(bodies)}", html, start + timedelta(hours=i % (24 * 90))))
    return out


def _load_average() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--parallel", type=int, default=BackfillRequest.parallel,
                        help="partitions worked at once (default: the CLI's)")
    args = parser.parse_args(argv)
    if not (corpus_dir() / "aeb").exists():
        print(f"corpus not found under {corpus_dir()}", file=sys.stderr)
        return 2
    from flows.backfill import run_backfill
    from flows.config import load_settings

    records = make_records(args.records)
    load_before = _load_average()
    with tempfile.TemporaryDirectory() as tmp:
        warc = build_warc(Path(tmp) / "bench.warc.gz", records)
        before = trafilatura_alone(records, args.workers)
        settings = load_settings(env={}, warehouse=f"{tmp}/bench.duckdb", workers=args.workers, batch_size=200)
        request = BackfillRequest(since=date(1990, 1, 1), until=date.today(), origin="warc",
                                  warc=[str(warc)], parallel=args.parallel)
        started = time.perf_counter()
        report = asyncio.run(run_backfill(settings, request, []))
        seconds = time.perf_counter() - started
        after = trafilatura_alone(records, args.workers)
    limit = (before + after) / 2
    settled = sum(report.outcomes.values())
    rate = settled / seconds
    ratio = rate / limit
    lines = [
        f"# Backfill throughput from a local WARC ({args.records} records)",
        "",
        f"Command: `python -m bench.backfill_throughput --records {args.records}`",
        "",
        "| measure | records/s | ratio to trafilatura alone |",
        "|---|---|---|",
        f"| trafilatura alone, HTML in memory, {args.workers} processes (mean of before and after) | {limit:.1f} | 1.00 |",
        f"| newsdesk backfill --from warc (read, extract, fields, transform, load), --parallel {args.parallel} "
        f"| {rate:.1f} | {ratio:.2f} |",
        "",
        f"Trafilatura alone ran at {before:.1f} records/s before the backfill and {after:.1f} after. "
        f"{report.counts.get('loaded', 0)} articles loaded, {settled} records settled in {seconds:.1f}s. "
        f"Machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        f"Load average (1, 5, 15 min) before: {load_before}, after: {_load_average()} "
        "(other processes on the machine slow both measures, not always equally).",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"backfill-{args.records}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines[4:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
