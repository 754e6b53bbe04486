"""Layer-wise probes of a model on a corpus (cached per model, corpus, task and probe), and the
scalar mix a probe learns over all layers (ELMo's task-specific mix, Peters et al. 2018;
Tenney et al. 2019 read BERT's the same way)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..analysis.corpus import CorpusWords
from ..analysis.mix import fit_scalar_mix
from ..analysis.probing import layer_probes, split_by_sentence
from ..analysis.words import Pooling
from ..cache import cached
from ..models import catalog as cat
from ..models.loading import Progress
from .corpus import bundled_corpus, corpus_words
from .labels import TASKS, tag_corpus
from .registry import register


def labelled_rows(corpus: CorpusWords, task: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows of `corpus`, their labels) for the words the tagger labelled."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: {', '.join(TASKS)}")
    labels = tag_corpus(corpus.texts)
    rows = corpus.rows_of(labels.sentence_id, labels.word_index)
    kept = rows >= 0  # words the model's truncation cut off have no vector
    return rows[kept], labels.labels[task][kept]


def probe_corpus(corpus: CorpusWords, task: str = "pos", kind: str = "ridge", seed: int = 0,
                 progress: Progress | None = None) -> pd.DataFrame:
    """Probe, control and selectivity per layer of one model's corpus words (see layer_probes)."""
    rows, labels = labelled_rows(corpus, task)
    types = [corpus.words[r].casefold() for r in rows]
    frame = layer_probes(corpus.vectors[:, rows], labels, types, corpus.sentence_id[rows], corpus.relative_depth,
                         kind=kind, seed=seed, progress=progress)
    frame["layer"] = corpus.layers
    frame.insert(0, "model", corpus.model)
    frame.insert(1, "task", task)
    return frame


def probe_curves(model: str, task: str = "pos", kind: str = "ridge", *, texts: Sequence[str] | None = None,
                 pooling: Pooling = "mean", device: str | None = None, dtype: str | None = None,
                 progress: Progress | None = None) -> pd.DataFrame:
    """`probe_corpus` on `model`'s words of `texts` (default: the bundled corpus), cached."""
    texts = bundled_corpus() if texts is None else tuple(texts)
    corpus = corpus_words(model, texts, pooling=pooling, device=device, dtype=dtype, progress=progress)
    key = ("probes", model, device, dtype, pooling, texts, task, kind)
    return cached(key, lambda: probe_corpus(corpus, task, kind, progress=progress))


def learned_mix(corpus: CorpusWords, task: str = "pos", seed: int = 0) -> pd.DataFrame:
    """The scalar-mix weights a softmax probe on the mix of all layers learns for `task`,
    beside the probe's test accuracy on the mix. Columns: model, task, layer, relative_depth,
    weight, gamma, accuracy."""
    rows, labels = labelled_rows(corpus, task)
    train, test = split_by_sentence(corpus.sentence_id[rows], seed=seed)
    fit = fit_scalar_mix(corpus.vectors[:, rows], labels, train, test, seed=seed)
    return pd.DataFrame({"model": corpus.model, "task": task, "layer": corpus.layers,
                         "relative_depth": corpus.relative_depth, "weight": fit.weights, "gamma": fit.gamma,
                         "accuracy": fit.accuracy})


register("probes", "Layer-wise probes", "linear probes for part of speech and tree depth per layer, with control "
         "tasks and selectivity (Hewitt & Liang 2019)", [cat.HIDDEN], probe_curves, task="pos", kind="ridge")
register("learned-mix", "Learned scalar mix", "the weights over layers a probe learns for a task (ELMo's scalar "
         "mix)", [cat.HIDDEN], learned_mix, task="pos")
