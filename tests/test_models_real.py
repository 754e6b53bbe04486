"""Real weights: the two embedded defaults that install with the project."""

import numpy as np
import pytest

from ctxlens.models import catalog as cat
from ctxlens.models.registry import analyze_text, get_model, model_status


def test_minilm_layers_and_attention_rows():
    record = analyze_text("all-MiniLM-L6-v2", "The bank of the river was muddy.")
    assert record.hidden_states.shape[0] == 7 and record.hidden_states.shape[2] == 384
    assert record.attentions.shape[:2] == (6, 12)
    np.testing.assert_allclose(record.attentions.sum(-1), 1.0, atol=1e-4)
    assert record.tokens[0] == "[CLS]" and record.tokens[-1] == "[SEP]"
    lm = get_model("all-MiniLM-L6-v2")
    assert not lm.spec.can(cat.MLM)  # the package ships no MLM head
    assert record.head.kind == "none"


def test_smollm2_knows_the_capital_of_france():
    record = analyze_text("SmolLM2-135M-Instruct", "The capital of France is")
    lm = get_model("SmolLM2-135M-Instruct")
    top3 = [lm.tokenizer.decode([int(i)]) for i in record.head.top_ids[-1, :3]]
    assert " Paris" in top3
    assert record.hidden_states.shape[0] == 31
    assert record.attentions.shape[:2] == (30, 9)


def test_models_are_loaded_once_and_shared():
    assert get_model("all-MiniLM-L6-v2") is get_model("all-MiniLM-L6-v2")
    assert model_status(cat.CATALOG["all-MiniLM-L6-v2"]).state == "ready"


def test_same_input_is_analysed_once():
    a = analyze_text("all-MiniLM-L6-v2", "A cached sentence.")
    assert analyze_text("all-MiniLM-L6-v2", "A cached sentence.") is a


@pytest.mark.parametrize("key", ["bert-base-uncased", "gpt2"])
def test_network_models_are_reported_as_unavailable_offline(key, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    status = model_status(cat.CATALOG[key])
    assert status.state == "unavailable" and "HF_HUB_OFFLINE" in status.detail


def test_tiny_elmo_through_the_registry_shares_the_word_segmentation():
    from ctxlens.analysis.words import split_words

    text = "The bank, by the river\x07."
    record = analyze_text("elmo-tiny-test", text)
    assert record.family.value == "elmo" and record.attentions is None
    assert list(record.tokens) == [w.text for w in split_words(record.text)]
    assert record.hidden_states.shape == (3, 7, 32)
    bert = analyze_text("all-MiniLM-L6-v2", text)
    assert [w.text for w in bert.words] == [w.text for w in record.words]


def test_elmo_models_need_a_download_and_fail_clearly_offline(monkeypatch):
    from ctxlens.errors import ModelUnavailable

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CTXLENS_CACHE", "/nonexistent-ctxlens-cache")
    assert model_status(cat.CATALOG["elmo-small"]).state == "unavailable"
    with pytest.raises(ModelUnavailable, match="elmo-small"):
        get_model("elmo-small")
