"""Layer-wise probes, control tasks, the learned scalar mix and the spaCy silver labels.

Constructed data first (a layer that carries the label linearly among noise layers; random
vectors whose label is fixed per word type), then the tagger on hand-checked sentences, then
real weights (MiniLM on the bundled corpus).
"""

from collections import Counter

import numpy as np
import pytest
import torch

from ctxlens.analysis.mix import fit_scalar_mix
from ctxlens.analysis.probing import (
    MIN_WORDS,
    control_labels,
    layer_probes,
    majority_accuracy,
    make_probe,
    probe_accuracy,
    split_by_sentence,
)
from ctxlens.analysis.words import split_words
from ctxlens.errors import InputError

CLASSES = np.array(["ADJ", "NOUN", "VERB"])


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The scalar mix runs 300 Adam steps on tiny tensors: on a busy 2-core machine torch's
    thread pool makes each step wait on its other thread (~50x slower). One thread here only."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def constructed(n_sentences=60, per_sentence=10, n_layers=4, dim=16, signal=2, separation=4.0, n_types=80, seed=0):
    """Gaussian word vectors [L, N, D]; labels drawn independently of the word type. Layer
    `signal` (None: no layer) adds a class mean of norm `separation` (class means along
    random directions), so it carries the label linearly; the other layers are pure noise."""
    rng = np.random.default_rng(seed)
    n = n_sentences * per_sentence
    sentence_ids = np.repeat(np.arange(n_sentences), per_sentence)
    y = rng.integers(0, len(CLASSES), n)
    types = [f"w{t}" for t in rng.integers(0, n_types, n)]
    x = rng.normal(size=(n_layers, n, dim))
    if signal is not None:
        means = rng.normal(size=(len(CLASSES), dim))
        x[signal] += (separation * means / np.linalg.norm(means, axis=1, keepdims=True))[y]
    return x.astype(np.float32), CLASSES[y], types, sentence_ids


def depths(n_layers):
    return np.linspace(0.0, 1.0, n_layers)


# ---------------------------------------------------------------- layer_probes on constructed data


@pytest.mark.parametrize("kind,n_sentences", [("ridge", 60), ("logistic", 20)])  # logistic: small N, fast
def test_accuracy_peaks_at_the_one_layer_that_carries_the_label(kind, n_sentences):
    x, labels, types, sids = constructed(n_sentences=n_sentences)
    frame = layer_probes(x, labels, types, sids, depths(4), kind=kind)
    assert frame.layer.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(frame.relative_depth, depths(4))
    assert frame.accuracy.idxmax() == 2
    # Class means 4 noise sd apart (pairwise ~5.7 sd in 16 dims): a linear probe is nearly perfect.
    assert frame.accuracy[2] > 0.9
    others = frame.accuracy.drop(2)
    assert frame.accuracy[2] - others.max() > 0.3
    # Labels are independent of the word type, so the control task (a label per type) is not
    # readable off the signal layer: selectivity is large there, and near 0 on noise layers
    # (n_test >= 40, so one accuracy's sd is <= 0.08).
    assert frame.selectivity[2] > 0.4
    assert (frame.selectivity.drop(2).abs() < 0.3).all()
    np.testing.assert_allclose(frame.selectivity, frame.accuracy - frame.control, atol=1e-12)
    # Bookkeeping: one split for all layers, the majority baseline computed on it.
    train, test = split_by_sentence(sids)
    assert (frame.n_train == len(train)).all() and (frame.n_test == len(test)).all()
    np.testing.assert_allclose(frame.majority, majority_accuracy(labels, train, test))


def test_random_vectors_give_no_selectivity_when_the_label_is_a_word_type_property():
    # Labels fixed per word type (like the control task itself), vectors pure noise: neither the
    # real nor the control labels can be read off the vectors, so both sit near chance and their
    # difference near 0. n_test ~ 400: each accuracy has binomial sd <= 0.025, a difference
    # (correlated through the shared split, but bound by independence) <= 0.035; 0.1 is ~3 sd.
    rng = np.random.default_rng(1)
    n_sentences, per = 200, 10
    n = n_sentences * per
    types = [f"w{t}" for t in rng.integers(0, 300, n)]
    label_of = {t: CLASSES[rng.integers(0, 3)] for t in sorted(set(types))}
    labels = np.array([label_of[t] for t in types])
    x = rng.normal(size=(3, n, 12)).astype(np.float32)
    sids = np.repeat(np.arange(n_sentences), per)
    frame = layer_probes(x, labels, types, sids, depths(3))
    assert (frame.selectivity.abs() < 0.1).all()
    # Each task near its own majority baseline (the control's majority class may differ).
    train, test = split_by_sentence(sids)
    baseline = {"accuracy": majority_accuracy(labels, train, test),
                "control": majority_accuracy(control_labels(types, labels, 0), train, test)}
    chance = 1 / len(CLASSES)
    for column in ("accuracy", "control"):
        assert (frame[column] < baseline[column] + 0.08).all()
        assert (frame[column] > chance - 0.1).all()


