"""Language identification from function words, vectorised over a text column."""

from __future__ import annotations

from typing import Any

import polars as pl

__all__ = ["STOPWORDS", "detect_language"]

# a dozen frequent function words per language, chosen to be distinctive between these languages
STOPWORDS: dict[str, tuple[str, ...]] = {
    "en": ("the", "and", "of", "to", "is", "that", "with", "for", "was", "this", "have", "from"),
    "de": ("der", "die", "und", "das", "nicht", "ist", "mit", "sich", "auch", "auf", "für", "wird"),
    "fr": ("le", "les", "et", "des", "est", "une", "pour", "dans", "qui", "pas", "sur", "avec"),
    "es": ("el", "los", "las", "del", "que", "por", "una", "con", "para", "está", "pero", "como"),
    "it": ("il", "della", "che", "di", "per", "una", "sono", "gli", "anche", "non", "nel", "con"),
    "pt": ("não", "uma", "para", "com", "os", "das", "dos", "mais", "pelo", "também", "seu", "foi"),
    "nl": ("het", "een", "van", "en", "niet", "zijn", "voor", "met", "ook", "wordt", "dat", "maar"),
    "sv": ("och", "att", "det", "som", "för", "på", "är", "med", "inte", "har", "till", "av"),
    "pl": ("nie", "się", "jest", "na", "że", "do", "jak", "przez", "od", "już", "oraz", "jego"),
}
_MIN_HITS = 3


def detect_language(text: pl.Expr) -> pl.Expr:
    """The language whose function words occur most often in ``text``; null below a minimum."""
    lowered = text.str.to_lowercase()
    counts = [
        lowered.str.count_matches(r"\b(?:" + "|".join(words) + r")\b").fill_null(0).alias(code)
        for code, words in STOPWORDS.items()
    ]
    codes = list(STOPWORDS)
    best_count = pl.max_horizontal(counts)
    # the first language reaching the best count
    choice: Any = pl.when(pl.lit(False)).then(pl.lit(None, dtype=pl.String))
    for code, count in zip(codes, counts, strict=True):
        choice = choice.when(count == best_count).then(pl.lit(code))
    return pl.when(best_count >= _MIN_HITS).then(choice.otherwise(None)).otherwise(None)
