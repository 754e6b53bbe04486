"""Nearest occurrences by cosine: which vectors of a corpus are closest to a query vector?

The search itself is scikit-learn's NearestNeighbors (brute force, cosine metric), not a hand-written index.
Around it this module makes the answer well defined: rows of zero norm (no direction, so no cosine) and rows the
caller excludes (e.g. the query's own occurrence) are never returned, the cosines returned are recomputed exactly
in float64, and cosines equal within TIE are ordered by ascending row index, so the same input always gives the
same list (duplicate sentences in a corpus make exact ties common).
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

from ..errors import InputError

TIE = 1e-6  # cosines this close count as equal and are ordered by row index
EXTRA = 8  # candidates fetched beyond k, so that ties at the k-th place are usually all seen at once
SLACK = 1e-9  # sklearn's distances may differ from the exact cosines by round-off


def _tie_order(cos: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort by cosine descending; runs within TIE of their first (largest) cosine go by ascending index."""
    order = np.lexsort((ids, -cos))
    cos, ids = cos[order], ids[order]
    group = np.zeros(len(cos), dtype=np.int64)
    anchor = cos[0]
    # Groups are anchored on their top cosine (not chained pair by pair), so a group never spans more than TIE.
    for i in range(1, len(cos)):
        if cos[i] < anchor - TIE:
            anchor = cos[i]
            group[i] = group[i - 1] + 1
        else:
            group[i] = group[i - 1]
    final = np.lexsort((ids, group))
    return cos[final], ids[final]


def require_directions(vectors: np.ndarray, what: str) -> np.ndarray:
    """The rows' norms [N]; InputError if one is zero or not finite (no direction, so no cosine:
    refused rather than scored 0)."""
    norms = np.linalg.norm(vectors, axis=1)
    if not (np.all(np.isfinite(norms)) and np.all(norms > 0)):
        raise InputError(f"A {what} vector is zero or not finite: its cosine to anything is undefined.")
    return norms


def _inputs(index: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(index, dtype=np.float64)
    q = np.asarray(queries, dtype=np.float64)
    if q.ndim == 1:
        q = q[None, :]
    if k < 1:
        raise InputError(f"The number of neighbours must be at least 1 (got {k}).")
    if x.ndim != 2 or x.shape[0] == 0:
        raise InputError("There are no vectors to search.")
    if q.ndim != 2 or q.shape[1] != x.shape[1]:
        raise InputError(f"The query vectors have dimension {q.shape[-1]}, the corpus vectors {x.shape[1]}.")
    return x, q


def nearest(
    index: np.ndarray, queries: np.ndarray, k: int, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The k rows of index [N, D] with the highest cosine to each query [Q, D] (or one query [D]).

    Returns (row indices [Q, k'], cosines [Q, k']), k' = min(k, rows usable): rows of non-zero norm that
    `exclude` (a boolean mask [N]) does not mark. Cosines descend; equal ones (within TIE) go by row index.
    """
    x, q = _inputs(index, queries, k)
    norms = np.linalg.norm(x, axis=1)
    usable = np.isfinite(norms) & (norms > 0)
    if exclude is not None:
        mask = np.asarray(exclude)
        if mask.dtype != bool or mask.shape != (x.shape[0],):
            raise InputError(f"exclude must be a boolean mask of {x.shape[0]} rows.")
        usable &= ~mask
    q_norms = require_directions(q, "query")
    rows = np.flatnonzero(usable)
    k_out = min(k, rows.size)
    out_ids = np.empty((q.shape[0], k_out), dtype=np.int64)
    out_cos = np.empty((q.shape[0], k_out), dtype=np.float64)
    if k_out == 0 or q.shape[0] == 0:
        return out_ids, out_cos
    unit = x[rows] / norms[rows, None]
    unit_q = q / q_norms[:, None]
    search = NearestNeighbors(metric="cosine", algorithm="brute").fit(unit)
    todo, fetch = np.arange(q.shape[0]), min(k_out + EXTRA, rows.size)
    while todo.size:
        dist, cand = search.kneighbors(unit_q[todo], n_neighbors=fetch)
        sims = 1.0 - dist
        # sklearn orders equal distances arbitrarily and cuts at k: a row tied with the k-th may be left out.
        # A query is settled once its last candidate is clearly below the k-th, so no unseen row can tie;
        # otherwise fetch twice as many.
        done = (fetch == rows.size) | (sims[:, -1] < sims[:, k_out - 1] - TIE - SLACK)
        for r in np.flatnonzero(done):
            exact = unit[cand[r]] @ unit_q[todo[r]]  # the real cosines, not 1 - (1 - cos)
            cos, ids = _tie_order(exact, rows[cand[r]])
            out_ids[todo[r]], out_cos[todo[r]] = ids[:k_out], cos[:k_out]
        todo, fetch = todo[~done], min(2 * fetch, rows.size)
    return out_ids, out_cos
