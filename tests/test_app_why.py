"""The Why page, the Why? tabs of the prediction pages and the Polysemy lab's sense
attribution under Streamlit's AppTest: the embedded defaults and the tiny models."""

import base64
import json
from pathlib import Path

import numpy as np
import pytest

import tiny_models as tm  # the module; `tiny_models` is the fixture of folders
from apptest import charts as _charts
from apptest import ok as _ok
from apptest import open_page as _page

from ctxlens.analysis import polysemy
from ctxlens.methods import attribution as A
from ctxlens.methods import targets as T
from ctxlens.models.registry import get_model

PAGES = Path(__file__).resolve().parents[1] / "app" / "pages"
WHY, MLM, NEXT, QA, LAB = (str(PAGES / f) for f in (
    "8_Why.py", "4_Masked_LM.py", "6_Next_token.py", "7_Question_answering.py", "2_Polysemy_lab.py"))
SMOLLM, MINILM = "SmolLM2-135M-Instruct", "all-MiniLM-L6-v2"
HOSTILE = "<script>alert('x')</script> <b>bold</b> **star** $x$"


@pytest.fixture(autouse=True, scope="module")
def umap_counts_as_warm():
    """The lab's UMAP warm-up thread is not needed: these tests never pick UMAP."""
    before = polysemy._warm_done
    polysemy._warm_done = True
    yield
    polysemy._warm_done = before


def _array(value) -> np.ndarray:
    """A plotly JSON array: a list, or numpy's bytes in base64 ({"dtype", "bdata", "shape"})."""
    if isinstance(value, dict):
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return flat.reshape([int(n) for n in str(value.get("shape", len(flat))).split(",")])
    return np.asarray(value)


def _shaded(at):
    return [m.value for m in at.markdown if "ctx-shaded" in m.value]


def _warned(at, words):
    return any(words in w.value for w in at.warning)


# --- the Why page -----------------------------------------------------------------------------


def test_smollm2_explains_paris_and_france_is_among_the_words():
    at = _page(WHY, SMOLLM, extra=[], why_steps=8)
    _ok(at)
    assert at.text_area(key="why_text").value == "The capital of France is"
    (shaded,) = _shaded(at)
    assert ">France</span>" in shaded and ">capital</span>" in shaded
    bars = _charts(at)[0]
    assert "France" in bars["layout"]["xaxis"]["ticktext"]
    assert any("␣Paris" in m.value and "log P" in m.value for m in at.markdown)
    assert any("Sum of the attributions" in m.value for m in at.markdown)
    labels = {b.label for b in at.get("download_button")}
    assert "Words and scores (CSV)" in labels


def test_minilm_has_no_head_to_explain_and_models_that_do_are_offered():
    at = _page(WHY, MINILM, extra=[])
    assert not at.exception
    (error,) = at.error
    assert "no trained head" in error.value and SMOLLM in error.value
    assert any(b.label.startswith(f"Use {SMOLLM}") for b in at.button)
    assert not _charts(at) and not _shaded(at)


def test_tiny_bert_explains_the_mask_and_says_what_is_wrong_with_the_input(tiny_models):
    folder = tiny_models["bert-mlm"]
    at = _page(WHY, folder, why_steps=4)
    _ok(at)
    assert "[MASK]" in at.text_area(key="why_text").value
    assert _shaded(at) and _charts(at)

    at.text_area(key="why_text").set_value("the cat sat on the mat.").run()
    assert not at.exception and _warned(at, "[MASK]") and not _charts(at)

    at.text_area(key="why_text").set_value("the [MASK] sat on the mat.").run()
    at.radio(key="why_target_mode").set_value("a token I type").run()
    at.text_input(key="why_token").set_value("xylophone").run()
    assert not at.exception and _warned(at, "is not one token") and not _charts(at)

    at.text_input(key="why_token").set_value("cat").run()
    at.text_input(key="why_contrast").set_value("cat").run()
    assert not at.exception and _warned(at, "The contrast is the target itself")

    at.text_input(key="why_contrast").set_value("dog").run()
    _ok(at)
    assert any("logit(cat) − logit(dog)" in m.value for m in at.markdown)


def test_a_long_text_is_cut_and_the_page_says_so(tiny_models):
    at = _page(WHY, tiny_models["bert-mlm"], why_steps=4)
    at.text_area(key="why_text").set_value("the [MASK] sat. " + "the cat sat on the mat " * 40).run()
    _ok(at)
    assert _warned(at, "only the first")
    assert _shaded(at)


def test_one_token_is_a_message(tiny_models):
    at = _page(WHY, tiny_models["gpt2"], why_steps=4)
    _ok(at)
    at.text_area(key="why_text").set_value("The").run()  # one token of the tiny BPE
    assert not at.exception and _warned(at, "at least two tokens") and not _charts(at)


