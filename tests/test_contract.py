"""The backend contract, run over every registered family (a new family added to the
architecture table and to `tiny_models.build_all` runs all of it).

Each check compares the engine with an independent computation: a plain transformers forward
with every output, one-at-a-time runs, the model's own head, softmax(q·kᵀ/√d), the numpy
definitions of the attention statistics, and (with a GPU) the CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers as tf

from ctxlens.analysis.attention import attention_rollout, head_statistics as numpy_statistics
from ctxlens.backends.hf import analyze
from ctxlens.methods.attention import head_statistics, mean_over_heads, rollout
from ctxlens.models.loading import load_hf, spec_for
from ctxlens.models.registry import run_analysis
from ctxlens.record import ATTN, END_LOGITS, KEY, LOGITS, NSP_LOGITS, QUERY, RESID, START_LOGITS

FAMILIES = ["bert-mlm", "bert-nsp", "bert-bare", "bert-qa", "roberta", "distilbert", "gpt2", "llama"]
CAUSAL = {"gpt2", "llama"}
TEXTS = ["The bank.", "The river bank was wet after the rain.", "A cat sat on the mat with a dog."]
PAIR = ("The capital of France is Paris.", "Who played the game?")


@pytest.fixture(scope="module")
def backends(tiny_models):
    return {kind: load_hf(spec_for(tiny_models[kind]), device="cpu") for kind in FAMILIES}


def _reference(folder: str, kind: str):
    """The plain transformers model of the same checkpoint, with every output on."""
    cls = {"bert-nsp": tf.AutoModelForPreTraining, "bert-qa": tf.AutoModelForQuestionAnswering,
           "bert-bare": tf.AutoModel}.get(kind, tf.AutoModelForCausalLM if kind in CAUSAL else tf.AutoModelForMaskedLM)
    return cls.from_pretrained(folder, attn_implementation="eager").eval()


@pytest.mark.parametrize("kind", FAMILIES)
def test_lazy_slices_equal_a_plain_forward(backends, tiny_models, kind):
    lm = backends[kind]
    text, pair = (PAIR[0], None) if kind in CAUSAL else PAIR
    record = analyze(lm, text, pair)
    enc = lm.tokenizer(text, pair, return_tensors="pt")
    with torch.inference_mode():
        out = _reference(tiny_models[kind], kind)(**enc, output_hidden_states=True, output_attentions=True)
    assert record.n_tokens == enc["input_ids"].shape[1]
    for layer, h in enumerate(out.hidden_states):
        np.testing.assert_allclose(record.hidden(layer), h[0].numpy(), atol=1e-5)
    for layer, a in enumerate(out.attentions):
        np.testing.assert_allclose(record.attention(layer), a[0].numpy(), atol=1e-6)
    if record.acts.has(LOGITS):
        logits = out.prediction_logits if kind == "bert-nsp" else out.logits
        np.testing.assert_allclose(record.acts.numpy(LOGITS), logits[0].numpy(), atol=1e-5)
    if record.acts.has(NSP_LOGITS):
        np.testing.assert_allclose(record.head.nsp_logits, out.seq_relationship_logits[0].numpy(), atol=1e-5)
    if record.acts.has(START_LOGITS):
        np.testing.assert_allclose(record.head.start_logits, out.start_logits[0].numpy(), atol=1e-5)
        np.testing.assert_allclose(record.acts.numpy(END_LOGITS), out.end_logits[0].numpy(), atol=1e-5)


@pytest.mark.parametrize("kind", FAMILIES)
def test_batched_equals_one_at_a_time(backends, kind):
    lm = backends[kind]
    for batched, text in zip(run_analysis(lm, TEXTS, None, None), TEXTS):
        single = analyze(lm, text)
        assert batched.tokens == single.tokens
        np.testing.assert_allclose(batched.hidden_states, single.hidden_states, atol=1e-5)
        np.testing.assert_allclose(batched.attentions, single.attentions, atol=1e-6)
        if single.head.top_probs is not None:
            np.testing.assert_allclose(batched.head.top_probs, single.head.top_probs, atol=1e-5)


@pytest.mark.parametrize("kind", [k for k in FAMILIES if k not in ("bert-bare", "bert-qa")])
def test_final_layer_logit_lens_is_the_models_own_head(backends, kind):
    lm = backends[kind]
    record = analyze(lm, TEXTS[1])
    top = record.n_layers
    with torch.inference_mode():
        lens = lm.unembed(record.acts.tensor(RESID, top), top)
    np.testing.assert_allclose(lens.numpy(), record.acts.numpy(LOGITS), atol=1e-5)


@pytest.mark.parametrize("kind", FAMILIES)
def test_queries_and_keys_reproduce_the_attention(backends, kind):
    record = analyze(backends[kind], *((PAIR[0], None) if kind in CAUSAL else PAIR))
    for layer in range(record.n_layers):
        q = record.acts.numpy(QUERY, layer).astype(np.float64)
        k = record.acts.numpy(KEY, layer).astype(np.float64)
        scores = q @ k.swapaxes(-1, -2) / np.sqrt(q.shape[-1])
        if kind in CAUSAL:
            scores[:, np.triu(np.ones(scores.shape[-2:], dtype=bool), k=1)] = -np.inf
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        np.testing.assert_allclose(probs / probs.sum(-1, keepdims=True), record.attention(layer), atol=1e-5)


@pytest.mark.parametrize("kind", ["bert-nsp", "gpt2", "llama"])
def test_names_not_computed_run_their_forward_on_request(backends, kind):
    lm = backends[kind]
    light = run_analysis(lm, [TEXTS[2]], None, None, hidden_only=True)[0]
    assert light.acts.computed(RESID) and not light.acts.computed(ATTN) and not light.acts.computed(QUERY)
    full = analyze(lm, TEXTS[2])
    np.testing.assert_allclose(light.attention(1), full.attention(1), atol=1e-6)
    np.testing.assert_allclose(light.head.top_probs, full.head.top_probs, atol=1e-5)


@pytest.mark.parametrize("kind", ["bert-mlm", "gpt2", "llama"])
def test_device_statistics_equal_the_numpy_definitions(backends, kind):
    record = analyze(backends[kind], "The river bank, wet; after the rain.")
    att = record.attentions
    expected = numpy_statistics(att, record.special_mask, record.tokens)
    for name, values in head_statistics(record).items():
        np.testing.assert_allclose(values, expected[name], atol=1e-9, equal_nan=True)
    reference = attention_rollout(att)
    for layer in range(record.n_layers):
        np.testing.assert_allclose(rollout(record, layer), reference[layer], atol=1e-6)
        np.testing.assert_allclose(mean_over_heads(record, layer), att[layer].astype(np.float64).mean(0), atol=1e-6)


def test_one_layer_moves_one_layers_bytes(backends):
    record = analyze(backends["llama"], TEXTS[2])
    before = record.acts.bytes_moved
    one = record.attention(1)
    assert record.acts.bytes_moved - before == one.nbytes
    assert one.nbytes * record.n_layers == record.attentions.nbytes


def test_elmo_backend_keeps_the_contract_it_can():
    from ctxlens.errors import CapabilityMissing
    from ctxlens.models.elmo_catalog import TINY_ELMO_KEY
    from ctxlens.models.registry import get_model

    lm = get_model(TINY_ELMO_KEY, "cpu")
    for batched, text in zip(run_analysis(lm, TEXTS, None, None), TEXTS):
        single = run_analysis(lm, [text], None, None)[0]
        np.testing.assert_allclose(batched.hidden_states, single.hidden_states, atol=1e-5)
        assert not batched.has_attention and batched.attentions is None and batched.head.kind == "none"
    with pytest.raises(CapabilityMissing):
        lm.unembed(torch.zeros(1, 4), 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("kind", FAMILIES)
def test_float32_on_cuda_equals_the_cpu(tiny_models, kind):
    cpu = analyze(load_hf(spec_for(tiny_models[kind]), device="cpu"), TEXTS[1])
    cuda = analyze(load_hf(spec_for(tiny_models[kind]), device="cuda"), TEXTS[1])
    assert cuda.precision == "float32"
    np.testing.assert_allclose(cuda.hidden_states, cpu.hidden_states, atol=1e-4)
    np.testing.assert_allclose(cuda.attentions, cpu.attentions, atol=1e-4)
    if cpu.head.top_probs is not None:
        np.testing.assert_allclose(cuda.head.top_probs, cpu.head.top_probs, atol=1e-4)
