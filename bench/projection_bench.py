"""UMAP on 500 real word vectors after warm-up, next to PCA and t-SNE on the same points.

The vectors are MiniLM's middle-layer word vectors of the contextuality corpus (what the
Polysemy lab projects, at the size of a large class set). UMAP's first call in a process
compiles its numba kernels; the app pays that once in a background thread (warm_up_umap),
so the figure that matters is the call after it.
"""

from __future__ import annotations

import time

import numpy as np
from common import device_line, timed_side_by_side

from ctxlens.analysis.contextuality import load_corpus
from ctxlens.analysis.polysemy import project, warm_up_umap
from ctxlens.analysis.words import pool_words
from ctxlens.models.registry import analyze_texts

MODEL = "all-MiniLM-L6-v2"
N_POINTS = 500


def word_vectors(n: int) -> np.ndarray:
    records = analyze_texts(MODEL, load_corpus(), hidden_only=True)
    middle = records[0].n_layers // 2
    rows = []
    for record in records:
        vectors, present = pool_words(record, "mean", layers=np.array([middle]))
        rows.extend(vectors[0, present])
    if len(rows) < n:
        raise RuntimeError(f"the corpus gives {len(rows)} word vectors, fewer than {n}")
    return np.stack(rows[:n])


def main() -> None:
    print(device_line())
    x = word_vectors(N_POINTS)
    start = time.perf_counter()
    warm_up_umap()
    compile_s = time.perf_counter() - start
    t = timed_side_by_side(
        {method: (lambda m=method: project(x, m, seed=0)) for method in ("pca", "umap", "tsne")},
        repeats=3, warmup=1,
    )
    print(f"{N_POINTS} points x {x.shape[1]} dims (MiniLM middle layer); UMAP warm-up (numba "
          f"compile, once per process): {compile_s:.2f} s")
    for method in ("umap", "tsne"):
        print(f"{method.upper():5} {t[method] * 1000:8.0f} ms / PCA {t['pca'] * 1000:6.1f} ms = "
              f"{t[method] / t['pca']:6.0f}x")


if __name__ == "__main__":
    main()
