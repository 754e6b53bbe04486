"""The Attention page under Streamlit's AppTest, with the tiny BERT and GPT-2 models."""

import base64
import json
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[1] / "app"
PAGE = "pages/1_Attention.py"
# Tabs of one model: 3 bertviz, then heatmaps.
PLOTLY_TABS = ("All heads of a layer", "One head", "Head summary", "Mean & rollout")


def _page(models, extra=()):
    # Run from Home so that `from ui import ...` resolves as under `streamlit run app/Home.py`.
    at = AppTest.from_file(str(APP / "Home.py"), default_timeout=180)
    at.session_state["ctx_models"] = list(models)
    at.session_state["ctx_extra_models"] = list(extra)
    at.switch_page(PAGE)
    return at


def _run_ok(at):
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def _iframes(at):
    return [el.proto.srcdoc for el in at.get("iframe")]


def _heatmap_z(spec: str) -> np.ndarray:
    """The first trace's z of a plotly spec; plotly ships numpy arrays as base64 "bdata"."""
    z = json.loads(spec)["data"][0]["z"]
    if isinstance(z, list):
        return np.array(z, dtype=float)
    shape = [int(n) for n in str(z["shape"]).split(",")]
    return np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.dtype(z["dtype"])).reshape(shape)


def test_encoder_shows_bertviz_and_heatmaps(tiny_models):
    folder = tiny_models["bert-mlm"]
    at = _run_ok(_page([folder], [folder]))
    docs = _iframes(at)
    assert len(docs) == 3  # head view + model view + neuron view
    assert all("Content-Security-Policy" in d and "https://cdn" not in d for d in docs)
    assert '"[CLS]"' in docs[0] and '"bank"' in docs[0]  # the record's tokens went in
    # grid, head, lines, head summary, mean, rollout
    assert len(at.get("plotly_chart")) == 6
    assert [t.label for t in at.tabs][-4:] == list(PLOTLY_TABS)
    assert any("BERT-style encoder" in m.value for m in at.markdown)
    assert any("WordPiece" in c.value for c in at.caption)
    assert '"queries"' in docs[2] and '"[CLS]"' in docs[2]  # the neuron view got our q/k


def test_causal_model_is_named_and_masked(tiny_models):
    folder = tiny_models["gpt2"]
    at = _run_ok(_page([folder], [folder]))
    assert len(_iframes(at)) == 3
    assert any("GPT-style causal LM" in m.value and "earlier tokens" in m.value for m in at.markdown)
    assert any("byte-level BPE" in c.value for c in at.caption)
    head = next(c for c in at.get("plotly_chart") if '"layer 1, head 0"' in c.proto.spec)
    z = _heatmap_z(head.proto.spec)
    upper = np.triu(np.ones(z.shape, dtype=bool), k=1)
    assert np.isnan(z[upper]).all() and np.isfinite(z[~upper]).all()  # masked keys are gaps
    assert np.allclose(np.nansum(z, axis=1), 1.0, atol=1e-3)


def test_sentence_pair_feeds_the_a_b_filter(tiny_models):
    folder = tiny_models["bert-mlm"]
    at = _run_ok(_page([folder], [folder]))
    at.checkbox(key="w_text_pair_on").check().run()
    at.text_area(key="w_text_pair").set_value("Who sat on the mat?")
    at = _run_ok(at)
    head_doc = _iframes(at)[0]
    assert '"mat"' in head_doc and "Sentence A" in head_doc  # bertviz's A/B filter menu
    assert any("filters sentence A / B" in c.value for c in at.caption)


def test_toggles_merge_words_and_drop_sinks(tiny_models):
    folder = tiny_models["bert-mlm"]
    at = _run_ok(_page([folder], [folder]))
    at.text_area(key="w_text").set_value("The banking river.")
    at = _run_ok(at)
    head_spec = next(c for c in at.get("plotly_chart") if '"layer 1, head 0"' in c.proto.spec).proto.spec
    assert "[CLS]" in head_spec and "##ing" in head_spec
    at.toggle(key=f"att_merge_{folder}").set_value(True)
    at.toggle(key=f"att_sinks_{folder}").set_value(True)
    at = _run_ok(at)
    head_spec = next(c for c in at.get("plotly_chart") if '"layer 1, head 0"' in c.proto.spec).proto.spec
    assert "[CLS]" not in head_spec and "##ing" not in head_spec
    assert '"1:banking"' in head_spec  # one row per word, labelled by the word


def test_layer_and_statistic_pickers(tiny_models):
    folder = tiny_models["bert-mlm"]
    at = _run_ok(_page([folder], [folder]))
    at.selectbox(key=f"att_layer_{folder}").set_value(0)
    at.selectbox(key=f"att_stat_{folder}").set_value("self")
    at = _run_ok(at)
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    assert any("layer 0: all heads" in s for s in specs)
    assert any("Attention to self" in s for s in specs)
    assert any("rollout to layer 0" in s for s in specs)


def test_two_models_in_tabs(tiny_models):
    bert, gpt2 = tiny_models["bert-mlm"], tiny_models["gpt2"]
    at = _run_ok(_page([bert, gpt2], [bert, gpt2]))
    labels = [t.label for t in at.tabs]  # depth first: a model's tab, then its views
    assert labels.index(bert) < labels.index(gpt2) and labels.count("bertviz head view") == 2
    assert len(_iframes(at)) == 6
    assert len(at.get("plotly_chart")) == 12


def test_elmo_gets_an_info_not_an_error(tiny_models):
    folder = tiny_models["bert-mlm"]
    at = _run_ok(_page(["elmo-tiny-test", folder], [folder]))
    assert any("ELMo biLM" in i.value and "needs attention heads" in i.value for i in at.info)
    assert len(_iframes(at)) == 3  # the BERT tab still shows its views


def test_long_input_skips_the_head_view_and_keeps_heatmaps(tiny_models, monkeypatch):
    # 58 tokens × 2 heads is small; shrink the line budget to force the long-input path.
    import ctxlens.figures.bertviz_html as bv

    monkeypatch.setattr(bv, "MAX_SVG_LINES", 5_000)
    folder = tiny_models["bert-mlm"]
    at = _run_ok(_page([folder], [folder]))
    at.text_area(key="w_text").set_value(" ".join(["the cat sat on the mat ."] * 8))
    at = _run_ok(at)
    assert any("58 tokens" in m.value for m in at.markdown)
    assert any("would draw" in i.value and "SVG lines" in i.value for i in at.info)
    docs = _iframes(at)
    assert len(docs) == 2  # the model view, cut down to one layer and the heads that fit; neuron view
    assert any("only layer 1 is drawn" in c.value for c in at.caption)
    assert at.multiselect(key=f"att_mv_heads_{folder}_1").value == [0]
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    assert sum('"layer 1, head 0"' in s for s in specs) == 2  # fallback heatmap + "One head"
