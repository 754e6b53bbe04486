"""Layer-wise linear probes with control tasks (Hewitt & Liang 2019), on scikit-learn.

A probe is a linear classifier trained to read a label (part of speech, tree depth) off one
layer's word vectors. High accuracy alone does not show the layer *encodes* the label: a probe
can memorise word types. The control task gives every word type one random label, drawn once
from the real labels' distribution, so only memorising types can solve it; selectivity =
probe accuracy − control accuracy is what the layer adds beyond word identity.

Train and test words come from different sentences, so no sentence is seen twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError

PROBES = {
    "ridge": "least-squares linear classifier (closed form, fast)",
    "logistic": "softmax regression (the usual probe; slower)",
}
MIN_WORDS = 20  # fewer labelled words than this cannot train and test a probe

Progress = Callable[[float, str], None]


def control_labels(types: Sequence[str], labels: Sequence[str], seed: int = 0) -> np.ndarray:
    """One label per word type, drawn from the empirical distribution of `labels` and fixed
    for every occurrence of the type (the control task)."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    rng = np.random.default_rng(seed)
    vocab = sorted(set(types))  # sorted: the same draw whatever the corpus order
    drawn = dict(zip(vocab, rng.choice(classes, size=len(vocab), p=counts / counts.sum())))
    return np.array([drawn[t] for t in types])


def split_by_sentence(sentence_ids: np.ndarray, test_size: float = 0.2, seed: int = 0):
    """(train, test) word indices with every sentence on one side only."""
    from sklearn.model_selection import GroupShuffleSplit

    sentence_ids = np.asarray(sentence_ids)
    if len(np.unique(sentence_ids)) < 2:
        raise InputError("The probes need at least two sentences: one to train on and one to test.")
    split = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    return next(split.split(np.zeros(len(sentence_ids)), groups=sentence_ids))


def make_probe(kind: str, seed: int = 0):
    """A fresh linear probe: features standardised first (one huge dimension, as GPT-style
    models have, would otherwise dominate the penalty)."""
    from sklearn.linear_model import LogisticRegression, RidgeClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "ridge":
        # The p×p normal equations: the fastest solver when words outnumber dimensions.
        return make_pipeline(StandardScaler(), RidgeClassifier(alpha=10.0, solver="cholesky"))
    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=300, tol=1e-3, random_state=seed))
    raise InputError(f"Unknown probe {kind!r}: choose {' or '.join(PROBES)}.")


def probe_accuracy(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, kind: str = "ridge") -> float:
    """Test accuracy of a probe fitted on the train rows. With one class in training the
    probe can only answer that class (sklearn refuses to fit it)."""
    classes = np.unique(y[train])
    if len(classes) == 1:
        return float(np.mean(y[test] == classes[0]))
    return float(make_probe(kind).fit(x[train], y[train]).score(x[test], y[test]))


def majority_accuracy(y: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    """The baseline a probe must beat: always answer the most frequent training label."""
    classes, counts = np.unique(y[train], return_counts=True)
    return float(np.mean(y[test] == classes[np.argmax(counts)]))


def layer_probes(
    vectors: np.ndarray, labels: Sequence[str], types: Sequence[str], sentence_ids: np.ndarray,
    relative_depth: np.ndarray, *, kind: str = "ridge", seed: int = 0, progress: Progress | None = None,
) -> pd.DataFrame:
    """Probe and control accuracy per layer. vectors: [L, N, D] of N labelled words.

    Columns: layer, relative_depth, accuracy, control, selectivity, majority, n_train, n_test.
    """
    labels = np.asarray(labels)
    if vectors.shape[1] != len(labels) or len(labels) != len(types) or len(types) != len(sentence_ids):
        raise ValueError("layer_probes needs one label, type and sentence id per word vector")
    if len(labels) < MIN_WORDS:
        raise InputError(f"The probes need at least {MIN_WORDS} labelled words; these sentences have {len(labels)}.")
    report = progress or (lambda fraction, message: None)
    train, test = split_by_sentence(sentence_ids, seed=seed)
    control = control_labels(types, labels, seed)
    majority = majority_accuracy(labels, train, test)
    rows = []
    for layer in range(vectors.shape[0]):
        report(layer / vectors.shape[0], f"Fitting the probes of layer {layer}")
        x = np.asarray(vectors[layer], dtype=np.float32)
        accuracy = probe_accuracy(x, labels, train, test, kind)
        control_accuracy = probe_accuracy(x, control, train, test, kind)
        rows.append({"layer": layer, "relative_depth": float(relative_depth[layer]), "accuracy": accuracy,
                     "control": control_accuracy, "selectivity": accuracy - control_accuracy,
                     "majority": majority, "n_train": len(train), "n_test": len(test)})
    report(1.0, "Probes fitted")
    return pd.DataFrame(rows)
