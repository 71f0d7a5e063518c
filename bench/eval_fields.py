"""Score transforms.fields against the hand labels in ../shared/gold (see GUIDELINES.md there).

    python -m bench.eval_fields            # tables per doc set (seed, fundus) and overall
    python -m bench.eval_fields --json     # the same figures as JSON
    python -m bench.eval_fields --timing   # ms/article vs the pipeline's trafilatura extraction (fundus pages)
    python -m bench.eval_fields --pipeline # also score what the real pipeline stores for the gold pages
    python -m bench.eval_fields --speed    # trafilatura alone vs flows.clean.extract_page (with the fields)

--pipeline serves the eight fundus gold pages over loopback, ingests them with flows.pipeline.run_pipeline
into a temporary warehouse, reads the quotes/entities/amounts tables back (joined to articles.url) and
scores them with the same rules. The pipeline's text is trafilatura's, which can miss or add paragraphs
against the ground truth, so both figures are printed; the seed article has no page and is scored on
its text as in the default mode. --speed and --pipeline write their tables to bench/results/fields.md.

Texts are the gold texts themselves: the seed article, and each fundus ground-truth body joined with
blank lines. Matching rules (as in the guidelines):
- quotes: a prediction matches a gold quote when >= 0.6 of the shorter one's word tokens are in the other,
  one-to-one; unmatched predictions of 1-3 words are ignored. Speakers agree when one's name tokens are a
  subset of the other's; gold speakers that are descriptions (lower-case, e.g. "anonymous letter") are not
  scored for the name; a gold null speaker needs a null prediction.
- entities: per kind, a prediction matches when its name equals the gold name or an alias
  (case-insensitive, a leading "the" and apostrophe style ignored), one-to-one.
- amounts: a prediction matches when its text shares a token with the gold text and its value (and its
  unit, where the gold has one) is right, one-to-one.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from flows.siteserver import shared_dir
from transforms.fields import article_fields

_TOK = re.compile(r"\w+")
DOC_SETS = ("seed", "fundus")


def _toks(s: str | None) -> list[str]:
    return _TOK.findall((s or "").lower())


def _norm(s: str) -> str:
    s = s.lower().replace("’", "'").strip()
    s = re.sub(r"^the\s+", "", s)
    s = re.sub(r"'s$", "", s)
    return " ".join(s.split())


def load_docs(shared: Path | None = None) -> dict[str, dict[str, Any]]:
    """doc id -> {"text", "set", "quotes", "excluded", "entities", "amounts"}."""
    shared = shared or shared_dir()
    gq = json.loads((shared / "gold" / "quotes.json").read_text())["docs"]
    ge = json.loads((shared / "gold" / "entities_amounts.json").read_text())["docs"]
    truth = json.loads((shared / "corpus" / "fundus" / "ground_truth.json").read_text())
    docs: dict[str, dict[str, Any]] = {}
    for doc_id in gq:
        if doc_id == "seed":
            text = (shared / "seed" / "seed-article.txt").read_text()
            doc_set = "seed"
        else:
            key = doc_id if doc_id in truth else doc_id + ".html.gz"
            text = "\n\n".join(truth[key]["body"])
            doc_set = "fundus"
        docs[doc_id] = {
            "text": text, "set": doc_set,
            "quotes": gq[doc_id]["quotes"], "excluded": gq[doc_id].get("excluded", []),
            "entities": ge.get(doc_id, {}).get("entities", []), "amounts": ge.get(doc_id, {}).get("amounts", []),
        }
    return docs


def _overlap(a: list[str], b: list[str]) -> float:
    if not a or not b:
        return 0.0
    inter = sum((Counter(a) & Counter(b)).values())
    return inter / min(len(a), len(b))


def _names_agree(gold: str | None, pred: str | None) -> bool:
    if gold is None:
        return pred is None
    if pred is None:
        return False
    g, p = set(_toks(gold)), set(_toks(pred))
    return bool(g and p) and (g <= p or p <= g)


def _is_description(gold: str | None) -> bool:
    return gold is not None and gold[:1].islower()


def score_quotes(gold: list[dict], pred: list[dict]) -> dict[str, int]:
    gt = [_toks(g["quote"]) for g in gold]
    pt = [_toks(p["quote"]) for p in pred]
    pairs = sorted(
        ((_overlap(gt[i], pt[j]), i, j) for i in range(len(gold)) for j in range(len(pred))),
        reverse=True,
    )
    gm: dict[int, int] = {}
    pm: dict[int, int] = {}
    for ov, i, j in pairs:
        if ov < 0.6:
            break
        if i in gm or j in pm:
            continue
        gm[i] = j
        pm[j] = i
    counted_pred = sum(1 for j in range(len(pred)) if j in pm or len(pt[j]) > 3)
    sp_scored = sp_correct = e2e = 0
    for i, j in gm.items():
        g, p = gold[i], pred[j]
        if _is_description(g["speaker"]):
            e2e += 1
            continue
        sp_scored += 1
        if _names_agree(g["speaker"], p["speaker"]):
            sp_correct += 1
            e2e += 1
    return {"gold": len(gold), "pred": counted_pred, "tp": len(gm), "sp_scored": sp_scored,
            "sp_correct": sp_correct, "e2e_tp": e2e}


def score_entities(gold: list[dict], pred: list[dict]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for kind in ("person", "organization", "place"):
        gk = [g for g in gold if g["type"] == kind]
        pk = [p for p in pred if p["kind"] == kind]
        used: set[int] = set()
        tp = 0
        for p in pk:
            n = _norm(p["name"])
            for i, g in enumerate(gk):
                if i in used:
                    continue
                if n in {_norm(g["name"]), *(_norm(a) for a in g.get("aliases", []))}:
                    used.add(i)
                    tp += 1
                    break
        out[kind] = {"gold": len(gk), "pred": len(pk), "tp": tp}
    return out


def score_amounts(gold: list[dict], pred: list[dict]) -> dict[str, int]:
    used: set[int] = set()
    tp = 0
    for g in gold:
        gt = set(_toks(g["text"]))
        for j, p in enumerate(pred):
            if j in used:
                continue
            if not gt & set(_toks(p["text"])):
                continue
            if abs(p["value"] - g["value"]) > 1e-6 * max(1.0, abs(g["value"])) + 0.01:
                continue
            if g.get("unit") and p.get("unit") != g["unit"]:
                continue
            used.add(j)
            tp += 1
            break
    return {"gold": len(gold), "pred": len(pred), "tp": tp}


def _prf(tp: int, pred: int, gold: int) -> tuple[float, float, float]:
    p = tp / pred if pred else (1.0 if not gold else 0.0)
    r = tp / gold if gold else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def _add(acc: dict[str, int], d: dict[str, int]) -> None:
    for k, v in d.items():
        acc[k] = acc.get(k, 0) + v


def _summary(q: dict[str, int], ents: dict[str, dict[str, int]], am: dict[str, int]) -> dict[str, Any]:
    qp, qr, qf = _prf(q.get("tp", 0), q.get("pred", 0), q.get("gold", 0))
    ep, er, ef = _prf(q.get("e2e_tp", 0), q.get("pred", 0), q.get("gold", 0))
    out: dict[str, Any] = {
        "quotes": {"precision": qp, "recall": qr, "f1": qf, "gold": q.get("gold", 0), "pred": q.get("pred", 0)},
        "speaker_accuracy": (q["sp_correct"] / q["sp_scored"]) if q.get("sp_scored") else 1.0,
        "quote_speaker": {"precision": ep, "recall": er, "f1": ef},
        "entities": {},
    }
    for kind, d in ents.items():
        p, r, f = _prf(d["tp"], d["pred"], d["gold"])
        out["entities"][kind] = {"precision": p, "recall": r, "f1": f, "gold": d["gold"], "pred": d["pred"]}
    p, r, f = _prf(am.get("tp", 0), am.get("pred", 0), am.get("gold", 0))
    out["amounts"] = {"precision": p, "recall": r, "f1": f, "gold": am.get("gold", 0), "pred": am.get("pred", 0)}
    return out


def evaluate(shared: Path | None = None, per_doc: bool = False,
             predictions: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Scores per doc set ("seed", "fundus") and "overall"; with per_doc, also "docs".

    `predictions` maps a doc id to its fields ({"quotes", "entities", "amounts"}, as stored by the
    pipeline); docs without one are scored on article_fields of the gold text."""
    docs = load_docs(shared)
    acc: dict[str, tuple[dict[str, int], dict[str, dict[str, int]], dict[str, int]]] = {}
    per: dict[str, Any] = {}
    for doc_id, d in docs.items():
        fields = predictions[doc_id] if predictions and doc_id in predictions else article_fields(d["text"])
        qs = score_quotes(d["quotes"], fields["quotes"])
        es = score_entities(d["entities"], fields["entities"])
        am = score_amounts(d["amounts"], fields["amounts"])
        for key in (d["set"], "overall"):
            q0, e0, a0 = acc.setdefault(key, ({}, {}, {}))
            _add(q0, qs)
            for kind, v in es.items():
                _add(e0.setdefault(kind, {}), v)
            _add(a0, am)
        if per_doc:
            per[doc_id] = _summary(qs, es, am)
    out = {key: _summary(*acc[key]) for key in (*DOC_SETS, "overall") if key in acc}
    if per_doc:
        out["docs"] = per
    return out


