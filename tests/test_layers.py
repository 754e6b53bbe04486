"""Per-word layer views on records built by hand: norms, layer cosines, cross-sentence cosines, mix."""

import numpy as np
from records import word_record
import pandas as pd
import pytest

from ctxlens.analysis.layers import (
    MIX, S_RANGE, cross_sentence_table, cross_sentence_word_cosines, layer_cosines, mix_presets,
    mix_table, word_layers, word_norms,
)
from ctxlens.analysis.mix import scalar_mix
from ctxlens.analysis.words import split_words
from ctxlens.record import Activations, Analysis, Family

rng = np.random.default_rng(0)


def elmo_record(text: str, states: np.ndarray) -> Analysis:
    """An ELMo-like record: one token per word; states [layers + 1, words, dim]."""
    return word_record(text, states)


def subword_record(states: np.ndarray) -> Analysis:
    """'unbelievable bank' read as [CLS] un ##believ ##able bank [SEP]; states [L, 6, dim]."""
    text = "unbelievable bank"
    words = tuple(split_words(text))
    offsets = np.array([[0, 0], [0, 2], [2, 8], [8, 12], [13, 17], [0, 0]])
    special = np.array([True, False, False, False, False, True])
    return Analysis(
        model_key="hand-made-bert", family=Family.MASKED_LM, text=text, text_pair=None,
        tokens=("[CLS]", "un", "##believ", "##able", "bank", "[SEP]"), token_ids=np.arange(6),
        offsets=offsets, word_ids=np.array([-1, 0, 0, 0, 1, -1]), special_mask=special,
        segment_ids=np.zeros(6, int), words=words, acts=Activations.from_arrays(states.astype(np.float32)),
    )


def test_word_layers_are_the_layers_plus_the_mix_row():
    states = rng.normal(size=(3, 4, 8))
    record = elmo_record("The bank closed .", states)
    plain = word_layers(record)
    assert plain.labels == ("0", "1", "2") and plain.words == ("The", "bank", "closed", ".")
    np.testing.assert_allclose(plain.vectors, states, rtol=1e-6)
    mixed = word_layers(record, mix=([0.0, 0.0, 0.0], 3.0))
    assert mixed.labels == ("0", "1", "2", MIX) and mixed.layer_rows == [0, 1, 2]
    np.testing.assert_allclose(mixed.vectors[3], 3.0 * states.mean(axis=0), rtol=1e-5)


