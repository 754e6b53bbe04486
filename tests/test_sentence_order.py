"""NSP vs SOP: both orders of a pair through BERT's next-sentence head and ALBERT's
sentence-order head, checked against direct transformers calls on tiny models; RoBERTa's
refusal; the catalog's SOP capability; the presets; the notes tab (AppTest)."""

import json
from pathlib import Path

import numpy as np
import pytest

from apptest import open_tab
import torch
import transformers as tf

from ctxlens.backends.architectures import untrained_capabilities
from ctxlens.errors import CapabilityMissing, InputError
from ctxlens.methods import registry as R
from ctxlens.methods.sentence_order import (
    NAME, load_pair_presets, no_order_head_message, sentence_order,
)
from ctxlens.models import catalog as cat
from ctxlens.models.loading import load_hf, spec_for
from ctxlens.models.registry import model_status
from tiny_models import LETTERS, PUNCT, WORDS, save_bert_head, save_roberta

A, B = "The cat sat on the mat.", "It was a dog."
INIT = 0.2  # wider than the default 0.02, so that the two orders' probabilities differ visibly
_ALBERT_SIZE = dict(embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64, max_position_embeddings=64, initializer_range=INIT)


def albert_tokenizer():
    """A tiny SentencePiece-style (Unigram, ▁-prefixed) vocabulary, as ALBERT's."""
    vocab = [(t, 0.0) for t in ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]")]
    vocab += [("▁" + w, -2.0) for w in WORDS] + [(p, -3.0) for p in PUNCT] + [("▁", -4.0)]
    vocab += [(c, -5.0) for c in LETTERS]
    return tf.AlbertTokenizer(vocab=vocab)


def save_albert(folder: Path, cls=tf.AlbertForPreTraining) -> Path:
    torch.manual_seed(0)
    tokenizer = albert_tokenizer()
    config = tf.AlbertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **_ALBERT_SIZE)
    cls(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("sentence_order")
    return {
        "bert": str(save_bert_head(root / "bert", tf.BertForPreTraining, initializer_range=INIT)),
        "albert": str(save_albert(root / "albert")),
        "albert-mlm-only": str(save_albert(root / "albert-mlm", tf.AlbertForMaskedLM)),
        "roberta": str(save_roberta(root / "roberta")),
    }


@pytest.fixture(scope="module")
def models(folders):
    return {k: load_hf(spec_for(folders[k]), device="cpu") for k in ("bert", "albert", "roberta")}


def _direct(folder: str, cls, output: str, first: str, second: str, segments: bool = True) -> float:
    """P(class 0) of a head from a plain transformers call, the tokenizer asked for segment ids."""
    tokenizer, model = tf.AutoTokenizer.from_pretrained(folder), cls.from_pretrained(folder).eval()
    enc = tokenizer(first, second, return_tensors="pt", return_token_type_ids=segments)
    with torch.no_grad():
        return float(torch.softmax(getattr(model(**enc), output), -1)[0, 0])


def test_nsp_scores_are_the_heads_softmax_from_a_direct_call(models, folders):
    result = sentence_order(models["bert"], A, B)
    (score,) = result.scores
    assert score.capability == cat.NSP and score.question == "P(IsNext)"
    direct = [_direct(folders["bert"], tf.BertForPreTraining, "seq_relationship_logits", *p) for p in ((A, B), (B, A))]
    np.testing.assert_allclose([score.forward, score.backward], direct, atol=1e-5)
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(score.logits), -1)[:, 0], direct, atol=1e-5)


def test_sop_scores_are_the_heads_softmax_from_a_direct_call(models, folders):
    result = sentence_order(models["albert"], A, B)
    (score,) = result.scores
    assert score.capability == cat.SOP and score.question == "P(in order)"
    direct = [_direct(folders["albert"], tf.AlbertForPreTraining, "sop_logits", *p) for p in ((A, B), (B, A))]
    np.testing.assert_allclose([score.forward, score.backward], direct, atol=1e-5)