def _table(name: str, s: dict[str, Any]) -> str:
    rows = [f"== {name}", f"{'field':<22}{'P':>7}{'R':>7}{'F1':>7}{'gold':>6}{'pred':>6}"]

    def line(label: str, d: dict[str, Any]) -> None:
        rows.append(f"{label:<22}{d['precision']:>7.3f}{d['recall']:>7.3f}{d['f1']:>7.3f}{d.get('gold', ''):>6}{d.get('pred', ''):>6}")

    line("quotes", s["quotes"])
    line("(quote, speaker)", s["quote_speaker"])
    rows.append(f"{'speaker accuracy':<22}{s['speaker_accuracy']:>21.3f}")
    for kind, d in s["entities"].items():
        line(f"entity:{kind}", d)
    line("amounts", s["amounts"])
    return "\n".join(rows)


def timing(shared: Path | None = None, repeat: int = 3) -> dict[str, float]:
    """ms per page of the pipeline's extraction (flows.clean.extract_page, one core) on the fundus pages,
    and ms per article of article_fields on the texts it produced and on the ground-truth texts."""
    import gzip
    import time

    from flows.clean import extract_page
    from transforms.fields import warm

    shared = shared or shared_dir()
    truth = json.loads((shared / "corpus" / "fundus" / "ground_truth.json").read_text())
    pages = sorted((shared / "corpus" / "fundus" / "html").glob("*.html.gz"))
    items = [
        {"url": truth.get(p.name, {}).get("url") or f"http://example.com/{p.stem}", "body": gzip.decompress(p.read_bytes()),
         "content_type": "text/html", "has_source_date": False}
        for p in pages
    ]
    extract_page(items[0])  # imports and lazy set-up out of the measurement
    t0 = time.perf_counter()
    texts = [extract_page(it).get("text") or "" for it in items]
    extract_ms = (time.perf_counter() - t0) / len(items) * 1000
    gold_texts = ["\n".join(v["body"]) for v in truth.values()]
    warm()
    out = {"pages": float(len(items)), "extract_ms_per_page": extract_ms}
    for label, batch in (("pipeline_text", texts), ("ground_truth_text", gold_texts)):
        for t in batch:
            article_fields(t)
        t0 = time.perf_counter()
        for _ in range(repeat):
            for t in batch:
                article_fields(t)
        ms = (time.perf_counter() - t0) / (repeat * len(batch)) * 1000
        out[f"fields_ms_per_article_{label}"] = ms
        out[f"fields_share_{label}"] = ms / extract_ms
    return out


