"""Query/key vectors for bertviz's neuron view: they reproduce the model's attention."""

import json
import re

import numpy as np
import pytest

from ctxlens.methods.neurons import query_key_vectors, supports_neuron_view
from ctxlens.figures.bertviz_html import neuron_view_html
from ctxlens.backends.hf import analyze
from ctxlens.models.loading import load_hf, spec_for

TEXT = "The river bank was wet after the rain."
HOSTILE = "</script><script>alert(1)</script>"


def _load(path):
    return load_hf(spec_for(str(path)), device="cpu")


def _softmax_attention(q, k, causal):
    d = q.shape[-1]
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(d)
    if causal:
        t = scores.shape[-1]
        scores = np.where(np.triu(np.ones((t, t), dtype=bool), k=1), -np.inf, scores)
    scores = scores - scores.max(-1, keepdims=True)
    e = np.exp(scores)
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("kind, pair", [("bert-mlm", None), ("bert-mlm", "Who sat on the mat?"), ("gpt2", None),
                                        ("llama", None), ("roberta", "Who sat on the mat?"), ("distilbert", None)])
def test_queries_and_keys_reproduce_attention(tiny_models, kind, pair):
    lm = _load(tiny_models[kind])
    assert supports_neuron_view(lm)
    record = analyze(lm, TEXT, pair)
    q, k = query_key_vectors(analyze(lm, TEXT, pair))
    L, H, T, _ = record.attentions.shape
    assert q.shape[:3] == k.shape[:3] == (L, H, T)
    att = _softmax_attention(q.astype(np.float64), k.astype(np.float64), causal=kind in ("gpt2", "llama"))
    np.testing.assert_allclose(att, record.attentions, atol=1e-5)


def _params(html):
    m = re.search(r"window\.bertviz_params = (\{.*?\});\n</script>", html, re.DOTALL)
    return json.loads(m.group(1))


def test_neuron_view_page_is_offline_and_complete(tiny_models):
    lm = _load(tiny_models["bert-mlm"])
    pair = "Who sat on the mat?"
    record = analyze(lm, TEXT, pair)
    q, k = query_key_vectors(analyze(lm, TEXT, pair))
    html = neuron_view_html(record, q, k, layer=1, head=0)
    assert not re.search(r"<script[^>]*\bsrc=", html, re.IGNORECASE)
    assert "https://cdn" not in html  # bertviz's require.config is cut out
    assert "Content-Security-Policy" in html and "Sentence A" in html
    params = _params(html)
    att = params["attention"]
    assert set(att) == {"all", "aa", "ab", "ba", "bb"}
    assert att["all"]["left_text"] == list(record.tokens)
    b = len(att["aa"]["left_text"])
    assert att["ab"]["right_text"] == list(record.tokens[b:])
    assert np.array(att["ab"]["keys"]).shape == (2, 2, len(record.tokens) - b, q.shape[-1])
    assert np.allclose(att["all"]["attn"], record.attentions, atol=1e-3)
    assert params["layer"] == 1 and params["bidirectional"] is True


def test_hostile_token_stays_escaped(tiny_models):
    lm = _load(tiny_models["gpt2"])
    record = analyze(lm, HOSTILE)
    q, k = query_key_vectors(analyze(lm, HOSTILE))
    html = neuron_view_html(record, q, k)
    assert html.lower().count("</script") == 5  # d3, jQuery, shim, params, neuron_view.js: no more
    data = html.split("window.bertviz_params = ", 1)[1].split("</script>", 1)[0]
    assert "<" not in data and ">" not in data and "\\u003c" in data  # tokens JSON-escaped
    assert "</script><script>alert" not in html
    params = _params(html)
    assert "".join(params["attention"]["all"]["left_text"]).replace("␣", " ").count("alert") == 1
    assert params["bidirectional"] is False


def test_long_input_carries_only_the_picked_head(tiny_models, monkeypatch):
    import ctxlens.figures.bertviz_html as bv

    lm = _load(tiny_models["bert-mlm"])
    record = analyze(lm, TEXT)
    q, k = query_key_vectors(analyze(lm, TEXT))
    full_html = neuron_view_html(record, q, k, layer=1, head=1)
    full = _params(full_html)["attention"]["all"]
    monkeypatch.setattr(bv, "NEURON_FULL_CELLS", record.attentions.size - 1)
    html = neuron_view_html(record, q, k, layer=1, head=1)
    compact = _params(html)["attention"]["all"]
    assert '<select id="layer" disabled>' in html and '<select id="att_head" disabled>' in html
    assert compact["attn"][1][1] == full["attn"][1][1]
    assert compact["queries"][1][1] == full["queries"][1][1] and compact["keys"][1][1] == full["keys"][1][1]
    assert compact["attn"][0][0] == [] and compact["attn"][1][0] == []
    assert compact["queries"][0][0] == full["queries"][0][0]  # bertviz reads the vector size there
    assert len(html) < len(full_html)


def test_concurrent_sessions_get_only_their_own_vectors(tiny_models):
    """The model is shared: one thread's forward must not collect another's queries and keys."""
    from concurrent.futures import ThreadPoolExecutor

    lm = _load(tiny_models["bert-mlm"])
    texts = ["the bank", "the river bank was muddy after the storm and the rain"] * 8
    expected = {t: query_key_vectors(analyze(lm, t)) for t in set(texts)}
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda t: query_key_vectors(analyze(lm, t)), texts))
    for text, (q, k) in zip(texts, results):
        np.testing.assert_allclose(q, expected[text][0], atol=1e-6)
        np.testing.assert_allclose(k, expected[text][1], atol=1e-6)
