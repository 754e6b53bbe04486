"""A sentence's words layer by layer: norms, cosines between layers, the same word across
sentences, and ELMo's scalar mix as one more "layer" next to the real ones.

Everything works on `WordLayers`: one vector per word per layer (sub-words pooled), so ELMo
(3 layers: 0 = context-free character-CNN token vector, 1-2 = biLSTM) and BERT/GPT (many
layers) go through the same code. With a mix, the mixed vector is appended as the row
labelled "mix", and every view shows it beside the layers it was made from.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..record import Analysis
from .mix import mix_weights, scalar_mix
from .words import Pooling, pool_words

MIX = "mix"
S_RANGE = (-5.0, 5.0)  # the slider range of each s_j; presets stay inside it


@dataclass(frozen=True)
class WordLayers:
    words: tuple[str, ...]  # each word's text, in sentence order
    vectors: np.ndarray  # [layers (+ mix), words, dim]; NaN rows for words cut by truncation
    labels: tuple[str, ...]  # one per row of `vectors`: "0", "1", ..., and "mix" last if mixed

    @property
    def word_labels(self) -> list[str]:
        """Unique labels ("3: bank"): a word may occur twice in a sentence."""
        return [f"{i}: {w}" for i, w in enumerate(self.words)]

    @property
    def layer_rows(self) -> list[int]:
        """Rows of `vectors` that are real layers (not the mix)."""
        return [i for i, label in enumerate(self.labels) if label != MIX]


def word_layers(
    record: Analysis, pooling: Pooling = "mean", mix: tuple[Sequence[float], float] | None = None
) -> WordLayers:
    """Word vectors of every layer of `record`, plus the scalar mix (s, γ) if given.

    Mixing pooled word vectors equals pooling mixed token vectors: both are linear.
    """
    vectors, _ = pool_words(record, pooling)
    labels = [str(j) for j in range(vectors.shape[0])]
    if mix is not None:
        s, gamma = mix
        vectors = np.concatenate([vectors, scalar_mix(vectors, s, gamma)[None]])
        labels.append(MIX)
    return WordLayers(tuple(w.text for w in record.words), vectors, tuple(labels))


def mix_table(s: Sequence[float], gamma: float) -> pd.DataFrame:
    """The mix's parameters per layer: s_j, softmax(s)_j, and γ·softmax(s)_j (the factor on h_j)."""
    w = mix_weights(s)
    return pd.DataFrame(
        {"layer": [str(j) for j in range(len(w))], "s_j": np.asarray(s, dtype=float),
         "weight softmax(s)_j": w, "γ · weight": gamma * w}
    )


def mix_presets(n_states: int) -> dict[str, tuple[list[float], float]]:
    """Named (s, γ) settings for `n_states` hidden states (layer 0 included).

    The ablations of Peters et al. (2018) for ELMo (average, top layer only) and of the
    feature-based BERT of Devlin et al. (2019) (second-to-last layer, sum of the last four).
    "Only" means s = 5 there and -5 elsewhere, so the others weigh e^-10 as much.
    """
    lo, hi = S_RANGE

    def only(rows, gamma=1.0):
        return [hi if j in rows else lo for j in range(n_states)], gamma

    top = n_states - 1
    presets = {
        "equal weights (average of all layers)": ([0.0] * n_states, 1.0),
        "top layer only": only({top}),
        "layer 0 only (no context)": only({0}),
    }
    if n_states > 3:
        presets["second-to-last layer (feature-based BERT)"] = only({top - 1})
    if n_states > 4:
        presets["sum of the last four layers (feature-based BERT)"] = only(set(range(top - 3, top + 1)), 4.0)
    return presets


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine over the last axis; NaN where either vector is zero or missing."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    denominator = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(axis=-1) / denominator, np.nan)


def word_norms(wl: WordLayers) -> pd.DataFrame:
    """L2 norm of every word's vector: rows words, columns layers (and the mix)."""
    norms = np.linalg.norm(wl.vectors.astype(np.float64), axis=-1).T
    return pd.DataFrame(norms, index=wl.word_labels, columns=list(wl.labels))


def default_layer_pairs(wl: WordLayers) -> list[tuple[int, int]]:
    """Adjacent layers, then first↔last (for ELMo: 0↔1, 1↔2, 0↔2), then the mix↔each layer."""
    rows = wl.layer_rows
    pairs = list(zip(rows, rows[1:]))
    if len(rows) > 2:
        pairs.append((rows[0], rows[-1]))
    if MIX in wl.labels:
        pairs += [(wl.labels.index(MIX), j) for j in rows]
    return pairs


def layer_cosines(wl: WordLayers, pairs: Sequence[tuple[int, int]] | None = None) -> pd.DataFrame:
    """Cosine between two layers' vectors of the same word: rows words, one column per pair."""
    pairs = default_layer_pairs(wl) if pairs is None else pairs
    return pd.DataFrame(
        {f"{wl.labels[a]}↔{wl.labels[b]}": _cosine(wl.vectors[a], wl.vectors[b]) for a, b in pairs},
        index=wl.word_labels,
    )


def _is_word(text: str) -> bool:
    # "." ends every sentence: punctuation would always "repeat" but says nothing.
    return any(ch.isalnum() for ch in text)


def cross_sentence_word_cosines(
    sentences: Sequence[WordLayers], words_only: bool = True, sentence: int | None = None,
) -> pd.DataFrame:
    """Every word against each occurrence of the same word (case-insensitive) in the other
    sentences, per layer. Long form, both directions, one row per pair and layer:
    sentence, word_index, word, other_sentence, other_index, other_word, layer, cosine.
    Sentences are numbered from 0; all must come from the same model (same layers).
    sentence: only that sentence's words (its rows of the full table; the full table grows
    with the square of a frequent word's occurrences).
    """
    where: dict[str, list[tuple[int, int]]] = defaultdict(list)  # folded word → (sentence, index)
    for s, wl in enumerate(sentences):
        for i, word in enumerate(wl.words):
            if not words_only or _is_word(word):
                where[word.casefold()].append((s, i))
    columns = ["sentence", "word_index", "word", "other_sentence", "other_index", "other_word",
               "layer", "cosine"]
    rows = []
    for places in where.values():
        for s, i in places:
            if sentence is not None and s != sentence:
                continue
            for t, k in places:
                if t == s:
                    continue
                a, b = sentences[s], sentences[t]
                cos = _cosine(a.vectors[:, i], b.vectors[:, k])
                rows += [(s, i, a.words[i], t, k, b.words[k], label, c) for label, c in zip(a.labels, cos)]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["sentence", "word_index", "other_sentence", "other_index"], kind="stable",
                             ignore_index=True)


def cross_sentence_table(long: pd.DataFrame, sentence: int) -> pd.DataFrame:
    """One sentence's rows of `cross_sentence_word_cosines`, wide: rows "word ↔ where else",
    columns layers (in their order); empty when the sentence shares no word with the others."""
    part = long[long["sentence"] == sentence]
    if part.empty:
        return pd.DataFrame()
    label = (part["word_index"].astype(str) + ": " + part["word"] + " ↔ sentence "
             + (part["other_sentence"] + 1).astype(str) + ", " + part["other_index"].astype(str)
             + ": " + part["other_word"])
    wide = part.assign(pair=label).pivot(index="pair", columns="layer", values="cosine")
    order = list(dict.fromkeys(label))
    return wide.loc[order, list(dict.fromkeys(part["layer"]))].rename_axis(index=None, columns=None)