# --- the real pipeline on the gold pages ------------------------------------------------------------

def pipeline_predictions(shared: Path | None = None) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Serve the fundus gold pages over loopback, ingest them with the real pipeline, and read the
    stored fields back: (doc id -> {"quotes", "entities", "amounts"}, info). info has per-doc "text"
    (shingle precision/recall/F1 of the stored text against the ground-truth body, as in
    bench.extraction_quality), "paragraphs" (stored, ground truth), and the run's "loaded" count."""
    import asyncio
    import tempfile

    from bench.corpus import CorpusHandler, load_pages
    from bench.metrics import page_scores
    from flows.config import load_settings
    from flows.pipeline import run_pipeline
    from flows.siteserver import LoopbackServer
    from flows.sources import Source
    from flows.urls import canonical_url
    from transforms.fields import paragraphs
    from warehouse import open_warehouse

    gold_ids = {k for k, d in load_docs(shared).items() if d["set"] == "fundus"}
    pages = [p for p in load_pages("fundus") if p.key in gold_ids]
    handler = CorpusHandler(pages)
    with tempfile.TemporaryDirectory() as tmp, LoopbackServer(handler) as server:
        handler.bind(server.base)
        settings = load_settings(env={}, warehouse=f"{tmp}/fields.duckdb", allow_hosts=(server.host,), host_delay=0.0)
        report = asyncio.run(run_pipeline(settings, [Source("fields-gold", "urls", f"{server.base}/lists/all.txt")]))
        doc_of = {canonical_url(server.base + p.path): p.key for p in pages}
        with open_warehouse(settings.warehouse, read_only=True) as con:
            texts = dict(con.execute("SELECT url, text FROM articles").fetchall())
            quotes = con.execute(
                "SELECT a.url, q.quote, q.speaker, q.speaker_type FROM quotes q JOIN articles a USING (article_id) "
                "ORDER BY a.url, q.start_char").fetchall()
            ents = con.execute(
                "SELECT a.url, e.name, e.kind, e.aliases FROM entities e JOIN articles a USING (article_id) "
                "ORDER BY a.url, e.start_char").fetchall()
            amounts = con.execute(
                "SELECT a.url, m.text, m.value, m.unit FROM amounts m JOIN articles a USING (article_id) "
                "ORDER BY a.url, m.start_char").fetchall()
    preds: dict[str, dict[str, Any]] = {}
    info: dict[str, Any] = {"loaded": int(report.counts.get("loaded", 0)), "pages": len(pages), "text": {}, "paragraphs": {}}
    truth = {p.key: p.truth.get("body") or [] for p in pages}
    for url, doc in doc_of.items():
        preds[doc] = {"quotes": [], "entities": [], "amounts": []}
        text = texts.get(url)
        tp, fp, fn = page_scores(text, "\n".join(truth[doc]))
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        info["text"][doc] = {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "stored": text is not None}
        info["paragraphs"][doc] = (len(paragraphs(text or "")), len(truth[doc]))
    for url, quote, speaker, stype in quotes:
        if url in doc_of:
            preds[doc_of[url]]["quotes"].append({"quote": quote, "speaker": speaker, "speaker_type": stype})
    for url, name, kind, aliases in ents:
        if url in doc_of:
            preds[doc_of[url]]["entities"].append({"name": name, "kind": kind, "aliases": list(aliases or [])})
    for url, text, value, unit in amounts:
        if url in doc_of and value is not None:
            preds[doc_of[url]]["amounts"].append({"text": text, "value": value, "unit": unit})
    return preds, info


