"""The article-extraction benchmark's body-text metric (4-token shingles of \\w+ tokens)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

_TOKEN = re.compile(r"\w+")


def shingles(text: str | None, n: int = 4) -> Counter[tuple[str, ...]]:
    tokens = _TOKEN.findall(text or "")
    return Counter(tuple(tokens[i : i + n]) for i in range(max(0, len(tokens) - n + 1)))


def page_scores(prediction: str | None, truth: str | None) -> tuple[float, float, float]:
    """(tp, fp, fn) for one page, each divided by tp + fp + fn."""
    pred, true = shingles(prediction), shingles(truth)
    tp = sum((pred & true).values())
    fp = sum(pred.values()) - tp
    fn = sum(true.values()) - tp
    total = tp + fp + fn
    if total == 0:
        return 0.0, 0.0, 0.0
    return tp / total, fp / total, fn / total


def f1_scores(pairs: Iterable[tuple[str | None, str | None]]) -> dict[str, float]:
    """Precision averaged over pages with a prediction, recall over pages with a truth
    (an empty prediction costs recall), F1 of the two averages."""
    precisions, recalls = [], []
    for prediction, truth in pairs:
        tp, fp, fn = page_scores(prediction, truth)
        if tp + fp > 0:
            precisions.append(tp / (tp + fp))
        if tp + fn > 0:
            recalls.append(tp / (tp + fn))
    p = sum(precisions) / len(precisions) if precisions else 0.0
    r = sum(recalls) / len(recalls) if recalls else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f1, "pages": float(max(len(precisions), len(recalls)))}
