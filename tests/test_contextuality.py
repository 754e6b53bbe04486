from collections import Counter

import numpy as np
from records import word_record
import pandas as pd
import pytest

from ctxlens.analysis.contextuality import (
    PAPER_FINDINGS,
    anisotropy_baseline,
    contextuality_report,
    intra_sentence_similarity,
    load_corpus,
    mean_pairwise_cosine,
    self_similarity,
)
from ctxlens.analysis.words import split_words
from ctxlens.errors import InputError
from ctxlens.figures.embeddings import contextuality_lines
from ctxlens.record import Family

E1, E2, E3 = np.eye(3)


def make_record(text, word_vectors, model_key="toy"):
    """A record with one token per word: hidden_states[:, w] = word_vectors[:, w]."""
    return word_record(text, word_vectors, Family.CAUSAL_LM, model_key)


def layers(*arrays):
    """Stack [n, D] arrays into [L, n, D]."""
    return np.stack([np.asarray(a, dtype=float) for a in arrays])


# ---------------------------------------------------------------- the measures


def test_mean_pairwise_cosine_hand_computed():
    diag = (E1 + E2) / np.sqrt(2)
    # Pairs: e1·e2 = 0, e1·diag = e2·diag = 1/√2 → mean √2/3. Scaling must not matter.
    x = layers([E1, 5 * E2, 2 * diag], [E1, E1, 3 * E1])
    np.testing.assert_allclose(mean_pairwise_cosine(x), [np.sqrt(2) / 3, 1.0])
    assert np.isnan(mean_pairwise_cosine(layers([E1]))).all()


def test_self_similarity_hand_computed():
    by_type = {
        # Layer 0: always the same vector → 1. Layer 1: four e1 and one -e1 → of the 10
        # pairs, 4 have cosine -1 and 6 have cosine 1 → 0.2.
        "a": layers([E1] * 5, [E1] * 4 + [-E1]),
        # Layer 0: e1,e1,e1,e2,e2,e2: 3+3 pairs at 1, 9 at 0 → 6/15 = 0.4. Layer 1: all e2 → 1.
        "b": layers([E1] * 3 + [E2] * 3, [E2] * 6),
        "rare": layers([E1, -E1, E2, -E2], [E1, -E1, E2, -E2]),  # 4 < 5 occurrences: ignored
    }
    np.testing.assert_allclose(self_similarity(by_type), [(1 + 0.4) / 2, (0.2 + 1) / 2])
    np.testing.assert_allclose(self_similarity(by_type, min_occurrences=7), [np.nan, np.nan])
    with pytest.raises(InputError):
        self_similarity({})


def test_intra_sentence_similarity_hand_computed():
    sentences = [
        layers([E1, E2], [E1, E1]),  # mean (e1+e2)/2: each word at cosine 1/√2; then 1
        layers([E1, E1, 4 * E1], [E1, -E1, E1]),  # 1; mean e1/3: cosines 1, -1, 1 → 1/3
        layers([E3], [E3]),  # one word: skipped
    ]
    expected = [(1 / np.sqrt(2) + 1) / 2, (1 + 1 / 3) / 2]
    np.testing.assert_allclose(intra_sentence_similarity(sentences), expected)
    with pytest.raises(InputError):
        intra_sentence_similarity(sentences[2:])


def test_anisotropy_baseline_uses_pairs_from_different_sentences_only():
    # Sentence k's words all point along e_k: any pair within a sentence has cosine 1, any
    # pair across sentences 0, so a baseline of exactly 0 proves no same-sentence pair.
    vecs = layers([E1] * 5 + [E2] * 2 + [E3] * 3)
    ids = np.array([0] * 5 + [1] * 2 + [2] * 3)
    np.testing.assert_allclose(anisotropy_baseline(vecs, ids, n_pairs=500, seed=1), [0.0])
    # Two sentences at 45° in layer 0 and identical in layer 1.
    vecs = layers([E1] * 3 + [E1 + E2] * 4, [E1] * 3 + [2 * E1] * 4)
    ids = np.array([7] * 3 + [2] * 4)
    np.testing.assert_allclose(anisotropy_baseline(vecs, ids, n_pairs=50), [1 / np.sqrt(2), 1.0])
    assert np.isnan(anisotropy_baseline(vecs, np.zeros(7), n_pairs=10)).all()


def test_anisotropy_baseline_is_deterministic_for_a_seed():
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(2, 40, 5))
    ids = rng.integers(0, 6, 40)
    first = anisotropy_baseline(vecs, ids, n_pairs=300, seed=4)
    np.testing.assert_array_equal(first, anisotropy_baseline(vecs, ids, n_pairs=300, seed=4))
    assert not np.array_equal(first, anisotropy_baseline(vecs, ids, n_pairs=300, seed=5))