def test_layer_probes_input_errors():
    x, labels, types, sids = constructed(n_sentences=2, per_sentence=20)
    with pytest.raises(ValueError):
        layer_probes(x, labels[:-1], types, sids, depths(4))
    few = MIN_WORDS - 1
    with pytest.raises(InputError, match="at least"):
        layer_probes(x[:, :few], labels[:few], types[:few], sids[:few], depths(4))
    with pytest.raises(InputError, match="two sentences"):
        layer_probes(x, labels, types, np.zeros(len(labels), int), depths(4))
    with pytest.raises(InputError, match="Unknown probe"):
        make_probe("svm")


def test_progress_reports_every_layer_in_order():
    x, labels, types, sids = constructed(n_sentences=10, n_layers=3)
    calls = []
    layer_probes(x, labels, types, sids, depths(3), progress=lambda f, m: calls.append(f))
    assert calls == sorted(calls) and calls[-1] == 1.0 and len(calls) == 4


# ---------------------------------------------------------------- control labels


def test_control_labels_are_fixed_per_type_and_follow_the_label_distribution():
    rng = np.random.default_rng(2)
    n_types = 5000
    p = np.array([0.5, 0.3, 0.2])
    # Two occurrences per type; the real labels have distribution p over occurrences.
    types = [f"t{i}" for i in range(n_types)] * 2
    labels = CLASSES[rng.choice(3, size=len(types), p=p)]
    control = control_labels(types, labels, seed=0)
    assert control.shape == (len(types),)
    first = {}
    for t, c in zip(types, control):
        assert first.setdefault(t, c) == c  # one label per type
    observed = Counter(labels)
    expected = np.array([observed[c] for c in CLASSES]) / len(labels)
    drawn = Counter(first.values())
    frequencies = np.array([drawn[c] for c in CLASSES]) / n_types
    # Multinomial draw of 5000 types: sd of a frequency <= sqrt(0.25 / 5000) ~ 0.007; 0.03 is > 4 sd.
    np.testing.assert_allclose(frequencies, expected, atol=0.03)
    assert set(first.values()) <= set(labels)


def test_control_labels_are_seeded_and_independent_of_corpus_order():
    rng = np.random.default_rng(3)
    types = [f"t{i}" for i in rng.integers(0, 200, 1000)]
    labels = CLASSES[rng.integers(0, 3, 1000)]
    a = control_labels(types, labels, seed=5)
    np.testing.assert_array_equal(a, control_labels(types, labels, seed=5))
    assert not np.array_equal(a, control_labels(types, labels, seed=6))
    order = rng.permutation(len(types))
    shuffled = control_labels([types[i] for i in order], labels[order], seed=5)
    mapping = dict(zip(types, a))
    assert dict(zip([types[i] for i in order], shuffled)) == mapping


# ---------------------------------------------------------------- splits and baselines


def test_split_by_sentence_keeps_each_sentence_on_one_side():
    rng = np.random.default_rng(4)
    for seed in range(5):
        sids = rng.integers(0, 37, 500)
        train, test = split_by_sentence(sids, seed=seed)
        assert not set(sids[train]) & set(sids[test])
        assert sorted(np.concatenate([train, test]).tolist()) == list(range(500))
        # 20 % of the sentences (rounded up by sklearn) go to the test side.
        assert len(set(sids[test])) == int(np.ceil(0.2 * len(set(sids))))
    with pytest.raises(InputError):
        split_by_sentence(np.full(10, 3))


def test_majority_accuracy_by_hand_and_with_a_tie():
    y = np.array(["a", "b", "a", "c", "a", "b", "a", "b", "c", "c"])
    train, test = np.arange(6), np.arange(6, 10)  # train: a×3, b×2, c×1 → answer "a"; test: a b c c
    assert majority_accuracy(y, train, test) == pytest.approx(1 / 4)
    tied = np.array([0, 1, 3, 5])  # train a, b, c, b → b
    assert majority_accuracy(y, tied, test) == pytest.approx(1 / 4)
    # A tie (a×2, b×2): the answer is one of the tied classes, whichever.
    y2 = np.array(["a", "a", "b", "b", "a", "b", "b"])
    got = majority_accuracy(y2, np.arange(4), np.arange(4, 7))
    assert got == pytest.approx(1 / 3) or got == pytest.approx(2 / 3)


def test_probe_accuracy_with_one_class_in_training_answers_that_class():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(12, 4))
    y = np.array(["a"] * 8 + ["a", "b", "b", "b"])
    for kind in ("ridge", "logistic"):
        assert probe_accuracy(x, y, np.arange(8), np.arange(8, 12), kind) == pytest.approx(1 / 4)
    # And one label everywhere: probe, control and majority are all perfect, selectivity 0.
    x, _, types, sids = constructed(n_sentences=6, n_layers=2, signal=None)
    frame = layer_probes(x, np.full(len(types), "NOUN"), types, sids, depths(2))
    np.testing.assert_allclose(frame[["accuracy", "control", "majority"]].to_numpy(), 1.0)
    np.testing.assert_allclose(frame.selectivity, 0.0, atol=1e-12)


