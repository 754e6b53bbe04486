"""How contextual are the word vectors, layer by layer? (after Ethayarajh, EMNLP 2019)

Three cosine measures per layer, computed on words of the shared segmentation:
- self-similarity: how alike one word type's vectors are across different sentences
  (1 = the same vector everywhere, i.e. not contextual at all);
- intra-sentence similarity: how alike a sentence's words are to the sentence's mean;
- the anisotropy baseline: how alike two random words from different sentences are.
Vectors crowd into a narrow cone (anisotropy), so raw cosines are high for everything; the
"_adj" columns subtract the baseline, as the paper does.
"""

from __future__ import annotations

from collections import defaultdict
from importlib import resources
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..record import Analysis
from .corpus import CorpusWords, from_records
from .words import Pooling

MIN_OCCURRENCES = 5  # the paper keeps word types seen in at least 5 contexts

Progress = Callable[[float, str], None]

PAPER_FINDINGS = """\
Ethayarajh (2019), "How Contextual are Contextualized Word Representations?" compared
ELMo, BERT and GPT-2 on these measures:

- Upper layers are more context-specific: a word's self-similarity falls as you go up,
  in all three models. Contextuality grows with depth, much as upper LSTM layers are
  more task-specific.
- The vectors are anisotropic in every layer above the input: they fill a narrow cone,
  so even two random words have a clearly positive cosine. Anisotropy grows with depth,
  and GPT-2 is the extreme case: in its last layer, two random words have an almost
  perfect cosine similarity. Measures must therefore be read against that baseline.
- Stopwords such as "the", "of" and "to" are among the most context-specific words (the
  lowest self-similarity), not the least.
- Words in the same sentence behave differently per model: in ELMo they grow more alike
  in upper layers; in BERT they grow less alike but stay more alike than random words; in
  GPT-2 they are no more alike than random words once the baseline is subtracted.
- A static vector explains little: on average under 5% of the variance of a word's
  contextual vectors is captured by their first principal component.

This corpus is far smaller than the paper's (SemEval STS sentences), so read the curves
as an illustration of the shapes, not a replication of the numbers.
"""