def test_methods_ablation_heads_and_cross_check(tiny_models):
    folder = tiny_models["bert-mlm"]
    at = _page(WHY, folder, why_steps=4)
    for method in ("gradient-x-input", "occlusion"):
        at.radio(key="why_method").set_value(method).run()
        _ok(at)
        assert len(_charts(at)) == 1 and _shaded(at)
    at.selectbox(key="why_ko_kind").set_value("mlp").run()
    at.number_input(key="why_ko_layer").set_value(1).run()
    _ok(at)
    assert any(m.label == "Without the MLP of layer 1" for m in at.metric)

    at.button(key="why_heads_run").click().run()
    _ok(at)
    heat = _charts(at)[1]
    assert _array(heat["data"][0]["z"]).shape == (2, 2)  # 2 layers x 2 heads

    at.button(key="why_cross_run").click().run()
    _ok(at)
    table = next(df.value for df in at.dataframe if "word" in df.value.columns)
    assert table.shape[1] == 7  # the word and six methods
    agreement = _charts(at)[2]
    assert len(agreement["data"][0]["x"]) == 6
    assert any("Jain & Wallace" in i.value for i in at.info)
    assert {"Word importances (CSV)", "Words and scores (CSV)"} <= {b.label for b in at.get("download_button")}


def test_the_page_escapes_hostile_text(tiny_models):
    at = _page(WHY, tiny_models["bert-mlm"], why_steps=4)
    at.text_area(key="why_text").set_value("[MASK] " + HOSTILE).run()
    _ok(at)
    (shaded,) = _shaded(at)
    assert "<script>" not in shaded and "<b>" not in shaded and "&lt;</span>" in shaded
    assert not any("<script>" in json.dumps(c) for c in _charts(at))


def test_qa_and_nsp_targets(tiny_models):
    at = _page(WHY, tiny_models["bert-qa"], why_steps=4)
    _ok(at)
    assert len(_shaded(at)) == 2  # question and context
    at.radio(key="why_qa_part").set_value(T.QA_END).run()
    _ok(at)
    at = _page(WHY, tiny_models["bert-nsp"], why_steps=4)
    at.radio(key="why_kind").set_value("nsp").run()
    _ok(at)
    assert at.text_area(key="why_pair").value
    assert any("IsNext" in m.value for m in at.markdown)


def test_classifier_labels_and_token_classes(tmp_path):
    folders = tm.save_classifiers(tmp_path)
    at = _page(WHY, folders["bert-seq"], why_steps=4)
    _ok(at)
    assert _shaded(at)
    at.selectbox(key="why_label").set_value(1).run()
    at.selectbox(key="why_label_contrast").set_value(0).run()
    _ok(at)
    assert any("logit(positive) − logit(negative)" in m.value for m in at.markdown)
    at.selectbox(key="why_label_contrast").set_value(1).run()
    assert not at.exception and _warned(at, "The contrast is the label itself")

    at = _page(WHY, folders["bert-tok"], why_steps=4)
    at.selectbox(key="why_label_token").set_value(2).run()
    _ok(at)
    assert _shaded(at)


# --- the Why? tabs --------------------------------------------------------------------------


def test_next_token_why_tab_explains_the_pages_text(tiny_models):
    folder = tiny_models["gpt2"]
    at = _page(NEXT, folder, nt_view="Why?", nt_why_steps=4)
    _ok(at)
    (shaded,) = _shaded(at)
    lm = get_model(folder, "cpu")
    subj = A.subject(lm, "The capital of France is")
    expected = A.integrated_gradients(lm, subj, T.prediction_target(lm, subj.record), steps=4)
    bars = _charts(at)[0]
    assert np.allclose(_array(bars["data"][0]["y"]), expected.word_scores, atol=1e-5)


def test_masked_lm_why_tab_and_its_refusal_for_minilm(tiny_models):
    at = _page(MLM, tiny_models["bert-mlm"], mlm_view="Why?", mlm_why_steps=4)
    _ok(at)
    assert _shaded(at)
    at = _page(MLM, MINILM, extra=[], mlm_view="Why?")
    assert not at.exception and any("no trained head" in e.value for e in at.error)


def test_qa_why_tab(tiny_models):
    at = _page(QA, tiny_models["bert-qa"], qa_view="Why?", qa_why_steps=4)
    _ok(at)
    assert len(_shaded(at)) == 2


# --- the Polysemy lab ------------------------------------------------------------------------


def test_lab_sense_attribution_on_click(tiny_models):
    folder = tiny_models["bert-mlm"]
    at = _page(LAB, [folder, "elmo-tiny-test"], [folder])
    _ok(at)
    assert not _shaded(at)  # nothing before the click
    for model in (folder, "elmo-tiny-test"):
        at.selectbox(key="lab_why_model").set_value(model).run()
        at.selectbox(key="lab_why_occ").set_value(2).run()
        at.button(key="lab_why_sense_run").click().run()
        _ok(at)
        (shaded,) = _shaded(at)
        assert "outline" in shaded  # the occurrence itself
        ranking = next(df.value for df in at.dataframe if "context word" in df.value.columns)
        pulls = ranking["pull toward own sense"].to_numpy()
        assert len(pulls) > 2 and np.all(np.diff(pulls) <= 0)  # strongest pull first