def test_mixing_pooled_words_equals_pooling_mixed_tokens():
    states = rng.normal(size=(5, 6, 8))
    s = [0.5, -1.0, 2.0, 0.0, 1.0]
    wl = word_layers(subword_record(states), "mean", mix=(s, 1.7))
    mixed_tokens = scalar_mix(states.astype(np.float32), s, 1.7)
    np.testing.assert_allclose(wl.vectors[-1, 0], mixed_tokens[1:4].mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(wl.vectors[-1, 1], mixed_tokens[4], rtol=1e-5, atol=1e-6)


def test_word_norms_by_hand():
    states = np.zeros((3, 2, 2))
    states[:, 0] = [[3, 4], [0, 1], [6, 8]]  # norms 5, 1, 10
    states[:, 1] = [[1, 0], [0, 2], [0, 0]]  # norms 1, 2, 0
    norms = word_norms(word_layers(elmo_record("hi there", states)))
    assert list(norms.index) == ["0: hi", "1: there"] and list(norms.columns) == ["0", "1", "2"]
    np.testing.assert_allclose(norms.to_numpy(), [[5, 1, 10], [1, 2, 0]])


def test_layer_cosines_name_elmos_three_pairs_and_the_mix():
    v = np.array([1.0, 0.0, 0.0])
    states = np.stack([
        np.stack([v, v]),  # layer 0
        np.stack([v, [0.0, 1.0, 0.0]]),  # layer 1: same direction / orthogonal
        np.stack([-v, [0.0, 0.0, 0.0]]),  # layer 2: opposite / zero vector
    ])
    record = elmo_record("bank bank", states)
    cos = layer_cosines(word_layers(record))
    assert list(cos.columns) == ["0↔1", "1↔2", "0↔2"]
    np.testing.assert_allclose(cos.loc["0: bank"], [1.0, -1.0, -1.0], atol=1e-7)
    np.testing.assert_allclose(cos.loc["1: bank"].iloc[0], 0.0, atol=1e-7)
    assert cos.loc["1: bank"].iloc[1:].isna().all()  # a zero vector has no direction
    top_only = mix_presets(3)["top layer only"]
    with_mix = layer_cosines(word_layers(record, mix=top_only))
    assert list(with_mix.columns)[3:] == ["mix↔0", "mix↔1", "mix↔2"]
    assert with_mix.loc["0: bank", "mix↔2"] == pytest.approx(1.0, abs=1e-6)


def test_many_layers_use_adjacent_pairs_and_first_to_last():
    cos = layer_cosines(word_layers(elmo_record("one", rng.normal(size=(5, 1, 4)))))
    assert list(cos.columns) == ["0↔1", "1↔2", "2↔3", "3↔4", "0↔4"]


def _two_sentences():
    a, b = "The Bank closed .", "A bank , the river ."
    e = np.eye(4)
    sa = rng.normal(size=(3, 4, 4))
    sb = rng.normal(size=(3, 6, 4))
    sa[:, 1] = [e[0], e[1], e[2]]  # "Bank" in sentence 0
    sb[:, 1] = [e[0], e[3], -e[2]]  # "bank" in sentence 1: same, orthogonal, opposite
    return elmo_record(a, sa), elmo_record(b, sb)


def test_the_same_word_in_other_sentences_case_insensitive():
    ra, rb = _two_sentences()
    long = cross_sentence_word_cosines([word_layers(ra), word_layers(rb)])
    assert set(long["word"].str.lower()) == {"the", "bank"}  # "." repeats but is not a word
    assert len(long) == 2 * 2 * 3  # two shared words, both directions, three layers
    bank = long[(long["sentence"] == 0) & (long["word"] == "Bank")]
    assert bank["other_word"].tolist() == ["bank"] * 3 and bank["other_index"].tolist() == [1] * 3
    np.testing.assert_allclose(bank["cosine"], [1.0, 0.0, -1.0], atol=1e-7)
    back = long[(long["sentence"] == 1) & (long["word"] == "bank")]
    np.testing.assert_allclose(back["cosine"], bank["cosine"], atol=1e-7)


def test_one_sentences_rows_are_its_rows_of_the_full_table():
    ra, rb = _two_sentences()
    stacks = [word_layers(ra), word_layers(rb)]
    full = cross_sentence_word_cosines(stacks)
    for s in (0, 1):
        only = cross_sentence_word_cosines(stacks, sentence=s)
        assert set(only["sentence"]) == {s}
        pd.testing.assert_frame_equal(only.reset_index(drop=True), full[full["sentence"] == s].reset_index(drop=True))


def test_cross_sentence_table_is_wide_with_the_mix_column():
    ra, rb = _two_sentences()
    mix = ([0.0, 0.0, 0.0], 1.0)
    long = cross_sentence_word_cosines([word_layers(ra, mix=mix), word_layers(rb, mix=mix)])
    table = cross_sentence_table(long, 0)
    assert list(table.columns) == ["0", "1", "2", MIX]
    assert list(table.index) == ["0: The ↔ sentence 2, 3: the", "1: Bank ↔ sentence 2, 1: bank"]
    expected_mix = np.dot(ra.hidden_states.mean(0)[1], rb.hidden_states.mean(0)[1]) / (
        np.linalg.norm(ra.hidden_states.mean(0)[1]) * np.linalg.norm(rb.hidden_states.mean(0)[1]))
    assert table.iloc[1][MIX] == pytest.approx(expected_mix, rel=1e-5)


def test_no_shared_word_gives_an_empty_table_and_own_repeats_are_not_compared():
    ra = elmo_record("go go now", rng.normal(size=(3, 3, 4)))
    rb = elmo_record("stop here", rng.normal(size=(3, 2, 4)))
    long = cross_sentence_word_cosines([word_layers(ra), word_layers(rb)])
    assert long.empty and cross_sentence_table(long, 0).empty
    rc = elmo_record("Go home", rng.normal(size=(3, 2, 4)))
    long = cross_sentence_word_cosines([word_layers(ra), word_layers(rc)])
    assert sorted(set(zip(long["sentence"], long["word_index"]))) == [(0, 0), (0, 1), (1, 0)]


def test_mix_table_shows_softmax_and_gamma():
    table = mix_table([0.0, np.log(3.0)], 2.0)
    assert isinstance(table, pd.DataFrame) and table["layer"].tolist() == ["0", "1"]
    np.testing.assert_allclose(table["weight softmax(s)_j"], [0.25, 0.75])
    np.testing.assert_allclose(table["γ · weight"], [0.5, 1.5])


def test_presets_stay_in_the_slider_range_and_do_what_they_say():
    states = rng.normal(size=(13, 4, 8)).astype(np.float32)
    presets = mix_presets(13)
    for s, gamma in presets.values():
        assert len(s) == 13 and all(S_RANGE[0] <= x <= S_RANGE[1] for x in s) and gamma > 0
    s, gamma = presets["sum of the last four layers (feature-based BERT)"]
    np.testing.assert_allclose(scalar_mix(states, s, gamma), states[-4:].sum(axis=0), atol=1e-2)
    s, gamma = presets["layer 0 only (no context)"]
    np.testing.assert_allclose(scalar_mix(states, s, gamma), states[0], atol=1e-2)
    assert set(mix_presets(3)) == {
        "equal weights (average of all layers)", "top layer only", "layer 0 only (no context)"}
