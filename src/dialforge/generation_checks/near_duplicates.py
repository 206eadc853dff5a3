"""Near-duplicate texts by the Jaccard similarity of their normalized word shingles.

Texts a model writes in bulk repeat themselves with small changes ("show my order 1234" and "Show me my
order 5678!"). Comparing sets of words catches that without embeddings or extra dependencies: text is
case-folded, cut into runs of letters and digits (punctuation and ``_`` separate words), and every
number becomes ``0`` so that texts differing only in ids or amounts match. Shingles of one word suit
short texts such as questions; use ``size=2`` or ``3`` for long texts, where single words overlap anyway.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

_WORD = re.compile(r"[^\W_]+")
_DIGITS = re.compile(r"\d+")


@lru_cache(maxsize=8192)
def shingles(text: str, size: int = 1) -> frozenset[tuple[str, ...]]:
    """The text's normalized word ``size``-grams (one shingle of all its words when it has fewer)."""
    words = [_DIGITS.sub("0", word) for word in _WORD.findall(text.casefold())]
    if len(words) <= size:
        return frozenset({tuple(words)}) if words else frozenset()
    return frozenset(tuple(words[start : start + size]) for start in range(len(words) - size + 1))


def similarity(a: str, b: str, *, size: int = 1) -> float:
    """Jaccard similarity of the two texts' shingles: 1.0 for the same words, 0.0 for none shared."""
    return _jaccard(shingles(a, size), shingles(b, size))


def near_duplicate_of(text: str, others: Iterable[str], threshold: float = 0.8, *, size: int = 1) -> str | None:
    """The one of ``others`` most similar to ``text`` if that reaches ``threshold``, else ``None``.

    Pairs whose shingle counts differ too much to reach the threshold are skipped without comparing.
    """
    mine = shingles(text, size)
    best: str | None = None
    best_score = threshold
    for other in others:
        theirs = shingles(other, size)
        smaller, larger = sorted((len(mine), len(theirs)))
        if smaller < threshold * larger:
            continue
        score = _jaccard(mine, theirs)
        if score > best_score or (best is None and score >= threshold):
            best, best_score = other, score
    return best


def _jaccard(a: frozenset[tuple[str, ...]], b: frozenset[tuple[str, ...]]) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 1.0
