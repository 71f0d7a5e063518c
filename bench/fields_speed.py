"""ms/article of transforms.fields.article_fields on a fixed text set (CPU time, best of N passes).

    python -m bench.fields_speed              # fundus + aeb ground-truth bodies, the seed, 150 trafilatura pages
    python -m bench.fields_speed --passes 7 --pages 50

Texts: the fundus ground-truth bodies (paragraphs joined with newlines), the aeb ground-truth
`articleBody`s, the seed article and trafilatura.extract of the first `--pages` trafilatura-eval pages.
Each article's time is the least CPU time (time.process_time_ns) it took over the passes, which is
steadier than wall time on a shared machine. The per-process caches of transforms.fields are emptied
before each pass so that every pass starts cold.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

from flows.siteserver import shared_dir
from transforms.fields import _text, article_fields, entities, warm


def corpus(shared: Path | None = None, pages: int = 150) -> list[str]:
    shared = shared or shared_dir()
    texts = ["\n".join(v["body"]) for v in json.loads((shared / "corpus/fundus/ground_truth.json").read_text()).values()]
    texts += [v["articleBody"] for v in json.loads((shared / "corpus/aeb/ground-truth.json").read_text()).values()]
    texts.append((shared / "seed/seed-article.txt").read_text())
    if pages:
        import trafilatura

        for f in sorted((shared / "corpus/trafilatura-eval/html").glob("*.gz"))[:pages]:
            t = trafilatura.extract(gzip.decompress(f.read_bytes()).decode("utf-8", "replace"))
            if t:
                texts.append(t)
    return texts


def _clear_caches() -> None:
    for mod in (_text, entities):
        for obj in list(vars(mod).values()):
            if callable(getattr(obj, "cache_clear", None)) and getattr(obj, "__module__", "") == mod.__name__:
                obj.cache_clear()


def measure(texts: list[str], passes: int = 5) -> float:
    """ms/article: the sum over articles of each one's least CPU time over `passes` passes."""
    warm()
    best = [float("inf")] * len(texts)
    for _ in range(passes):
        _clear_caches()
        for i, t in enumerate(texts):
            t0 = time.process_time_ns()
            article_fields(t)
            best[i] = min(best[i], time.process_time_ns() - t0)
    return sum(best) / 1e6 / max(1, len(texts))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--pages", type=int, default=150, help="trafilatura-eval pages to extract and add")
    args = ap.parse_args(argv)
    texts = corpus(pages=args.pages)
    print(f"article_fields: {measure(texts, args.passes):.3f} ms/article over {len(texts)} articles "
          f"(CPU time, best of {args.passes})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