# ---------------------------------------------------------------- learned scalar mix


def test_scalar_mix_weights_the_layer_that_carries_the_label():
    x, labels, _, sids = constructed(signal=2)
    train, test = split_by_sentence(sids)
    fit = fit_scalar_mix(x, labels, train, test)
    assert fit.weights.shape == (4,) and fit.weights.sum() == pytest.approx(1.0)
    assert np.argmax(fit.weights) == 2
    assert fit.weights[2] > 0.5 and fit.weights[2] > 3 * np.delete(fit.weights, 2).max()
    assert fit.accuracy > 0.9
    # Reproducible for a seed.
    again = fit_scalar_mix(x, labels, train, test)
    np.testing.assert_allclose(again.weights, fit.weights, atol=1e-5)


def test_scalar_mix_without_signal_scores_the_majority_baseline():
    x, labels, _, sids = constructed(signal=None)
    train, test = split_by_sentence(sids)
    fit = fit_scalar_mix(x, labels, train, test)
    assert fit.weights.sum() == pytest.approx(1.0)
    # n_test = 120: sd of an accuracy ~0.045; 0.15 is > 3 sd (and chance is 1/3 for 3 classes).
    assert abs(fit.accuracy - majority_accuracy(labels, train, test)) < 0.15


# ---------------------------------------------------------------- silver labels (spaCy)


@pytest.fixture(scope="module")
def labels_module():
    from ctxlens.methods import labels

    try:
        labels.label_source()
    except Exception as exc:  # CapabilityMissing: the pipeline is in requirements.txt
        pytest.fail(f"spaCy's pipeline is missing: {exc}")
    return labels


SENTENCES = [
    "The dog barked.",
    "I don't like the U.S. economy.",
    "She reads a book.",
]


def test_tag_corpus_universal_pos_and_depth(labels_module):
    tagged = labels_module.tag_corpus(SENTENCES)
    assert tagged.n_words == sum(len(split_words(s)) for s in SENTENCES)
    got = {}
    for s, w, pos, depth in zip(tagged.sentence_id, tagged.word_index, tagged.labels["pos"], tagged.labels["depth"]):
        got[(int(s), split_words(SENTENCES[s])[w].text)] = (str(pos), int(depth))
    assert got[(0, "The")] == ("DET", 2)  # The → dog → barked
    assert got[(0, "dog")] == ("NOUN", 1)
    assert got[(0, "barked")] == ("VERB", 0)  # the root
    assert got[(0, ".")][0] == "PUNCT"
    assert got[(2, "reads")] == ("VERB", 0)
    assert got[(2, "book")][0] == "NOUN" and got[(2, "a")][0] == "DET"
    # spaCy reads "don't" as do + n't and "U.S." as one token: none of our pieces is labelled.
    pieces = {(1, i) for i, w in enumerate(split_words(SENTENCES[1])) if w.text in ("don", "'", "t", "U", "S")}
    pieces |= {(1, 7)}  # the "." inside U.S.
    labelled = set(zip(tagged.sentence_id.tolist(), tagged.word_index.tolist()))
    assert split_words(SENTENCES[1])[7].text == "."
    assert not pieces & labelled
    assert (1, len(split_words(SENTENCES[1])) - 1) in labelled  # the final "." is
    assert len(labelled) < tagged.n_words
    for task in ("pos", "depth"):
        assert len(tagged.labels[task]) == len(tagged.sentence_id)
    assert set(tagged.labels["depth"]) <= {"0", "1", "2", "3", "4"}


def test_deep_words_share_the_top_depth_class(labels_module):
    text = "The owner of the house of the friend of the teacher of my cousin left."
    tagged = labels_module.tag_corpus([text])
    depths_seen = tagged.labels["depth"].astype(int)
    assert depths_seen.max() == labels_module.MAX_DEPTH  # deeper words are clipped, not dropped
    assert (depths_seen == 0).sum() == 1


def test_label_source_names_an_mit_pipeline_with_its_accuracies(labels_module):
    source = labels_module.label_source()
    assert source.licence == "MIT" and source.silver
    for task in ("pos", "depth"):
        score, what = source.accuracy[task]
        assert 0.5 < score < 1 and what
        assert f"{score:.1%}" in source.describe(task)


# ---------------------------------------------------------------- real weights


def test_minilm_pos_probes_beat_the_baseline_at_every_layer():
    from ctxlens.methods.probes import probe_curves

    frame = probe_curves("all-MiniLM-L6-v2", "pos")
    assert frame.layer.tolist() == list(range(7))
    upper = frame[frame.layer > 0]
    assert (upper.accuracy - upper.majority > 0.3).all()
    assert (upper.selectivity > 0).all()
    assert (frame.n_test > 200).all()
