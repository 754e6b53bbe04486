"""Word translation retrieval: does a model place a word nearest to its translation?

Each query word (one language) ranks every candidate word (the other language) by cosine; the
rank of its translation gives precision@1 (the translation comes first) and the mean reciprocal
rank (MRR, the mean of 1 / rank). Subtracting each language's mean vector first (`centre`)
removes the offset that keeps two languages apart in a multilingual model's space and is known
to raise retrieval (Libovický et al. 2019, "How language-neutral is multilingual BERT?").

Ties count against the query: a candidate within TIE of the translation's cosine ranks ahead of
it, so a model that gives every word the same vector ranks every translation last, never first.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

import numpy as np
from sklearn.metrics.pairwise import cosine_similarity

from ..errors import InputError
from .neighbours import TIE, require_directions


def centre(vectors: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """`vectors` [..., N, D] minus `mean` [..., D] (default: their own mean over the N rows), in float64."""
    x = np.asarray(vectors, dtype=np.float64)
    m = x.mean(axis=-2) if mean is None else np.asarray(mean, dtype=np.float64)
    return x - m[..., None, :]


def cosine_matrix(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Cosines [Q, N] of queries [Q, D] with candidates [N, D] (scikit-learn), in float64.

    A zero or non-finite vector has no direction, so no cosine: refused rather than scored 0."""
    q = np.asarray(queries, dtype=np.float64)
    c = np.asarray(candidates, dtype=np.float64)
    if q.ndim != 2 or c.ndim != 2 or q.shape[1] != c.shape[1]:
        raise InputError(f"Queries {q.shape} and candidates {c.shape} must be [Q, D] and [N, D] of one dimension.")
    require_directions(q, "query")
    require_directions(c, "candidate")
    return cosine_similarity(q, c)


def retrieval_ranks(similarity: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """For each query (row), the rank (1 = first) of its best relevant candidate: one plus the
    irrelevant candidates whose similarity is at least the best relevant one's, less TIE.

    similarity [Q, N]; relevant [Q, N] bool, at least one True a row (the translation, and any
    candidate that is the same translation pair). Ranks lie in 1..N − (relevant in the row) + 1.
    """
    sim = np.asarray(similarity, dtype=np.float64)
    rel = np.asarray(relevant)
    if rel.dtype != bool or rel.shape != sim.shape or sim.ndim != 2:
        raise InputError(f"relevant must be a boolean matrix of the similarities' shape {sim.shape}.")
    if not rel.any(axis=1).all():
        raise InputError("Every query needs at least one relevant candidate (its translation).")
    best = np.where(rel, sim, -np.inf).max(axis=1)
    ahead = ~rel & (sim >= best[:, None] - TIE)  # ties (within TIE) go ahead: pessimistic
    return 1 + ahead.sum(axis=1)


def retrieved(similarity: np.ndarray, relevant: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """The candidate each query retrieves first, as `retrieval_ranks` orders them: its best
    relevant candidate where its rank is 1, else its most similar irrelevant one."""
    sim = np.asarray(similarity, dtype=np.float64)
    rel = np.asarray(relevant, dtype=bool)
    best_relevant = np.where(rel, sim, -np.inf).argmax(axis=1)
    best_other = np.where(rel, -np.inf, sim).argmax(axis=1)
    return np.where(np.asarray(ranks) == 1, best_relevant, best_other)


def precision_at_1(ranks: np.ndarray) -> float:
    """The share of queries whose translation is retrieved first."""
    return float(np.mean(np.asarray(ranks) == 1))


def mean_reciprocal_rank(ranks: np.ndarray) -> float:
    """The mean of 1 / rank over the queries (1 when every translation comes first)."""
    return float(np.mean(1.0 / np.asarray(ranks, dtype=np.float64)))


def chance(relevant: np.ndarray) -> tuple[float, float]:
    """Expected precision@1 and MRR when the candidates come in a uniformly random order.

    A row with r relevant of N candidates: the first relevant one follows X irrelevant ones with
    P(X = x) = C(N − 1 − x, r − 1) / C(N, r), so P@1 = r / N and E[1 / rank] = Σ P(X = x) / (1 + x).
    """
    rel = np.asarray(relevant, dtype=bool)
    n = rel.shape[1]
    p1, rr = [], []
    for r in rel.sum(axis=1).tolist():
        total = comb(n, r)
        p1.append(r / n)
        rr.append(sum(comb(n - 1 - x, r - 1) / (1 + x) for x in range(n - r + 1)) / total)
    return float(np.mean(p1)), float(np.mean(rr))


def same_pair(source_words: Sequence[str], target_words: Sequence[str]) -> np.ndarray:
    """relevant[i, j]: alignment j is the same word pair as alignment i (both words, case-folded).

    Alignment i pairs source_words[i] with target_words[i]. Another occurrence of the same pair
    (say dog → Hund in a second sentence) is as right an answer as the aligned occurrence itself;
    a homograph with another meaning (morning → Morgen, tomorrow → morgen) is not."""
    if len(source_words) != len(target_words):
        raise InputError("Every aligned word needs its translation.")
    keys = [(s.casefold(), t.casefold()) for s, t in zip(source_words, target_words)]
    return np.array([[a == b for b in keys] for a in keys], dtype=bool).reshape(len(keys), len(keys))
