"""The model layer on tiny models of every family, through the real loading code."""

import numpy as np
import pytest
import tiny_models as tm  # the module; `tiny_models` is the fixture of folders

from ctxlens.errors import InputError, ModelUnavailable
from ctxlens.models import catalog as cat
from ctxlens.backends.hf import analyze
from ctxlens.models.registry import run_analysis
from ctxlens.record import ATTN, LOGITS, RESID
from ctxlens.models.loading import load_hf, spec_for
from ctxlens.record import Family


@pytest.fixture(scope="module")
def loaded(tiny_models):
    return tm.loader(tiny_models)


@pytest.mark.parametrize(
    "kind, family, caps",
    [
        ("bert-mlm", Family.MASKED_LM, {cat.ATTENTIONS, cat.MLM}),
        ("bert-nsp", Family.MASKED_LM, {cat.ATTENTIONS, cat.MLM, cat.NSP}),
        ("bert-bare", Family.MASKED_LM, {cat.ATTENTIONS}),
        ("bert-qa", Family.MASKED_LM, {cat.ATTENTIONS, cat.QA_SPANS}),
        ("gpt2", Family.CAUSAL_LM, {cat.ATTENTIONS, cat.NEXT_TOKEN}),
    ],
)
def test_family_and_capabilities_inferred_from_config(loaded, kind, family, caps):
    lm = loaded(kind)
    assert lm.spec.family is family
    assert set(lm.spec.capabilities) == caps


def test_head_named_in_config_but_missing_from_weights_is_not_claimed(loaded):
    lm = loaded("bert-fake-mlm")
    assert not lm.spec.can(cat.MLM)
    record = analyze(lm, "the bank")
    assert record.head.kind == "none"  # its random MLM output is never shown


@pytest.mark.parametrize("kind", ["bert-mlm", "bert-nsp", "bert-bare", "bert-qa", "gpt2"])
def test_shapes_and_probabilities(loaded, kind):
    record = analyze(loaded(kind), "The river bank was wet.")
    T = record.n_tokens
    assert record.hidden_states.shape == (3, T, 32)
    assert record.hidden_states.dtype == np.float32
    assert record.attentions.shape == (2, 2, T, T)
    np.testing.assert_allclose(record.attentions.sum(-1), 1.0, atol=1e-5)
    assert record.offsets.shape == (T, 2)
    assert len(record.word_ids) == T and len(record.special_mask) == T
    assert [w.text for w in record.words] == ["The", "river", "bank", "was", "wet", "."]


def test_wordpiece_alignment_and_specials(loaded):
    record = analyze(loaded("bert-mlm"), "The bank playing xyz")
    assert record.tokens == ("[CLS]", "the", "bank", "play", "##ing", "x", "##y", "##z", "[SEP]")
    assert record.special_mask.tolist() == [True] + [False] * 7 + [True]
    assert record.word_ids.tolist() == [-1, 0, 1, 2, 2, 3, 3, 3, -1]
    assert record.word_tokens(2).tolist() == [3, 4]


def test_byte_level_tokens_are_readable_and_aligned(loaded):
    record = analyze(loaded("gpt2"), "The river bank")
    assert record.tokens[1].startswith("␣")
    assert "Ġ" not in "".join(record.tokens)
    # GPT's leading-space tokens belong to the word after the space.
    assert [record.words[w].text for w in record.word_ids if w >= 0] == ["The", "river", "bank"]
    for t, w in enumerate(record.word_ids):
        assert w >= 0
        piece = record.tokens[t].replace("␣", "")
        assert piece.lower() in record.words[w].text.lower()


def test_emoji_and_cjk_pieces_are_shown_as_bytes_not_replacement_chars(loaded):
    record = analyze(loaded("gpt2"), "hi 😀 北京")
    assert "\ufffd" not in "".join(record.tokens)
    assert [w.text for w in record.words] == ["hi", "😀", "北", "京"]
    assert set(record.word_ids.tolist()) <= {-1, 0, 1, 2, 3}


@pytest.mark.parametrize("kind", ["bert-nsp", "gpt2"])
def test_word_ids_are_the_first_overlapping_word_of_the_same_segment(loaded, kind):
    """The vectorised alignment against its definition, on a truncated pair with CJK and emoji."""
    first = "The bank 😀 北京 was muddy, " * 8
    record = analyze(loaded(kind), first, "and the dog sat by the river." * 4, max_tokens=48)
    assert record.truncated
    for t, (a, b) in enumerate(record.offsets):
        overlapping = [
            i for i, w in enumerate(record.words)
            if w.segment == record.segment_ids[t] and w.start < b and w.end > a
        ]
        expected = overlapping[0] if overlapping and not record.special_mask[t] else -1
        assert record.word_ids[t] == expected, (t, record.tokens[t])