@pytest.mark.parametrize("kind", ["bert", "albert"])
def test_the_two_orders_are_a_then_b_and_b_then_a_with_their_segments(models, kind):
    lm = models[kind]
    result = sentence_order(lm, A, B)
    pieces = {s: lm.tokenizer.convert_ids_to_tokens(lm.tokenizer(s, add_special_tokens=False)["input_ids"])
              for s in (A, B)}
    for (first, second), tokens, segments in zip(((A, B), (B, A)), result.tokens, result.segment_ids):
        n1, n2 = len(pieces[first]), len(pieces[second])
        assert len(tokens) == n1 + n2 + 3
        assert (tokens[0], tokens[n1 + 1], tokens[-1]) == ("[CLS]", "[SEP]", "[SEP]")
        np.testing.assert_array_equal(segments, [0] * (n1 + 2) + [1] * (n2 + 1))
    assert result.tokens[0][1:-1] != result.tokens[1][1:-1]
    (score,) = result.scores
    assert abs(score.forward - score.backward) > 1e-3  # the orders really read differently


def test_albert_reads_segment_ids_its_v5_tokenizer_leaves_out(models, folders):
    """Transformers 5's ALBERT tokenizer no longer returns token_type_ids by default
    (huggingface/transformers#48128); the loader asks for them, so SOP sees the two segments."""
    assert "token_type_ids" in models["albert"].tokenizer(A, B)
    ours = sentence_order(models["albert"], A, B).scores[0].forward
    one_segment = _direct(folders["albert"], tf.AlbertForPreTraining, "sop_logits", A, B, segments=False)
    assert abs(ours - one_segment) > 1e-3


def test_roberta_has_neither_head_and_says_why(models):
    with pytest.raises(CapabilityMissing) as caught:
        sentence_order(models["roberta"], A, B)
    message = str(caught.value)
    assert "Liu et al. (2019)" in message and "dropped" in message
    assert "bert-base-uncased" in message and "albert-base-v2" in message  # who has each head
    minilm = no_order_head_message(cat.CATALOG["all-MiniLM-L6-v2"])
    assert "all-MiniLM-L6-v2" in minilm and "RoBERTa dropped" in minilm


def test_a_checkpoint_without_sop_weights_does_not_claim_sop(folders):
    """As the hub's albert-base-v2 was reported to be (transformers#9319): MLM weights, no SOP
    classifier. The catalog claims SOP; the loaded model does not, and the method says why."""
    spec = cat.ModelSpec(key="tiny-albert-no-sop", family=cat.Family.MASKED_LM,
                         source=f"hf:{folders['albert-mlm-only']}",
                         capabilities=frozenset({cat.ATTENTIONS, cat.MLM, cat.SOP}), test_model=True)
    cat.register(spec)
    try:
        lm = load_hf(spec, device="cpu")
        assert lm.spec.can(cat.MLM) and not lm.spec.can(cat.SOP)
        with pytest.raises(CapabilityMissing, match="missing when it loaded"):
            sentence_order(lm, A, B)
    finally:
        cat.CATALOG.pop(spec.key)


def test_spec_from_config_claims_sop_for_albert_and_nsp_for_bert():
    albert = cat.spec_from_config("x", tf.AlbertConfig(architectures=["AlbertForPreTraining"]))
    assert albert.can(cat.SOP) and albert.can(cat.MLM) and not albert.can(cat.NSP)
    bert = cat.spec_from_config("y", tf.BertConfig(architectures=["BertForPreTraining"]))
    assert bert.can(cat.NSP) and not bert.can(cat.SOP)
    masked = cat.spec_from_config("z", tf.AlbertConfig(architectures=["AlbertForMaskedLM"]))
    assert not masked.can(cat.SOP) and not masked.can(cat.NSP)
    config = tf.AlbertConfig()
    assert untrained_capabilities(config, ["sop_classifier.classifier.weight"]) == {cat.SOP}
    assert untrained_capabilities(config, ["albert.pooler.bias"]) >= {cat.SOP}
    assert untrained_capabilities(config, ["predictions.dense.weight"]) == {cat.MLM, cat.NEXT_TOKEN, cat.PERMUTATION_LM}


