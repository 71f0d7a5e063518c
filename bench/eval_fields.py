"""Score transforms.fields against the hand labels in ../shared/gold (see GUIDELINES.md there).

    python -m bench.eval_fields            # tables per doc set (seed, fundus) and overall
    python -m bench.eval_fields --json     # the same figures as JSON
    python -m bench.eval_fields --timing   # ms/article vs the pipeline's trafilatura extraction (fundus pages)

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


def evaluate(shared: Path | None = None, per_doc: bool = False) -> dict[str, Any]:
    """Scores per doc set ("seed", "fundus") and "overall"; with per_doc, also "docs"."""
    docs = load_docs(shared)
    acc: dict[str, tuple[dict[str, int], dict[str, dict[str, int]], dict[str, int]]] = {}
    per: dict[str, Any] = {}
    for doc_id, d in docs.items():
        fields = article_fields(d["text"])
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--per-doc", action="store_true")
    ap.add_argument("--timing", action="store_true", help="time field extraction against page extraction")
    args = ap.parse_args(argv)
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
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    for key, s in res.items():
        if key == "docs":
            for doc_id, ds in s.items():
                print(_table(doc_id, ds))
                print()
            continue
        print(_table(key, s))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
