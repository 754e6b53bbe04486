"""Multilingual BERT's cross-lingual alignment: word translation retrieval, layer by layer.

The bundled set (`data/crosslingual_pairs.json`, written for this project) holds English
sentences, their German and French translations, and 1–3 aligned content words a pair
(dog → Hund). A model reads the English sentences and the other language's as two corpora
(`corpus_words`: the shared word segmentation and sub-word pooling); at every layer each aligned
English word retrieves among the aligned words of the other language, over all pairs (the
candidates of the course notes' table), by cosine, and the other way round: precision@1 and MRR,
from the raw vectors and from vectors with each language's mean subtracted (the mean of every
word of that language's sentences at that layer).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib import resources

import numpy as np
import pandas as pd

from ..analysis import crosslingual as xl
from ..analysis.corpus import CorpusWords
from ..analysis.polysemy import find_target
from ..analysis.words import Pooling, split_words
from ..cache import cached
from ..errors import InputError
from ..models import catalog as cat
from ..models.loading import Progress
from ..validate import clean_text
from .corpus import corpus_words
from .registry import check, register

ENGLISH = "en"
METHOD = "crosslingual"


@dataclass(frozen=True)
class SentencePair:
    """An English sentence, its translation, and aligned words (English word, its translation)."""

    en: str
    other: str
    align: tuple[tuple[str, str], ...]


@lru_cache(maxsize=1)
def _bundled() -> dict:
    return json.loads(resources.files("ctxlens").joinpath("data/crosslingual_pairs.json").read_text("utf-8"))


def languages() -> dict[str, str]:
    """{code: name} of the languages the bundled set pairs with English."""
    return dict(_bundled()["languages"])


def load_pairs(language: str = "de") -> tuple[SentencePair, ...]:
    """The bundled English–`language` sentence pairs with their word alignments."""
    if language not in (names := languages()):
        raise InputError(f"No sentence pairs for '{language}': the set pairs English with "
                         f"{', '.join(f'{n} ({c})' for c, n in names.items())}.")
    return tuple(SentencePair(p[ENGLISH], p[language], tuple(tuple(a) for a in p["align"][language]))
                 for p in _bundled()["pairs"])


def bundled_source() -> str:
    """Where the bundled sentences come from, as the file says."""
    return _bundled()["source"]


@dataclass
class AlignedWords:
    """The aligned words of a set of sentence pairs, read by one model, at every layer."""

    model: str
    language: str
    english: list[str]  # [A] the aligned English words
    other: list[str]  # [A] their translations
    pair: np.ndarray  # [A] the sentence pair of each alignment
    en_vectors: np.ndarray  # [L, A, D]
    other_vectors: np.ndarray  # [L, A, D]
    en_mean: np.ndarray  # [L, D] the mean of every word of the English sentences
    other_mean: np.ndarray  # [L, D] the same for the other language's sentences
    layers: np.ndarray  # [L]
    relative_depth: np.ndarray  # [L]
    skipped: list[str] = field(default_factory=list)  # alignments a word of which has no vector ("dog → Hund")

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in (self.en_vectors, self.other_vectors, self.en_mean, self.other_mean)))

    @cached_property
    def relevant(self) -> np.ndarray:
        """[A, A]: which candidates are a right answer for each query (the same word pair)."""
        return xl.same_pair(self.english, self.other)

    def position(self, layer: int) -> int:
        """Where model layer `layer` sits in the vectors."""
        hits = np.flatnonzero(self.layers == layer)
        if not len(hits):
            raise InputError(f"{self.model} has layers {self.layers[0]}–{self.layers[-1]}, not layer {layer}.")
        return int(hits[0])


def _word_index(text: str, word: str) -> int:
    """The index of `word` in `text` (the shared segmentation); it must occur exactly once."""
    hits = find_target(split_words(text), word)
    if len(hits) != 1:
        raise InputError(f"'{word}' must occur exactly once as a whole word in \"{text}\" (found {len(hits)}).")
    return hits[0]


def aligned_words(model: str, language: str = "de", *, pairs: Sequence[SentencePair] | None = None,
                  pooling: Pooling = "mean", device: str | None = None, dtype: str | None = None,
                  progress: Progress | None = None) -> AlignedWords:
    """The aligned words' vectors at every layer of `model` (default pairs: the bundled set),
    computed once per model, pairs and pooling. Alignments a word of which has no vector are
    left out and named in `skipped`."""
    from ..models.registry import get_model

    pairs = load_pairs(language) if pairs is None else tuple(pairs)
    # Cleaned as the records read them, so word indices point into the texts the model reads.
    texts = {side: [clean_text(getattr(p, side), "sentence") for p in pairs] for side in ("en", "other")}
    where = [(i, a, b, _word_index(texts["en"][i], a), _word_index(texts["other"][i], b))
             for i, p in enumerate(pairs) for a, b in p.align]  # checked before any model loads
    if not where:
        raise InputError("No aligned words in the sentence pairs.")
    check(METHOD, get_model(model, device, progress, dtype).spec)
    report = progress or (lambda fraction, message: None)

    def read(side: str, start: float, name: str) -> CorpusWords:
        return corpus_words(model, texts[side], pooling=pooling, device=device, dtype=dtype,
                            progress=lambda f, m: report(start + f / 2, f"{name}: {m}"))

    def compute() -> AlignedWords:
        en, other = read("en", 0.0, "English"), read("other", 0.5, languages().get(language, language))
        sentence = np.array([w[0] for w in where], np.int64)
        en_rows = en.rows_of(sentence, np.array([w[3] for w in where], np.int64))
        other_rows = other.rows_of(sentence, np.array([w[4] for w in where], np.int64))
        # -1: the word was cut off by truncation, or the tokenizer gave it no token of its own.
        found = (en_rows >= 0) & (other_rows >= 0)
        if not found.any():
            raise InputError(f"{model} gives none of the aligned words a vector.")
        en_rows, other_rows = en_rows[found], other_rows[found]
        return AlignedWords(
            model=model, language=language, english=[en.words[r] for r in en_rows],
            other=[other.words[r] for r in other_rows], pair=sentence[found],
            en_vectors=en.vectors[:, en_rows], other_vectors=other.vectors[:, other_rows],
            en_mean=en.vectors.mean(axis=1, dtype=np.float64), other_mean=other.vectors.mean(axis=1, dtype=np.float64),
            layers=en.layers, relative_depth=en.relative_depth,
            skipped=[f"{w[1]} → {w[2]}" for w, ok in zip(where, found.tolist()) if not ok],
        )

    return cached(("crosslingual-words", model, device, dtype, pooling, language, pairs), compute)


def directions(language: str) -> tuple[str, str]:
    return f"{ENGLISH}→{language}", f"{language}→{ENGLISH}"


def similarity(aligned: AlignedWords, position: int, direction: str, centred: bool) -> np.ndarray:
    """Cosines [A, A] of the queries with the candidates of `direction` at layer position `position`."""
    forward, backward = directions(aligned.language)
    if direction not in (forward, backward):
        raise InputError(f"The direction is {forward} or {backward}, not {direction}.")
    en, other = aligned.en_vectors[position], aligned.other_vectors[position]
    if centred:
        en, other = xl.centre(en, aligned.en_mean[position]), xl.centre(other, aligned.other_mean[position])
    queries, candidates = (en, other) if direction == forward else (other, en)
    return xl.cosine_matrix(queries, candidates)


def retrieval_table(aligned: AlignedWords) -> pd.DataFrame:
    """One row per layer, direction and centring: precision@1, MRR, the number of queries and
    candidates, and the chance levels (a random order of the candidates)."""
    relevant = aligned.relevant
    chance_p1, chance_mrr = xl.chance(relevant)
    rows = []
    for position, layer in enumerate(aligned.layers.tolist()):
        for direction in directions(aligned.language):
            for centred in (False, True):
                cosines = similarity(aligned, position, direction, centred)
                ranks = xl.retrieval_ranks(cosines, relevant)
                rows.append({"model": aligned.model, "layer": layer,
                             "relative_depth": float(aligned.relative_depth[position]), "direction": direction,
                             "centred": centred, "precision_at_1": xl.precision_at_1(ranks),
                             "mrr": xl.mean_reciprocal_rank(ranks), "queries": len(ranks),
                             "candidates": cosines.shape[1], "chance_precision_at_1": chance_p1,
                             "chance_mrr": chance_mrr})
    return pd.DataFrame(rows)


def crosslingual_table(model: str, language: str = "de", *, pairs: Sequence[SentencePair] | None = None,
                       pooling: Pooling = "mean", device: str | None = None, dtype: str | None = None,
                       progress: Progress | None = None) -> pd.DataFrame:
    """The per-layer retrieval table of `model` on English–`language` (see `retrieval_table`)."""
    return retrieval_table(aligned_words(model, language, pairs=pairs, pooling=pooling, device=device,
                                         dtype=dtype, progress=progress))


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """The table as the course notes print it: a row per layer, a column per direction, measure
    and centring (e.g. "en→de P@1", "en→de MRR centred")."""
    parts = []
    for measure, label in (("precision_at_1", "P@1"), ("mrr", "MRR")):
        names = [f"{d} {label}{' centred' if c else ''}" for d, c in zip(table.direction, table.centred)]
        part = table.assign(column=names)
        parts.append(part.pivot(index="layer", columns="column", values=measure))
    out = pd.concat(parts, axis=1)
    order = [f"{d} {label}{suffix}" for d in dict.fromkeys(table.direction)
             for label in ("P@1", "MRR") for suffix in ("", " centred")]
    return out[order].reset_index()


def word_retrieval(aligned: AlignedWords, layer: int, direction: str, centred: bool = False) -> pd.DataFrame:
    """Each query word at model layer `layer`: its translation, the word it retrieves first,
    the translation's rank and both cosines."""
    cosines, relevant = similarity(aligned, aligned.position(layer), direction, centred), aligned.relevant
    ranks = xl.retrieval_ranks(cosines, relevant)
    first = xl.retrieved(cosines, relevant, ranks)
    forward = direction == directions(aligned.language)[0]
    queries, candidates = (aligned.english, aligned.other) if forward else (aligned.other, aligned.english)
    gold = np.where(relevant, cosines, -np.inf).max(axis=1)
    return pd.DataFrame({
        "word": queries, "translation": candidates, "retrieved": [candidates[i] for i in first],
        "rank": ranks, "correct": ranks == 1, "cosine_translation": gold,
        "cosine_retrieved": cosines[np.arange(len(first)), first], "pair": aligned.pair,
    })


register(METHOD, "Cross-lingual alignment", "word translation retrieval between English and another language, "
         "layer by layer (precision@1 and MRR, raw and mean-centred)", [cat.HIDDEN], crosslingual_table,
         pooling="mean")
