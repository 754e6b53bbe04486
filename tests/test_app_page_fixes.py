"""Issue 14's page fixes under AppTest (tiny models): the Attention page's one Layer/Head
control drives the bertviz views, the sinks toggle reaches them, the all-heads grid has token
labels; ELMo's mix is carried to the comparison model; the lab's cosine colours fit the data."""

import base64
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import transformers as tf

from apptest import charts, ok, open_page
from ctxlens.analysis import polysemy
from ctxlens.figures.attention import GRID_TICKS

APP = Path(__file__).resolve().parents[1] / "app"
sys.path.insert(0, str(APP))  # `streamlit run app/Home.py` puts app/ on the path for `from ui import ...`
ATTENTION = str(APP / "pages" / "1_Attention.py")
ELMO = str(APP / "pages" / "5_ELMo.py")
LAB = str(APP / "pages" / "2_Polysemy_lab.py")
WEIGHTS = "weight softmax(s)_j"


def _json_after(page: str, marker: str) -> dict:
    value, _ = json.JSONDecoder().raw_decode(page, page.index(marker) + len(marker))
    return value


def _array(value) -> np.ndarray:
    """A plotly spec's array: a list, or numpy shipped as base64 "bdata"."""
    if isinstance(value, list):
        return np.array(value, dtype=float)
    shape = [int(n) for n in str(value["shape"]).split(",")]
    return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"])).reshape(shape)


def _views(at) -> tuple[str, str, str]:
    head, model, neuron = [el.proto.srcdoc for el in at.get("iframe")]
    return head, model, neuron


def _shown(at) -> dict:
    """What each bertviz view was built to show first."""
    head, model, neuron = _views(at)
    params = _json_after(head, "const params = ")
    neuron_params = _json_after(neuron, "window.bertviz_params = ")
    return {
        "head": (params["include_layers"], params["layer"], params["heads"]),
        "model_opened": re.search(r'getElementById\("(attn_background_\d+_\d+)"\)', model).group(1),
        "neuron": (neuron_params["layer"], neuron_params["head"]),
    }


def test_our_layer_and_head_drive_every_bertviz_view(tiny_models):
    folder = tiny_models["bert-mlm"]
    at = open_page(ATTENTION, folder)
    ok(at)
    head_doc = _views(at)[0]
    assert 'Layer: <select id="layer">' not in head_doc and '<select id="layer" hidden>' in head_doc
    # Layer 1 of 2 (the middle) and head 0; the model view draws layers [0, 1] and heads [0, 1].
    assert _shown(at) == {"head": ([1], 1, [0]), "model_opened": "attn_background_1_0", "neuron": (1, 0)}

    at.selectbox(key=f"att_layer_{folder}").set_value(0)
    at.selectbox(key=f"att_head_{folder}").set_value(1).run()
    ok(at)
    assert _shown(at) == {"head": ([0], 0, [1]), "model_opened": "attn_background_0_1", "neuron": (0, 1)}
    assert '"layer 0, head 1"' in next(c for c in at.get("plotly_chart") if '"layer 0, head 1"' in c.proto.spec).proto.spec


def test_the_sinks_toggle_reaches_the_bertviz_views(tiny_models):
    folder = tiny_models["bert-mlm"]
    at = open_page(ATTENTION, folder)
    at.toggle(key=f"att_sinks_{folder}").set_value(True).run()
    ok(at)
    head_doc, model_doc, _ = _views(at)
    tokens = _json_after(head_doc, "const params = ")["attention"][0]["left_text"]
    special = [i for i, t in enumerate(tokens) if t in ("[CLS]", "[SEP]")]
    for doc in (head_doc, model_doc):
        att = np.array(_json_after(doc, "const params = ")["attention"][0]["attn"])  # [L, H, T, T]
        assert np.all(att[..., special] == 0)
        np.testing.assert_allclose(att.sum(-1), 1.0, atol=5e-3)  # re-normalised, as the heatmaps
    assert any("sinks removed" in c.value for c in at.caption)


def test_the_all_heads_grid_has_token_labels(tiny_models):
    folder = tiny_models["bert-mlm"]
    at = open_page(ATTENTION, folder)
    ok(at)
    grid = next(c for c in charts(at) if c["layout"].get("title", {}).get("text", "").endswith("all heads"))
    layout = grid["layout"]
    n_tokens = len(grid["data"][0]["x"])  # over GRID_TICKS: every other token is named
    assert n_tokens > GRID_TICKS and layout["yaxis"]["tickvals"] == grid["data"][0]["x"][::2]
    assert layout["yaxis"]["showticklabels"] and layout["yaxis"]["tickvals"][:2] == ["0:[CLS]", "2:bank"]
    assert any(axis.get("showticklabels") and axis["tickvals"] == layout["yaxis"]["tickvals"]
               for name, axis in layout.items() if name.startswith("xaxis"))


@pytest.fixture(scope="module")
def deeper_bert(tmp_path_factory):
    """A tiny BERT with 4 layers (5 hidden states), against the tiny ELMo's 3."""
    from tiny_models import bert_tokenizer

    folder = tmp_path_factory.mktemp("bert4")
    tokenizer, vocab_size = bert_tokenizer()
    config = tf.BertConfig(vocab_size=vocab_size, max_position_embeddings=64, hidden_size=32,
                           num_hidden_layers=4, num_attention_heads=2, intermediate_size=64)
    tf.BertModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_the_same_mix_tab_carries_elmos_mix(deeper_bert):
    at = open_page(ELMO, ["elmo-tiny-test"], [deeper_bert])
    at.sidebar.selectbox(key="elmo_compare").set_value(deeper_bert).run()
    ok(at)
    at.button(key="mix_elmo-tiny-test_preset_top layer only").click().run()
    at.slider(key="mix_elmo-tiny-test_gamma").set_value(2.0).run()
    ok(at)
    elmo, other = [df.value for df in at.dataframe if WEIGHTS in df.value.columns]
    np.testing.assert_allclose(elmo["s_j"], [-5, -5, 5])
    # ELMo's s at relative depths 0, ¼, ½, ¾, 1: a straight line between its layers.
    np.testing.assert_allclose(other["s_j"], [-5, -5, -5, 0, 5])
    np.testing.assert_allclose(other["γ · weight"].sum(), 2.0)
    assert not [s for s in at.slider if s.key.startswith(f"mix_{deeper_bert}")]  # one set of sliders


@pytest.fixture
def umap_counts_as_warm(monkeypatch):
    monkeypatch.setattr(polysemy, "_warm_done", True)  # these tests never pick UMAP


def test_the_cosine_colours_span_the_data(tiny_models, umap_counts_as_warm):
    folder = tiny_models["bert-mlm"]
    at = open_page(LAB, folder)
    ok(at)
    (heat,) = [c["data"][0] for c in charts(at) if "cosine %{z" in c["data"][0].get("hovertemplate", "")]
    z = _array(heat["z"])
    off = z[~np.eye(len(z), dtype=bool)]
    assert heat["zmin"] == pytest.approx(off.min()) and heat["zmax"] == 1.0
    assert f"{off.min():.2f} to 1" in heat["colorbar"]["title"]["text"]
