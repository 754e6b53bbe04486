"""The four fine-tuning shapes: the positions each reads, on hand examples over real tokenisers,
the figure that lights them, the live heads per model, and the notes tab."""

import base64
import math

import numpy as np
import pytest
from apptest import charts, ok, open_tab

from ctxlens.backends.hf import analyze
from ctxlens.figures.adapters import loss_figure, parameters_figure
from ctxlens.figures.shapes import SHAPES, live_heads, read_positions, shapes_figure
from ctxlens.models import catalog as cat
from ctxlens.models.loading import load_hf, spec_for


@pytest.fixture(scope="module")
def bert(tiny_models):
    lm = load_hf(spec_for(tiny_models["bert-mlm"]), "cpu")
    return analyze(lm, "the cat sat", None), analyze(lm, "the cat sat", "a dog")


def test_bert_pair_by_hand(bert):
    single, pair = bert
    assert single.tokens == ("[CLS]", "the", "cat", "sat", "[SEP]")
    assert pair.tokens == ("[CLS]", "the", "cat", "sat", "[SEP]", "a", "dog", "[SEP]")
    assert read_positions("sentence", single.special_mask) == [0]  # [CLS]
    assert read_positions("token", single.special_mask) == [1, 2, 3]  # every real token
    assert read_positions("pair", pair.special_mask) == [0]
    assert read_positions("span", pair.special_mask) == list(range(8))  # start/end scores everywhere


def test_figure_lights_exactly_the_read_positions(bert):
    single, pair = bert
    fig = shapes_figure(*bert)
    z = np.asarray(fig.data[0].z, dtype=float)
    nan = math.nan
    expected = np.array([
        [1, 0, 0, 0, 0, nan, nan, nan],  # sentence: [CLS] A [SEP]
        [0, 1, 1, 1, 0, nan, nan, nan],  # token
        [1, 0, 0, 0, 0, 0, 0, 0],  # pair: [CLS] A [SEP] B [SEP]
        [1, 1, 1, 1, 1, 1, 1, 1],  # span
    ])
    np.testing.assert_array_equal(z, expected)
    assert list(fig.data[0].text[0][:5]) == list(single.tokens)
    assert list(fig.data[0].text[2]) == list(pair.tokens)


def test_decoder_reads_the_last_token(tiny_models):
    lm = load_hf(spec_for(tiny_models["gpt2"]), "cpu")
    single, pair = analyze(lm, "the cat sat", None), analyze(lm, "the cat sat", "a dog")
    n, m = single.n_tokens, pair.n_tokens
    assert not single.special_mask.any()  # GPT-2 adds no [CLS] or [SEP]
    assert read_positions("sentence", single.special_mask, reads_last=True) == [n - 1]
    assert read_positions("pair", pair.special_mask, reads_last=True) == [m - 1]
    assert read_positions("token", single.special_mask, reads_last=True) == list(range(n))
    z = np.asarray(shapes_figure(single, pair, reads_last=True).data[0].z, dtype=float)
    assert np.flatnonzero(z[0] == 1).tolist() == [n - 1] and np.flatnonzero(z[2] == 1).tolist() == [m - 1]


def test_roberta_reads_its_first_special_token(tiny_models):
    lm = load_hf(spec_for(tiny_models["roberta"]), "cpu")
    pair = analyze(lm, "the cat sat", "a dog")
    assert pair.tokens[0] == "<s>"
    assert read_positions("pair", pair.special_mask) == [0]
    assert read_positions("token", pair.special_mask) == [i for i, t in enumerate(pair.tokens)
                                                         if t not in ("<s>", "</s>")]


def test_unknown_shape_and_empty_input():
    with pytest.raises(ValueError):
        read_positions("summary", [True, False])
    assert read_positions("span", []) == []


def test_live_heads_follow_the_catalog():
    heads = live_heads(cat.CATALOG["bert-base-uncased"])
    assert heads["pair"] == [cat.CAPABILITY_LABELS[cat.NSP]] and heads["sentence"] == heads["span"] == []
    assert live_heads(cat.CATALOG["distilbert-base-cased-distilled-squad"])["span"] == [
        cat.CAPABILITY_LABELS[cat.QA_SPANS]]
    assert not any(live_heads(cat.CATALOG["all-MiniLM-L6-v2"]).values())
    both = cat.with_capabilities(cat.CATALOG["bert-base-uncased"], {cat.SEQ_CLASS, cat.TOKEN_CLASS, cat.NSP})
    assert [len(v) for v in live_heads(both).values()] == [1, 1, 2, 0]
    assert set(live_heads(both)) == set(SHAPES)


def test_row_labels_name_the_live_heads(bert):
    heads = live_heads(cat.CATALOG["bert-base-uncased"])
    labels = list(shapes_figure(*bert, heads=heads).data[0].y)
    assert "next-sentence prediction" in labels[2] and "no trained head" in labels[0]


def test_parameter_and_loss_figures():
    fig = parameters_figure({"embeddings": 900, "attention": 100}, {"LoRA r=8": 10}, 1000)
    assert list(fig.data[0].customdata) == [900, 100, 10]
    assert fig.data[0].text[2] == "10 (1.00%)" and fig.layout.xaxis.type == "log"
    loss = loss_figure([0.7, 0.5, 0.2], steps=10)
    assert list(loss.data[0].y) == [0.7, 0.5, 0.2] and list(loss.layout.xaxis.range) == [0.5, 10.5]


# --- the tab -------------------------------------------------------------------------------------


def _z(at) -> np.ndarray:
    """The shapes figure's cells; plotly ships numpy arrays as base64 "bdata"."""
    z = charts(at)[0]["data"][0]["z"]
    if isinstance(z, list):
        return np.array(z, dtype=float)
    shape = [int(n) for n in str(z["shape"]).split(",")]
    return np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.dtype(z["dtype"])).reshape(shape)


def test_app_shapes_tab_on_the_embedded_encoder():
    at = open_tab("notes_shapes", 180).run()
    ok(at)
    z = _z(at)
    assert np.nansum(z[0]) == 1 and z[0, 0] == 1  # [CLS]
    assert z[3, ~np.isnan(z[3])].all()  # span: every position of the pair
    table = at.dataframe[0].value
    assert (table["trained head in all-MiniLM-L6-v2"] == "none").all()
    assert any("no trained head" in c.value for c in at.caption)


def test_app_shapes_tab_on_a_decoder_and_empty_text(tiny_models):
    folder = tiny_models["gpt2"]
    at = open_tab("notes_shapes", 180)
    at.session_state["ctx_extra_models"] = [folder]
    at.session_state["ctx_models"] = [folder]
    at.run()
    ok(at)
    z = _z(at)
    assert z[0, int(np.sum(~np.isnan(z[0]))) - 1] == 1 and np.nansum(z[0]) == 1  # the last token
    assert any("last token" in c.value for c in at.caption)
    at.text_input(key="nsh_b").set_value("   ").run()
    assert not at.exception and any("text B" in w.value for w in at.warning)
