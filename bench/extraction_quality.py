"""Body-text quality of newsdesk on the shared corpus, served over loopback and ingested for real.

    python -m bench.extraction_quality [--corpus aeb|fundus] [--min-f1 0.95]

Prints precision, recall and F1 with the article-extraction benchmark's metric and writes
bench/results/extraction-<corpus>.md. Exits 1 when F1 is below --min-f1.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import tempfile
import time
from pathlib import Path

from bench.corpus import CorpusHandler, corpus_dir, load_pages
from bench.metrics import f1_scores
from flows.clean import EXTRACTOR_VERSION
from flows.config import load_settings
from flows.pipeline import run_pipeline
from flows.siteserver import LoopbackServer
from flows.sources import Source
from flows.urls import canonical_url
from warehouse import open_warehouse

RESULTS = Path(__file__).resolve().parent / "results"


def truth_text(corpus: str, truth: dict) -> str:
    if corpus == "aeb":
        return truth.get("articleBody") or ""
    return "\n".join(truth.get("body") or [])


def evaluate(corpus: str = "aeb", workers: int = 0, mode: str = "precision") -> dict[str, float]:
    """Serve the corpus, ingest it into a fresh warehouse, score the stored text."""
    pages = load_pages(corpus)
    handler = CorpusHandler(pages)
    with tempfile.TemporaryDirectory() as tmp, LoopbackServer(handler) as server:
        handler.bind(server.base)
        settings = load_settings(env={}, warehouse=f"{tmp}/quality.duckdb", allow_hosts=(server.host,),
                                 host_delay=0.0, host_concurrency=16, workers=workers, extraction_mode=mode)
        started = time.perf_counter()
        report = asyncio.run(run_pipeline(settings, [Source(corpus, "urls", f"{server.base}/lists/all.txt")]))
        seconds = time.perf_counter() - started
        with open_warehouse(settings.warehouse, read_only=True) as con:
            stored = dict(con.execute("SELECT url, text FROM articles").fetchall())
    pairs = [(stored.get(canonical_url(server.base + p.path)), truth_text(corpus, p.truth)) for p in pages]
    scores = f1_scores(pairs)
    scores.update(seconds=seconds, loaded=float(report.counts.get("loaded", 0)), total=float(len(pages)))
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="aeb", choices=["aeb", "fundus"])
    parser.add_argument("--min-f1", type=float, default=0.95)
    parser.add_argument("--mode", default="precision", choices=["precision", "balanced", "recall"])
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args(argv)
    if not (corpus_dir() / args.corpus).exists():
        print(f"corpus {args.corpus} not found under {corpus_dir()}", file=sys.stderr)
        return 2
    s = evaluate(args.corpus, args.workers, args.mode)
    line = (f"{args.corpus}: {int(s['total'])} pages, {int(s['loaded'])} loaded, precision {s['precision']:.4f}, "
            f"recall {s['recall']:.4f}, F1 {s['f1']:.4f} ({s['seconds']:.1f}s, trafilatura {EXTRACTOR_VERSION}, "
            f"mode {args.mode})")
    print(line)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"extraction-{args.corpus}.md").write_text(
        f"# Body-text quality on `{args.corpus}`\n\nCommand: `python -m bench.extraction_quality --corpus {args.corpus}`\n\n"
        f"| pages | loaded | precision | recall | F1 |\n|---|---|---|---|---|\n"
        f"| {int(s['total'])} | {int(s['loaded'])} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} |\n\n"
        f"Machine: {platform.platform()}, Python {platform.python_version()}, trafilatura {EXTRACTOR_VERSION}, "
        f"extraction mode {args.mode}. Pages are served over loopback and ingested by the real pipeline.\n",
        encoding="utf-8",
    )
    return 0 if s["f1"] >= args.min_f1 else 1


if __name__ == "__main__":
    sys.exit(main())
