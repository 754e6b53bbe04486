"""How alike are two sets of vectors for the same words? Linear CKA (Kornblith et al., ICML 2019).

Centred kernel alignment compares two layers, of one model or of two models, through the similarity structure
they give the same n words, so the layers may differ in width. Linear CKA is invariant to orthogonal transforms,
isotropic scaling and translation of either side, but not to general invertible linear maps: that is what makes it
meaningful between networks ("Similarity of Neural Network Representations Revisited"). Ecco draws it between
the layers of two models.

Two equal forms on column-centred x [n, p], y [n, q]: the feature form ||yᵀx||²_F / (||xᵀx||_F ||yᵀy||_F) costs
about n·(p² + pq + q²), the Gram form tr(KL) / (||K||_F ||L||_F) with K = xxᵀ, L = yyᵀ about n²·(p + q); the
cheaper one is used. Both are computed in float64.
"""

from __future__ import annotations

import numpy as np

NO_VARIANCE = 1e-10  # centred norm under this fraction of the raw norm: all rows equal up to round-off


def _centred(x: np.ndarray) -> np.ndarray | None:
    """Column-centred float64 copy scaled to unit Frobenius norm; None when all rows are (numerically) equal."""
    x = np.asarray(x, dtype=np.float64)
    c = x - x.mean(axis=0)
    norm = np.linalg.norm(c)
    # Centring identical rows leaves round-off of order eps·|x|, not 0: judge it against x's own scale, so the
    # denominator is never that noise. `not >` also catches all zeros (0 > 0) and NaN.
    if not norm > NO_VARIANCE * np.linalg.norm(x):
        return None
    return c / norm  # CKA is scale-invariant; unit scale keeps the products far from overflow


GRAM_BYTES = 2**30  # the Gram matrices of a whole cka_matrix are kept at once: at most this much


def _use_gram(n: int, p: int, q: int, layers_a: int = 1, layers_b: int = 1, shared: bool = False) -> bool:
    """Whether the n×n Gram form is cheaper than the feature form for `layers_a` × `layers_b`
    pairs (few words, wide layers). Over a matrix each Gram is built once and reused by every
    pair, so the Gram form wins longer than for one pair, as long as the Grams fit GRAM_BYTES.
    `shared`: b is a itself, so its Grams and self-norms come free."""
    grams = layers_a + (0 if shared else layers_b)
    gram_cost = (layers_a * p + (0 if shared else layers_b * q)) * n * n + layers_a * layers_b * n * n
    feature_cost = layers_a * layers_b * n * p * q + layers_a * n * p * p + (0 if shared else layers_b * n * q * q)
    return gram_cost < feature_cost and grams * n * n * 8 <= GRAM_BYTES


def _check_rows(n_x: int, n_y: int) -> None:
    if n_x != n_y:
        raise ValueError(f"CKA compares vectors of the same words: {n_x} rows against {n_y}")
    if n_x < 2:
        raise ValueError("CKA needs at least two words (rows)")


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of x [n, p] and y [n, q] (row i of both = the same word); NaN if either has no variance."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"linear_cka takes two matrices, got shapes {x.shape} and {y.shape}")
    _check_rows(x.shape[0], y.shape[0])
    cx, cy = _centred(x), _centred(y)
    if cx is None or cy is None:
        return float("nan")  # the denominator is 0: similarity to a single point is undefined
    if _use_gram(x.shape[0], x.shape[1], y.shape[1]):
        gram_x, gram_y = cx @ cx.T, cy @ cy.T
        value = np.vdot(gram_x, gram_y) / (np.linalg.norm(gram_x) * np.linalg.norm(gram_y))
    else:
        cross = np.linalg.norm(cy.T @ cx) ** 2
        value = cross / (np.linalg.norm(cx.T @ cx) * np.linalg.norm(cy.T @ cy))
    return float(np.clip(value, 0.0, 1.0))  # in [0, 1] exactly; round-off can step just outside


def _stack(layers: np.ndarray, name: str) -> np.ndarray:
    layers = np.asarray(layers)
    if layers.ndim != 3:
        raise ValueError(f"{name} must be [layers, words, dim], got shape {layers.shape}")
    return layers


def cka_matrix(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Linear CKA of every layer of a [La, n, p] against every layer of b [Lb, n, q] → [La, Lb].

    b None compares a with itself: the result is exactly symmetric with 1 on the diagonal (NaN for a layer
    without variance, as everywhere).
    """
    a = _stack(a, "a")
    b_ = a if b is None else _stack(b, "b")
    _check_rows(a.shape[1], b_.shape[1])
    # Centre (and check) each layer once, not once per pair.
    ca = [_centred(layer) for layer in a]
    cb = ca if b is None else [_centred(layer) for layer in b_]
    ia = [i for i, c in enumerate(ca) if c is not None]
    ib = [j for j, c in enumerate(cb) if c is not None]
    out = np.full((len(a), len(b_)), np.nan)
    if not ia or not ib:
        return out
    n, p, q = a.shape[1], a.shape[2], b_.shape[2]
    if _use_gram(n, p, q, len(ia), len(ib), shared=b is None):
        # Each layer's Gram matrix, flattened and normalised: every cross term is then one matrix product.
        ga = np.stack([(ca[i] @ ca[i].T).ravel() for i in ia])
        ga /= np.linalg.norm(ga, axis=1, keepdims=True)
        if b is None:
            gb = ga
        else:
            gb = np.stack([(cb[j] @ cb[j].T).ravel() for j in ib])
            gb /= np.linalg.norm(gb, axis=1, keepdims=True)
        out[np.ix_(ia, ib)] = ga @ gb.T
    else:
        # Self-norms once per layer; with b None only the upper triangle is computed.
        na = {i: np.linalg.norm(ca[i].T @ ca[i]) for i in ia}
        nb = na if b is None else {j: np.linalg.norm(cb[j].T @ cb[j]) for j in ib}
        for i in ia:
            for j in ib:
                if b is None and j < i:
                    continue
                out[i, j] = np.linalg.norm(cb[j].T @ ca[i]) ** 2 / (na[i] * nb[j])
        if b is None:
            out = np.where(np.isnan(out), out.T, out)  # mirror the upper triangle
    out = np.clip(out, 0.0, 1.0)
    if b is None:
        out = (out + out.T) / 2  # x + y == y + x in floating point: exactly symmetric
        out[ia, ia] = 1.0
    return out