def load_corpus() -> list[str]:
    """The built-in contextuality corpus, one sentence per line."""
    text = resources.files("ctxlens").joinpath("data/contextuality_corpus.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def mean_pairwise_cosine(vectors: np.ndarray) -> np.ndarray:
    """[L, n, D] → [L]: mean cosine over the n(n-1) ordered pairs of distinct rows."""
    u = _unit(np.asarray(vectors, dtype=np.float64))
    n = u.shape[1]
    if n < 2:
        return np.full(u.shape[0], np.nan)
    total = (u.sum(axis=1) ** 2).sum(axis=-1)  # sum over all pairs, diagonal included
    diagonal = (u**2).sum(axis=(1, 2))  # 1 per non-zero row
    return (total - diagonal) / (n * (n - 1))


def self_similarity(
    word_vectors_by_type: Mapping[str, np.ndarray], min_occurrences: int = MIN_OCCURRENCES
) -> np.ndarray:
    """Per layer, the mean over word types of the mean pairwise cosine of their occurrences.

    word_vectors_by_type: type → [L+1, n_occurrences, D]. Types seen fewer than
    `min_occurrences` times are ignored; NaN per layer if none is left.
    """
    if not word_vectors_by_type:
        raise InputError("No words to measure.")
    n_layers = next(iter(word_vectors_by_type.values())).shape[0]
    kept = [v for v in word_vectors_by_type.values() if v.shape[1] >= min_occurrences]
    sims = [mean_pairwise_cosine(v) for v in kept]
    if not sims:
        return np.full(n_layers, np.nan)
    return np.mean(sims, axis=0)


def intra_sentence_similarity(sentence_vectors: Sequence[np.ndarray]) -> np.ndarray:
    """Per layer, the mean cosine of a sentence's words to the sentence's mean vector,
    averaged over sentences. sentence_vectors: one [L+1, W, D] array per sentence.

    One-word sentences are skipped (their word is its own mean: cosine 1, says nothing).
    """
    per_sentence = []
    for v in sentence_vectors:
        if v.shape[1] < 2:
            continue
        v = np.asarray(v, dtype=np.float64)
        mean = _unit(v.mean(axis=1, keepdims=True))  # [L, 1, D]
        per_sentence.append((_unit(v) * mean).sum(axis=-1).mean(axis=1))
    if not per_sentence:
        raise InputError("Intra-sentence similarity needs a sentence of at least two words.")
    return np.mean(per_sentence, axis=0)


def anisotropy_baseline(
    vectors: np.ndarray, sentence_ids: np.ndarray, n_pairs: int = 2000, seed: int = 0
) -> np.ndarray:
    """Per layer, the mean cosine of random word pairs taken from different sentences.

    vectors: [L+1, N, D]; sentence_ids: [N]. The first word is drawn uniformly, the second
    uniformly among the words of other sentences. NaN if there is only one sentence.
    """
    ids = np.asarray(sentence_ids)
    if len(np.unique(ids)) < 2:
        return np.full(vectors.shape[0], np.nan)
    rng = np.random.default_rng(seed)
    # Sort words by sentence so "every word outside sentence s" is one range left out.
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    first = rng.integers(0, len(ids), n_pairs)  # positions in the sorted order
    lo = np.searchsorted(sorted_ids, sorted_ids[first], side="left")
    hi = np.searchsorted(sorted_ids, sorted_ids[first], side="right")
    r = (rng.random(n_pairs) * (len(ids) - (hi - lo))).astype(np.int64)
    second = np.where(r < lo, r, r + (hi - lo))
    a = _unit(np.asarray(vectors[:, order[first]], dtype=np.float64))
    b = _unit(np.asarray(vectors[:, order[second]], dtype=np.float64))
    return (a * b).sum(axis=-1).mean(axis=1)


def _is_word(text: str) -> bool:
    # Punctuation would dominate every count ("." ends each sentence) but is not a word.
    return any(ch.isalpha() for ch in text)


def contextuality_report(
    records: Sequence[Analysis],
    pooling: Pooling = "mean",
    progress: Progress | None = None,
    min_occurrences: int = MIN_OCCURRENCES,
    n_pairs: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """The three measures per layer for one model's records (one record per sentence); see
    `corpus_contextuality` for the columns."""
    if not records:
        raise InputError("No sentences to analyse.")
    shape = records[0].hidden_states.shape
    if any(r.hidden_states.shape[::2] != shape[::2] for r in records):
        raise ValueError("contextuality_report takes the records of a single model")
    report = progress or (lambda fraction, message: None)
    corpus = from_records(records, [r.text for r in records], pooling, progress=report)
    return corpus_contextuality(corpus, progress=report, min_occurrences=min_occurrences, n_pairs=n_pairs, seed=seed)


def corpus_contextuality(
    corpus: CorpusWords,
    progress: Progress | None = None,
    min_occurrences: int = MIN_OCCURRENCES,
    n_pairs: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """The three measures per layer over a corpus's words (punctuation left out).

    Columns: model, layer, relative_depth, self_similarity, intra_sentence, baseline,
    self_similarity_adj, intra_sentence_adj, n_types (word types measured).
    """
    report = progress or (lambda fraction, message: None)
    keep = np.array([i for i, w in enumerate(corpus.words) if _is_word(w)], dtype=np.int64)
    if not len(keep):
        raise InputError("No words found in the sentences.")
    words = corpus.vectors[:, keep]  # [L, N, D]
    sentence_ids = corpus.sentence_id[keep]
    by_type: dict[str, list[int]] = defaultdict(list)  # type → columns, one per sentence: contexts must differ
    seen = set()
    for column, (s, text) in enumerate(zip(sentence_ids.tolist(), (corpus.words[i] for i in keep))):
        if (s, text.lower()) not in seen:
            seen.add((s, text.lower()))
            by_type[text.lower()].append(column)
    n_layers = words.shape[0]

    report(0.85, "Measuring self-similarity")
    frequent = {t: words[:, idx] for t, idx in by_type.items() if len(idx) >= min_occurrences}
    self_sim = self_similarity(frequent, min_occurrences) if frequent else np.full(n_layers, np.nan)
    report(0.9, "Measuring intra-sentence similarity")
    sentences = [words[:, sentence_ids == s] for s in np.unique(sentence_ids)]
    if any(v.shape[1] > 1 for v in sentences):
        intra = intra_sentence_similarity(sentences)
    else:
        intra = np.full(n_layers, np.nan)
    report(0.95, "Measuring the anisotropy baseline")
    baseline = anisotropy_baseline(words, sentence_ids, n_pairs, seed)
    report(1.0, "Done")
    return pd.DataFrame(
        {
            "model": corpus.model,
            "layer": corpus.layers,
            "relative_depth": corpus.relative_depth,
            "self_similarity": self_sim,
            "intra_sentence": intra,
            "baseline": baseline,
            "self_similarity_adj": self_sim - baseline,
            "intra_sentence_adj": intra - baseline,
            "n_types": len(frequent),
        }
    )