def test_the_catalog_and_registry_know_which_models_judge_pairs():
    assert cat.SOP in cat.HEADS and cat.SOP in cat.CAPABILITY_LABELS
    albert, roberta = cat.CATALOG["albert-base-v2"], cat.CATALOG["roberta-base"]
    assert albert.source == "hf:albert/albert-base-v2" and albert.capabilities >= {cat.MLM, cat.SOP}
    assert not albert.can(cat.NSP) and not roberta.can(cat.NSP) and not roberta.can(cat.SOP)
    offered = R.models_for([NAME])
    assert {"bert-base-uncased", "bert-base-multilingual-cased", "albert-base-v2"} <= set(offered)
    assert "roberta-base" not in offered and "all-MiniLM-L6-v2" not in offered


def test_empty_sentences_are_refused_by_name(models):
    with pytest.raises(InputError, match="sentence B"):
        sentence_order(models["bert"], A, "  ")


def test_presets_load_with_both_sentences_and_what_they_show():
    presets = load_pair_presets()
    assert 6 <= len(presets) <= 10
    for key, p in presets.items():
        assert p.key == key and p.title.strip() and p.shows.strip(), key
        assert p.a.strip() and p.b.strip() and p.a != p.b, key
        assert p.relation in {"continuation", "swapped", "unrelated", "same topic"}, key
    relations = {p.relation for p in presets.values()}
    assert {"swapped", "unrelated"} <= relations  # where NSP is fooled by topic, and where it is not


# --- the notes tab --------------------------------------------------------------------------



def _ok(at):
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def test_tab_offline_says_what_it_needs_and_offers_the_download():
    at = open_tab("notes_pairs", 120).run()
    _ok(at)
    text = " ".join(i.value for i in at.info).replace("\\", "")  # markdown escapes
    for key in ("bert-base-uncased", "albert-base-v2"):
        state = model_status(cat.CATALOG[key]).state
        if state == "unavailable":  # offline and not in the local cache: said, offered for later
            assert f"**{key}** is not on this machine: it needs a download" in text
            assert any(b.label.startswith(f"Download {key}") and b.disabled for b in at.button)
    assert "Liu et al. (2019)" in text
    table = at.dataframe[0].value
    assert "roberta-base" in set(table["model"])


def test_tab_offers_an_enabled_download_when_the_network_may_be_there(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    at = open_tab("notes_pairs", 120).run()
    _ok(at)
    buttons = {b.label: b for b in at.button}
    assert not buttons["Download albert-base-v2 (about 47 MB)"].disabled


def test_tab_scores_tiny_models_side_by_side_and_follows_the_preset(folders, models):
    picked = [folders["bert"], folders["albert"]]
    at = open_tab("notes_pairs", 120, ctx_extra_models=picked, ctx_models=picked).run()
    _ok(at)
    preset = next(iter(load_pair_presets().values()))
    table = at.dataframe[0].value.set_index("model")
    for kind in ("bert", "albert"):
        score = sentence_order(models[kind], preset.a, preset.b).scores[0]
        row = table.loc[folders[kind]]
        assert row["head"] == score.question
        np.testing.assert_allclose([row["A → B"], row["B → A"]], [score.forward, score.backward], atol=1e-6)
    assert np.isnan(table.loc["roberta-base", "A → B"])

    swapped = load_pair_presets()["keys-swapped"]
    at.selectbox(key="pair_preset").set_value("keys-swapped")
    at.query_params["pair_preset"] = "keys-swapped"  # as a click: the URL the last run left would win
    at.run()
    _ok(at)
    assert (at.text_area(key="pair_a").value, at.text_area(key="pair_b").value) == (swapped.a, swapped.b)
    assert any(swapped.shows[:40] in c.value for c in at.caption)
    json.dumps(at.dataframe[0].value.to_dict())  # the table holds plain values
