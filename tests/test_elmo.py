"""ELMo in our own PyTorch, checked against the original implementation's outputs.

The fixture (tests/fixtures/elmo, from the allennlp 0.9.0 test fixtures) holds a tiny model
and the activations the original biLM produced; see its README for how they were made.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from ctxlens.analysis.words import split_words
from ctxlens.errors import InputError, ModelUnavailable
from ctxlens.models.elmo import ElmoBiLM, analyze_elmo, analyze_elmo_batch
from ctxlens.models.elmo_catalog import (
    ELMO_MODELS, cached_elmo_paths, download_elmo, elmo_paths, tiny_elmo_paths,
)
from ctxlens.models.elmo_chars import MAX_CHARS, word_to_char_ids
from ctxlens.record import Family

FIXTURE = Path(__file__).parent / "fixtures" / "elmo"
OPTIONS, WEIGHTS = FIXTURE / "options.json", FIXTURE / "lm_weights.hdf5"


@pytest.fixture(scope="module")
def model() -> ElmoBiLM:
    return ElmoBiLM.from_files(OPTIONS, WEIGHTS)


@pytest.fixture(scope="module")
def sentences() -> list[list[list[str]]]:
    lists = json.loads((FIXTURE / "sentences.json").read_text())
    return [[s.split(" ") for s in sentence_list] for sentence_list in lists]


def expected_top_layer(list_index: int, sentence_index: int) -> np.ndarray:
    with h5py.File(FIXTURE / f"lm_embeddings_{list_index}.hdf5", "r") as fin:
        halves = fin[str(sentence_index)][...]  # [2, n, 16]: forward, backward
    return np.concatenate([halves[0], halves[1]], axis=-1)


# --- conformance with the original implementation -------------------------------------


def test_top_layer_matches_the_original_in_stateful_mode(sentences):
    # As the reference was made: batch i = sentence i of lists 0, 1, 2; batches in order,
    # each LSTM row continuing from the state it ended the previous batch with.
    fresh = ElmoBiLM.from_files(OPTIONS, WEIGHTS)
    worst = 0.0
    for i in range(10):
        batch = [sentences[k][i] for k in range(3)]
        outputs = fresh.embed_words(batch, stateful=True)
        for k, out in enumerate(outputs):
            expected = expected_top_layer(k, i)
            assert out.shape == (3, len(batch[k]), 32)
            worst = max(worst, float(np.abs(out[2] - expected).max()))
    assert worst <= 1e-6


def test_layer0_matches_the_original_token_embeddings(model):
    words = (FIXTURE / "vocab_test.txt").read_text().split("\n")  # includes <S>, </S>, <UNK>
    with h5py.File(FIXTURE / "elmo_token_embeddings.hdf5", "r") as fin:
        expected = fin["embedding"][...]
    assert len(words) == expected.shape[0]
    # Run the vocabulary as sentences of 50 words (as the original test), so padding is used.
    chunks = [words[i : i + 50] for i in range(0, len(words), 50)]
    layer0 = np.concatenate([out[0] for out in model.embed_words(chunks)])
    np.testing.assert_allclose(layer0[:, :16], expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(layer0[:, :16], layer0[:, 16:])  # [tok, tok]


def test_stateless_and_stateful_agree_on_the_first_batch_only(sentences):
    fresh = ElmoBiLM.from_files(OPTIONS, WEIGHTS)
    first, second = ([sentences[k][i] for k in range(3)] for i in (0, 1))
    stateless = [fresh.embed_words(b) for b in (first, second)]
    stateful = [fresh.embed_words(b, stateful=True) for b in (first, second)]
    for a, b in zip(stateless[0], stateful[0]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(stateless[1], stateful[1]):
        assert np.abs(a[1:] - b[1:]).max() > 1e-3  # the carried state changes the LSTM layers
        np.testing.assert_array_equal(a[0], b[0])  # but not the context-free layer
    # Stateless calls never carry anything; reset_states returns to a zero start.
    for a, b in zip(stateless[1], fresh.embed_words(second)):
        np.testing.assert_array_equal(a, b)
    fresh.reset_states()
    for a, b in zip(stateless[0], fresh.embed_words(first, stateful=True)):
        np.testing.assert_array_equal(a, b)


# --- batching, padding, shapes ---------------------------------------------------------


def test_shapes_and_dtype(model):
    outputs = model.embed_words([["Hello", "world", "."], ["Hi"], []])
    assert [o.shape for o in outputs] == [(3, 3, 32), (3, 1, 32), (3, 0, 32)]
    assert all(o.dtype == np.float32 for o in outputs)
    assert model.embed_words([]) == []


def test_padding_never_changes_a_sentence(model, sentences):
    short = ["Don", "'t", "!"]
    alone = model.embed_words([short])[0]
    longer = sentences[0][0]  # 50 words
    for batch in ([longer, short], [short, longer], [longer, short, sentences[1][1]]):
        in_batch = model.embed_words(batch)[batch.index(short)]
        # The backward half would differ if the backward LSTM read the padding.
        np.testing.assert_allclose(in_batch, alone, rtol=0, atol=1e-5)


def test_batched_equals_one_at_a_time(model, sentences):
    batch = [sentences[k][i] for k, i in [(0, 2), (1, 3), (2, 5), (0, 6), (1, 9)]]
    together = model.embed_words(batch)
    for sentence, out in zip(batch, together):
        np.testing.assert_allclose(out, model.embed_words([sentence])[0], rtol=0, atol=1e-5)


def test_token_cache_is_bounded_and_exact(sentences):
    uncached = ElmoBiLM.from_files(OPTIONS, WEIGHTS, cache_words=0)
    small = ElmoBiLM.from_files(OPTIONS, WEIGHTS, cache_words=5)
    sentence = sentences[2][0]
    for _ in range(2):  # second pass reads vectors back from the cache
        np.testing.assert_array_equal(
            small.embed_words([sentence])[0], uncached.embed_words([sentence])[0]
        )
    assert len(small._token_cache) == 5
    assert len(uncached._token_cache) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_cuda_matches_cpu(model, sentences):
    gpu = ElmoBiLM.from_files(OPTIONS, WEIGHTS, device="cuda")
    batch = [sentences[0][0], sentences[1][3]]
    for a, b in zip(gpu.embed_words(batch), model.embed_words(batch)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


# --- characters ------------------------------------------------------------------------


def test_char_ids_ascii():
    ids = word_to_char_ids("cat")
    assert len(ids) == MAX_CHARS
    assert ids[:5] == [259, ord("c") + 1, ord("a") + 1, ord("t") + 1, 260]
    assert ids[5:] == [261] * (MAX_CHARS - 5)


def test_char_ids_non_ascii_are_utf8_bytes():
    ids = word_to_char_ids("né")
    assert ids[:5] == [259, ord("n") + 1, 0xC3 + 1, 0xA9 + 1, 260]


def test_char_ids_long_word_is_truncated_to_48_bytes():
    word = "é" * 30  # 60 UTF-8 bytes: cut to 48, even inside a character, as the original
    ids = word_to_char_ids(word)
    assert len(ids) == MAX_CHARS
    assert ids[1:49] == [b + 1 for b in word.encode("utf-8")[:48]]
    assert ids[49] == 260  # end of word in the last slot


def test_char_ids_sentence_boundaries():
    assert word_to_char_ids("<S>")[:4] == [259, 257, 260, 261]
    assert word_to_char_ids("</S>")[:4] == [259, 258, 260, 261]


# --- loading ---------------------------------------------------------------------------


def test_truncated_weight_file_is_unavailable(tmp_path):
    bad = tmp_path / "lm_weights.hdf5"
    bad.write_bytes(WEIGHTS.read_bytes()[: WEIGHTS.stat().st_size // 2])
    with pytest.raises(ModelUnavailable, match="corrupt or truncated") as err:
        ElmoBiLM.from_files(OPTIONS, bad, name="elmo-test")
    assert err.value.model == "elmo-test"


def test_garbage_weight_file_is_unavailable(tmp_path):
    bad = tmp_path / "lm_weights.hdf5"
    bad.write_bytes(b"this is not an hdf5 file" * 100)
    with pytest.raises(ModelUnavailable, match="corrupt or truncated"):
        ElmoBiLM.from_files(OPTIONS, bad)


def test_missing_files_are_unavailable(tmp_path):
    with pytest.raises(ModelUnavailable, match="weight file not found"):
        ElmoBiLM.from_files(OPTIONS, tmp_path / "absent.hdf5")
    with pytest.raises(ModelUnavailable, match="options file not found"):
        ElmoBiLM.from_files(tmp_path / "absent.json", WEIGHTS)


def test_missing_dataset_and_wrong_shapes_are_named(tmp_path):
    incomplete = tmp_path / "incomplete.hdf5"
    shutil.copy(WEIGHTS, incomplete)
    with h5py.File(incomplete, "a") as f:
        del f["RNN_1/RNN/MultiRNNCell/Cell1/LSTMCell/W_P_0"]
    with pytest.raises(ModelUnavailable, match="lacks the dataset 'RNN_1/.*/W_P_0'"):
        ElmoBiLM.from_files(OPTIONS, incomplete)
    options = json.loads(OPTIONS.read_text())
    options["lstm"]["dim"] = 32  # weights were trained with 64
    mismatched = tmp_path / "options.json"
    mismatched.write_text(json.dumps(options))
    with pytest.raises(ModelUnavailable, match="options and weights do not match"):
        ElmoBiLM.from_files(mismatched, WEIGHTS)


def test_bad_options_file_is_unavailable(tmp_path):
    broken = tmp_path / "options.json"
    broken.write_text("{not json")
    with pytest.raises(ModelUnavailable, match="not valid JSON"):
        ElmoBiLM.from_files(broken, WEIGHTS)
    broken.write_text(json.dumps({"lstm": {}}))
    with pytest.raises(ModelUnavailable, match="lacks the ELMo setting"):
        ElmoBiLM.from_files(broken, WEIGHTS)


def test_packaged_tiny_model_is_the_fixture():
    options, weights = tiny_elmo_paths()
    assert options.read_bytes() == OPTIONS.read_bytes()
    assert weights.read_bytes() == WEIGHTS.read_bytes()
    assert "Apache License 2.0" in (options.parent / "NOTICE").read_text()
    assert ElmoBiLM.from_files(options, weights).output_dim == 32


# --- the analysis record ---------------------------------------------------------------


def test_analyze_elmo_record(model):
    text = "Don't panic: ELMo reads words, naïvely!"
    record = analyze_elmo(model, text, "elmo-tiny-test")
    words = split_words(text)
    assert record.family is Family.ELMO
    assert list(record.words) == words
    assert record.tokens == tuple(w.text for w in words)
    assert record.offsets.tolist() == [[w.start, w.end] for w in words]
    assert record.word_ids.tolist() == list(range(len(words)))
    assert not record.special_mask.any() and not record.segment_ids.any()
    assert record.attentions is None and record.head.kind == "none"
    assert record.hidden_states.shape == (3, len(words), 32)
    assert record.hidden_states.dtype == np.float32
    assert not record.truncated and record.n_tokens_full == len(words)
    expected = model.embed_words([[w.text for w in words]])[0]
    np.testing.assert_array_equal(record.hidden_states, expected)
    assert all(record.word_tokens(i).tolist() == [i] for i in range(len(words)))


def test_analyze_elmo_pair_runs_each_text_as_a_sentence(model):
    record = analyze_elmo(model, "The cat sat.", "elmo", text_pair="It purred.")
    assert record.tokens == ("The", "cat", "sat", ".", "It", "purred", ".")
    assert record.segment_ids.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert record.word_ids.tolist() == list(range(7))
    assert record.offsets[4:].tolist() == [[0, 2], [3, 9], [9, 10]]  # into the second text
    first, second = model.embed_words([["The", "cat", "sat", "."], ["It", "purred", "."]])
    np.testing.assert_allclose(record.hidden_states, np.concatenate([first, second], 1), atol=1e-6)


def test_analyze_elmo_truncates_to_max_tokens(model):
    text = "one two three four five six"
    record = analyze_elmo(model, text, "elmo", max_tokens=4)
    assert record.tokens == ("one", "two", "three", "four")
    assert record.truncated and record.n_tokens_full == 6 and record.max_tokens == 4
    assert len(record.words) == 6  # the cut words stay, with no tokens
    assert record.word_tokens(5).size == 0
    pair = analyze_elmo(model, text, "elmo", text_pair="a b", max_tokens=5)
    assert pair.tokens == ("one", "two", "three", "a", "b")  # the longest text is cut first
    assert pair.word_ids.tolist() == [0, 1, 2, 6, 7]


def test_analyze_elmo_rejects_empty_text(model):
    for text in ("", "   \n\t"):
        with pytest.raises(InputError, match="empty"):
            analyze_elmo(model, text, "elmo")
    with pytest.raises(InputError, match="second text"):
        analyze_elmo(model, "Fine.", "elmo", text_pair="   ")


def test_analyze_elmo_batch_equals_single_analyses(model):
    texts = ["A short one.", "A somewhat longer sentence, with a comma and more words.", "Hi"]
    batch = analyze_elmo_batch(model, texts, "elmo", batch_size=2)
    for text, record in zip(texts, batch):
        single = analyze_elmo(model, text, "elmo")
        assert record.tokens == single.tokens
        np.testing.assert_allclose(record.hidden_states, single.hidden_states, rtol=0, atol=1e-5)


# --- the catalog of published models and their download -------------------------------


def test_catalog_lists_the_published_models():
    names = {e.name for e in ELMO_MODELS}
    assert names == {
        "2x1024_128_2048cnn_1xhighway", "2x2048_256_2048cnn_1xhighway",
        "2x4096_512_2048cnn_2xhighway", "2x4096_512_2048cnn_2xhighway_5.5B",
    }
    for e in ELMO_MODELS:
        base = f"https://s3-us-west-2.amazonaws.com/allennlp/models/elmo/{e.name}/elmo_{e.name}"
        assert (e.options_url, e.weights_url) == (f"{base}_options.json", f"{base}_weights.hdf5")
        assert e.layers == 2 and e.size_mb > 0
    assert [e.dim for e in ELMO_MODELS] == [256, 512, 1024, 1024]


def test_download_offline_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="offline mode"):
        download_elmo(ELMO_MODELS[0], tmp_path)
    assert not any(tmp_path.iterdir())


def test_download_offline_uses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    entry = ELMO_MODELS[0]
    for src, dst in zip((OPTIONS, WEIGHTS), elmo_paths(entry, tmp_path)):
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
    assert download_elmo(entry, tmp_path) == cached_elmo_paths(entry, tmp_path)


def test_download_without_network_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    entry = replace(
        ELMO_MODELS[0], options_url="http://127.0.0.1:9/options.json",
        weights_url="http://127.0.0.1:9/weights.hdf5",
    )
    calls = []
    with pytest.raises(ModelUnavailable, match="no network") as err:
        download_elmo(entry, tmp_path, progress=lambda done, total: calls.append(done))
    assert err.value.model == entry.key
    assert calls == [] and cached_elmo_paths(entry, tmp_path) is None
    assert not list(tmp_path.rglob("*.part"))