# --- speed: trafilatura alone vs the pipeline's extraction with the fields ------------------------------

def speed(shared: Path | None = None, repeat: int = 7) -> dict[str, Any]:
    """Seconds per pass over the fundus pages (best of `repeat` interleaved passes, one core: the pass
    least disturbed by other load on the machine; medians are kept too) of
    - trafilatura.bare_extraction with flows.clean.extract_page's options,
    - flows.clean.extract_page with the structured fields switched off (decode, metadata, dates), and
    - flows.clean.extract_page as the pipeline runs it (with the fields)."""
    import gzip
    import statistics
    import time
    from datetime import UTC, datetime

    import trafilatura

    from flows import clean
    from flows.clean import decode_html, extract_page
    from transforms.fields import warm

    shared = shared or shared_dir()
    truth = json.loads((shared / "corpus" / "fundus" / "ground_truth.json").read_text())
    files = sorted((shared / "corpus" / "fundus" / "html").glob("*.html.gz"))
    items: list[dict[str, Any]] = [
        {"url": truth.get(p.name, {}).get("url") or f"http://example.com/{p.stem}", "body": gzip.decompress(p.read_bytes()),
         "content_type": "text/html", "has_source_date": False}
        for p in files
    ]
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    date_params = {"extensive_search": False, "original_date": True, "max_date": today, "deferred_url_extractor": True}
    decoded = [decode_html(it["body"], it["content_type"])[0] for it in items]

    def bare() -> None:
        for it, html in zip(items, decoded, strict=True):
            trafilatura.bare_extraction(html, url=it["url"], with_metadata=True, include_comments=False,
                                        include_tables=True, favor_precision=True, favor_recall=False,
                                        date_extraction_params=date_params)

    def pipeline_no_fields() -> None:
        real = clean.structured_fields
        clean.structured_fields = lambda text, title, authors: None
        try:
            for it in items:
                extract_page(it)
        finally:
            clean.structured_fields = real

    def pipeline() -> None:
        for it in items:
            extract_page(it)

    warm()
    variants = {"trafilatura": bare, "extract_no_fields": pipeline_no_fields, "extract_page": pipeline}
    for fn in variants.values():
        fn()  # imports, lazy set-up and caches out of the measurement
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeat):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    out: dict[str, Any] = {"pages": len(items), "repeat": repeat}
    for name, ts in times.items():
        best = min(ts)
        out[name] = {"seconds": best, "pages_per_s": len(items) / best, "ms_per_page": best / len(items) * 1000,
                     "median_ms_per_page": statistics.median(ts) / len(items) * 1000}
    t, nf, full = (out[k]["seconds"] for k in ("trafilatura", "extract_no_fields", "extract_page"))
    out["fields_share_of_extract"] = (full - nf) / nf  # what the fields add to the pipeline's extraction
    out["extract_page_over_trafilatura"] = (full - t) / t  # everything extract_page adds to trafilatura alone
    out["fields_share_of_trafilatura"] = (full - nf) / t
    return out