def test_sentence_pair_segments(loaded):
    record = analyze(loaded("bert-nsp"), "the cat sat.", "the dog sat.")
    sep = record.tokens.index("[SEP]")
    assert record.segment_ids[: sep + 1].tolist() == [0] * (sep + 1)
    assert set(record.segment_ids[sep + 1 :].tolist()) == {1}
    assert [w.segment for w in record.words] == [0] * 4 + [1] * 4
    # offsets of the second segment index the second text
    w = record.words[5]
    assert record.text_pair[w.start : w.end] == "dog"
    assert record.head.nsp_logits.shape == (2,)


def test_truncation_is_recorded(loaded):
    text = " ".join(["bank"] * 200)
    record = analyze(loaded("bert-mlm"), text)
    assert record.truncated and record.n_tokens == 64 and record.n_tokens_full == 202
    assert record.tokens[-1] == "[SEP]"
    short = analyze(loaded("bert-mlm"), "the bank")
    assert not short.truncated and short.n_tokens_full == short.n_tokens


def test_mlm_head_output(loaded):
    lm = loaded("bert-mlm")
    record = analyze(lm, "the [MASK] sat on the mat.")
    assert record.head.kind == "mlm"
    assert record.head.positions.tolist() == [2]
    assert record.head.logits.shape == (1, len(lm.tokenizer))
    np.testing.assert_allclose(record.head.top_probs.sum(-1) <= 1.0 + 1e-6, True)


def test_causal_head_token_logprobs(loaded):
    record = analyze(loaded("gpt2"), "The capital of France is Paris.")
    lp = record.head.token_logprobs
    assert np.isnan(lp[0]) and np.all(lp[1:] <= 0)
    # the last position's full logits agree with its top-k
    probs = np.exp(record.head.logits[0] - record.head.logits[0].max())
    probs /= probs.sum()
    np.testing.assert_allclose(np.sort(probs)[::-1][:10], record.head.top_probs[-1], rtol=1e-4)


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text_is_an_input_error(loaded, text):
    with pytest.raises(InputError, match="empty"):
        analyze(loaded("bert-mlm"), text)


@pytest.mark.parametrize("text", ["😀😀 🎉", "北京欢迎你", "<script>alert(1)</script>", "a\x00b\x07c"])
def test_odd_text_gives_a_record(loaded, text):
    for kind in ("bert-mlm", "gpt2"):
        record = analyze(loaded(kind), text)
        assert record.n_tokens > 0
        assert "\x00" not in record.text


def test_unknown_model_is_one_clear_error():
    with pytest.raises(ModelUnavailable, match="no-such-model-anywhere"):
        spec_for("no-such-model-anywhere")


def test_offline_download_is_refused_with_cause(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="no network"):
        load_hf(cat.CATALOG["gpt2"])


def test_corrupt_weights_give_a_clear_error(tiny_models, tmp_path):
    import shutil

    folder = tmp_path / "broken"
    shutil.copytree(tiny_models["bert-mlm"], folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelUnavailable, match="corrupt or truncated"):
        load_hf(spec_for(str(folder)))


def test_concurrent_sessions_load_a_model_once(tiny_models, monkeypatch):
    import threading

    from ctxlens.models import registry

    calls = []
    real_load = registry._load

    def counting_load(spec, device, progress, dtype):
        calls.append(spec.key)
        return real_load(spec, device, progress, dtype)

    monkeypatch.setattr(registry, "_load", counting_load)
    name = tiny_models["bert-nsp"]
    registry.forget_model(name)  # other tests may have loaded it already
    results, barrier = [], threading.Barrier(6)

    def session():
        barrier.wait()
        results.append(registry.analyze_text(name, "the cat sat on the mat."))

    threads = [threading.Thread(target=session) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [name] and len(results) == 6
    for r in results[1:]:
        np.testing.assert_allclose(r.hidden_states, results[0].hidden_states, atol=1e-6)
    registry.forget_model(name)


def test_hidden_only_records_equal_the_full_ones(loaded):
    texts = ["The bank.", "The river bank was wet after the rain."]
    for kind in ("bert-nsp", "gpt2"):
        lm = loaded(kind)
        for light, full in zip(run_analysis(lm, texts, None, None, True), run_analysis(lm, texts, None, None)):
            # Only the hidden states are computed; anything else runs its forward on request.
            assert light.acts.computed(RESID) and not light.acts.computed(ATTN)
            assert not light.acts.computed(LOGITS)
            np.testing.assert_allclose(light.hidden_states, full.hidden_states, atol=1e-5)
            np.testing.assert_allclose(light.attentions, full.attentions, atol=1e-6)
            np.testing.assert_allclose(light.head.top_probs, full.head.top_probs, atol=1e-5)


def test_length_sorted_batches_keep_the_input_order(tiny_models):
    from ctxlens.models.registry import analyze_in_batches, get_model

    lm = get_model(tiny_models["gpt2"], "cpu")
    texts = ["A cat sat on the mat with a dog.", "The bank.", "Paris is the capital of France."]
    seen = []
    records = analyze_in_batches(lm, texts, batch_size=2, progress=lambda f, m: seen.append(f))
    assert [r.text for r in records] == texts
    assert seen == [2 / 3, 1.0]
    np.testing.assert_allclose(records[1].hidden_states, analyze(lm, texts[1]).hidden_states, atol=1e-5)