# ---------------------------------------------------------------- the report


def toy_records(n=6, model_key="toy"):
    """n copies of "The cat saw the cat." Layer 0 is static (each type has one vector);
    layer 1 gives every word a random vector, so it is context-specific."""
    rng = np.random.default_rng(0)
    static = {"the": E1, "cat": E2, "saw": E3, ".": E1 + E2 + E3}
    records = []
    for _ in range(n):
        text = "The cat saw the cat."
        words = split_words(text)
        layer0 = [static[w.text.lower()] for w in words]
        layer1 = rng.normal(size=(len(words), 3))
        records.append(make_record(text, layers(layer0, layer1), model_key))
    return records


def test_contextuality_report_columns_and_values():
    calls = []
    records = toy_records()
    frame = contextuality_report(records, progress=lambda f, m: calls.append((f, m)))
    assert list(frame.columns) == [
        "model", "layer", "relative_depth", "self_similarity", "intra_sentence",
        "baseline", "self_similarity_adj", "intra_sentence_adj", "n_types",
    ]
    assert frame["layer"].tolist() == [0, 1] and frame["relative_depth"].tolist() == [0.0, 1.0]
    assert frame["n_types"].iloc[0] == 3  # the, cat, saw; "." is not a word
    # Static layer: every type identical across sentences.
    assert frame.loc[0, "self_similarity"] == pytest.approx(1.0)
    assert frame.loc[1, "self_similarity"] < 0.5
    # Layer 0 intra-sentence, by hand: words e1, e2, e3, e1, e2 → mean (2,2,1)/5,
    # cosines to it: 2/3, 2/3, 1/3, 2/3, 2/3 → 0.6.
    assert frame.loc[0, "intra_sentence"] == pytest.approx(0.6)
    # Layer 0 baseline: cross-sentence pairs of e1/e2/e3 words, cosine 1 when same type.
    assert 0.2 < frame.loc[0, "baseline"] < 0.5
    for column in ("self_similarity", "intra_sentence"):
        np.testing.assert_allclose(frame[f"{column}_adj"], frame[column] - frame["baseline"])
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(calls) >= len(records)
    assert all(isinstance(m, str) and m for _, m in calls)


def test_report_counts_one_occurrence_per_sentence():
    # "cat" appears twice per sentence in 3 sentences: 6 tokens but only 3 contexts.
    frame = contextuality_report(toy_records(n=3), min_occurrences=4)
    assert frame["n_types"].iloc[0] == 0 and frame["self_similarity"].isna().all()


def test_report_rejects_mixed_models_and_empty_input():
    with pytest.raises(InputError):
        contextuality_report([])
    other = make_record("A dog.", np.zeros((4, 3, 3)))
    with pytest.raises(ValueError):
        contextuality_report(toy_records(2) + [other])


# ---------------------------------------------------------------- corpus, text, figure


def test_corpus_has_200_sentences_and_many_repeated_words():
    lines = load_corpus()
    assert len(lines) >= 200
    counts = Counter()
    for line in lines:
        counts.update({w.text.lower() for w in split_words(line) if w.text.isalpha()})
    frequent = [w for w, c in counts.items() if c >= 5]
    assert len(frequent) >= 20
    stopwords = {"the", "a", "and", "of", "to", "in", "on", "was", "at", "for", "from"}
    assert len(set(frequent) - stopwords) >= 20  # content words, not just stopwords


def test_paper_findings_text():
    assert "Ethayarajh" in PAPER_FINDINGS and "GPT-2" in PAPER_FINDINGS
    assert "anisotropic" in PAPER_FINDINGS and "self-similarity" in PAPER_FINDINGS


def test_contextuality_lines_one_trace_per_panel_and_model():
    frame = pd.concat(
        [contextuality_report(toy_records(model_key=m)) for m in ("gpt2", "bert <base>")]
    )
    fig = contextuality_lines(frame)
    assert len(fig.data) == 3 * 2
    assert {t.name for t in fig.data} == {"gpt2", "bert &lt;base&gt;"}
    assert [t.showlegend for t in fig.data] == [True, True] + [False] * 4
    adjusted = contextuality_lines(frame, adjusted=True)
    assert len(adjusted.data) == 2 * 2
    gpt2 = frame[frame["model"] == "gpt2"]
    np.testing.assert_allclose(adjusted.data[0].y, gpt2["self_similarity_adj"])