_RESULTS = Path(__file__).resolve().parent / "results" / "fields.md"


def _write_section(name: str, body: str) -> None:
    """Replace (or add) one section of bench/results/fields.md, keeping the others."""
    import platform

    head = ("# Structured fields: quality and speed\n\nWritten by `python -m bench.eval_fields` "
            "(`--pipeline`, `--speed`); each mode rewrites its own section.\n")
    old = _RESULTS.read_text(encoding="utf-8") if _RESULTS.exists() else head
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    stamp = f"\n\nMachine: {platform.platform()}, Python {platform.python_version()}, {platform.machine()}.\n"
    block = f"{start}\n{body.rstrip()}{stamp}{end}"
    if start in old and end in old:
        new = old[: old.index(start)] + block + old[old.index(end) + len(end):]
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    _RESULTS.parent.mkdir(exist_ok=True)
    _RESULTS.write_text(new, encoding="utf-8")


def _md_table(res: dict[str, Any], keys: tuple[str, ...]) -> str:
    rows = ["| field | " + " | ".join(f"{k} P / R / F1" for k in keys) + " |", "|---|" + "---|" * len(keys)]

    def cell(d: dict[str, Any]) -> str:
        return f"{d['precision']:.3f} / {d['recall']:.3f} / **{d['f1']:.3f}**"

    for label, get in (("quotes", lambda s: s["quotes"]), ("(quote, speaker)", lambda s: s["quote_speaker"]),
                       ("entity:person", lambda s: s["entities"]["person"]),
                       ("entity:organization", lambda s: s["entities"]["organization"]),
                       ("entity:place", lambda s: s["entities"]["place"]), ("amounts", lambda s: s["amounts"])):
        rows.append(f"| {label} | " + " | ".join(cell(get(res[k])) for k in keys) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--per-doc", action="store_true")
    ap.add_argument("--timing", action="store_true", help="time field extraction against page extraction")
    ap.add_argument("--pipeline", action="store_true",
                    help="also run the real pipeline on the gold pages (loopback) and score the stored fields")
    ap.add_argument("--speed", action="store_true",
                    help="trafilatura alone vs flows.clean.extract_page with the fields, on the fundus pages")
    ap.add_argument("--repeat", type=int, default=7, help="passes per variant for --speed (best and median kept)")
    args = ap.parse_args(argv)
    if args.speed:
        sp = speed(repeat=args.repeat)
        lines = [f"{'variant':<44}{'pages/s':>9}{'ms/page':>9}{'median':>9}"]
        labels = {"trafilatura": "trafilatura.bare_extraction alone",
                  "extract_no_fields": "extract_page without the fields",
                  "extract_page": "extract_page (pipeline, with the fields)"}
        for key, label in labels.items():
            lines.append(f"{label:<44}{sp[key]['pages_per_s']:>9.1f}{sp[key]['ms_per_page']:>9.2f}"
                         f"{sp[key]['median_ms_per_page']:>9.2f}")
        share = sp["fields_share_of_extract"]
        lines.append(f"fields add {share:.1%} to extract_page's time ({sp['fields_share_of_trafilatura']:.1%} of "
                     f"trafilatura alone); extract_page is {sp['extract_page_over_trafilatura']:+.1%} over trafilatura "
                     f"alone in all (budget for the fields: 25%)")
        print("\n".join(lines))
        md = ["## Speed (`--speed`)", "",
              f"{sp['pages']} fundus pages, one core, best of {sp['repeat']} interleaved passes per variant "
              "(median alongside).", "",
              "| variant | pages/s | ms/page (best) | ms/page (median) |", "|---|---|---|---|"]
        md += [f"| {labels[k]} | {sp[k]['pages_per_s']:.1f} | {sp[k]['ms_per_page']:.2f} | {sp[k]['median_ms_per_page']:.2f} |"
               for k in labels]
        md += ["", f"- fields' share of the pipeline's extraction: **{share:.1%}** "
                   f"(extract_page with vs without the fields; budget 25%: {'within' if share <= 0.25 else 'OVER'})",
               f"- the same time as a share of trafilatura alone: {sp['fields_share_of_trafilatura']:.1%}",
               f"- extract_page over trafilatura alone, everything included (decoding, dates, compression, fields): "
               f"{sp['extract_page_over_trafilatura']:+.1%}"]
        _write_section("speed", "\n".join(md))
        return 0 if share <= 0.25 else 1
    if args.timing:
        t = timing()
        print(f"pipeline extraction (trafilatura): {t['extract_ms_per_page']:.2f} ms/page over {int(t['pages'])} fundus pages")
        for label in ("pipeline_text", "ground_truth_text"):
            print(f"article_fields on {label}: {t[f'fields_ms_per_article_{label}']:.2f} ms/article "
                  f"({t[f'fields_share_{label}']:.1%} of extraction)")
        return 0
    if not (shared_dir() / "gold").is_dir():
        print(f"gold labels not found under {shared_dir()}", file=sys.stderr)
        return 2
    res = evaluate(per_doc=args.per_doc)
    pipe: dict[str, Any] | None = None
    info: dict[str, Any] = {}
    if args.pipeline:
        preds, info = pipeline_predictions()
        pipe = evaluate(per_doc=args.per_doc, predictions=preds)
    if args.json:
        print(json.dumps({**res, "pipeline": pipe, "pipeline_text": info} if pipe else res, indent=1))
        return 0
    for key, s in res.items():
        if key == "docs":
            for doc_id, ds in s.items():
                print(_table(doc_id, ds))
                print()
            continue
        print(_table(key, s))
        print()
    if pipe is not None:
        print(f"=== pipeline mode: {info['loaded']}/{info['pages']} gold pages loaded; fundus figures are on the text "
              f"the pipeline stored (trafilatura), the seed on its own text")
        for doc, t in sorted(info["text"].items()):
            got, want = info["paragraphs"][doc]
            print(f"  {doc:<20} stored text vs ground truth: P {t['precision']:.3f} R {t['recall']:.3f} "
                  f"F1 {t['f1']:.3f}; paragraphs {got} stored / {want} ground truth")
        print()
        for key, s in pipe.items():
            if key == "docs":
                continue
            print(_table(f"pipeline: {key}", s))
            print()
        text_f1 = sum(t["f1"] for t in info["text"].values()) / max(1, len(info["text"]))
        md = ["## Quality: gold texts vs the real pipeline (`--pipeline`)", "",
              "Gold = `article_fields` on the ground-truth texts; pipeline = the fields the pipeline stored for the "
              f"fundus gold pages served over loopback ({info['loaded']}/{info['pages']} loaded; stored text vs "
              f"ground truth: mean shingle F1 {text_f1:.3f}). The seed article has no page and counts the same in "
              "both overall columns.", "",
              _md_table({"gold fundus": res["fundus"], "pipeline fundus": pipe["fundus"], "gold overall": res["overall"],
                         "pipeline overall": pipe["overall"]},
                        ("gold fundus", "pipeline fundus", "gold overall", "pipeline overall"))]
        _write_section("quality", "\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
