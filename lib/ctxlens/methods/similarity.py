"""Model vs model: linear CKA between every pair of layers of two models (or of one model with
itself) on the same words of the same sentences (Kornblith et al. 2019; Ecco shows it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..analysis.similarity import cka_matrix, linear_cka
from ..analysis.words import Pooling
from ..cache import cached
from ..errors import InputError
from ..models import catalog as cat
from ..models.loading import Progress
from .corpus import bundled_corpus, corpus_words
from .registry import register


@dataclass(frozen=True)
class LayerSimilarity:
    model_a: str
    model_b: str
    layers_a: np.ndarray  # [La]
    layers_b: np.ndarray  # [Lb]
    depth_a: np.ndarray  # [La] relative depth
    depth_b: np.ndarray  # [Lb]
    cka: np.ndarray  # [La, Lb]
    n_words: int  # words both models read (the rows CKA compares)
    chance: float = float("nan")  # the last layers' CKA with B's words shuffled: unrelated vectors' level

    @property
    def nbytes(self) -> int:
        return int(self.cka.nbytes + self.depth_a.nbytes + self.depth_b.nbytes)

    def best_match(self) -> np.ndarray:
        """For each layer of model A, the layer of model B most similar to it (NaN-safe)."""
        filled = np.where(np.isnan(self.cka), -np.inf, self.cka)
        return self.layers_b[filled.argmax(axis=1)]


def layer_similarity(model_a: str, model_b: str | None = None, *, texts: Sequence[str] | None = None,
                     pooling: Pooling = "mean", device: str | None = None, dtype: str | None = None,
                     progress: Progress | None = None) -> LayerSimilarity:
    """CKA of every layer of `model_a` with every layer of `model_b` (default: itself) on the
    words of `texts` (default: the bundled corpus) that both models read, word-aligned by the
    shared segmentation and pooled the same way."""
    model_b = model_b or model_a
    texts = bundled_corpus() if texts is None else tuple(texts)
    a = corpus_words(model_a, texts, pooling=pooling, device=device, dtype=dtype, progress=progress)
    b = corpus_words(model_b, texts, pooling=pooling, device=device, dtype=dtype, progress=progress)

    def compute() -> LayerSimilarity:
        rows_a = a.rows_of(b.sentence_id, b.word_index)  # b's words in a (-1: cut off in a)
        both = rows_a >= 0
        if both.sum() < 3:
            raise InputError("The two models share fewer than 3 words of these sentences: CKA needs more.")
        x, y = a.vectors[:, rows_a[both]], b.vectors[:, both]
        matrix = cka_matrix(x) if model_a == model_b else cka_matrix(x, y)
        # Linear CKA is biased upwards on few words: shuffled rows show what unrelated vectors score.
        shuffled = np.random.default_rng(0).permutation(y.shape[1])
        chance = linear_cka(x[-1], y[-1][shuffled])
        return LayerSimilarity(model_a, model_b, a.layers, b.layers, a.relative_depth, b.relative_depth,
                               matrix, int(both.sum()), chance)

    return cached(("cka", model_a, model_b, device, dtype, pooling, texts), compute)


register("layer-similarity", "Model vs model", "linear CKA between every pair of layers of two models on the same "
         "words", [cat.HIDDEN], layer_similarity)
