"""The polysemy lab and the contextuality page under Streamlit's AppTest (tiny models)."""

import base64
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from ctxlens.analysis import polysemy

APP = Path(__file__).resolve().parents[1] / "app"
LAB = str(APP / "pages" / "2_Polysemy_lab.py")
CONTEXT = str(APP / "pages" / "3_Contextuality.py")
sys.path.insert(0, str(APP))  # `streamlit run app/Home.py` puts app/ on the path for `from ui import ...`


@pytest.fixture(autouse=True, scope="module")
def umap_counts_as_warm():
    """The lab starts UMAP's ~15 s numba compile in a background thread; these tests never
    pick UMAP, so mark it done rather than pay for it on every test run."""
    before = polysemy._warm_done
    polysemy._warm_done = True
    yield
    polysemy._warm_done = before


def _page(path, models, extra=()):
    at = AppTest.from_file(path, default_timeout=180)
    at.session_state["ctx_models"] = list(models)
    at.session_state["ctx_extra_models"] = list(extra)
    return at.run()


def _frame(at, column):
    return next(df.value for df in at.dataframe if column in df.value.columns)


def _charts(at):
    return [c.proto.spec for c in at.get("plotly_chart")]


def _ok(at):
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


# ---------------------------------------------------------------- polysemy lab


def test_lab_bank_preset_with_bert_and_elmo(tiny_models):
    folder = tiny_models["bert-mlm"]
    at = _page(LAB, [folder, "elmo-tiny-test"], [folder])
    _ok(at)
    assert at.text_input(key="lab_target").value == "bank"
    metrics = _frame(at, "silhouette")
    assert metrics.groupby("model").size().to_dict() == {folder: 3, "elmo-tiny-test": 3}
    assert len(_charts(at)) == 4  # scatter, two cosine matrices, separation lines
    assert [t.label for t in at.tabs] == [folder, "elmo-tiny-test"]
    labels = {b.label for b in at.get("download_button")}
    assert {"Download the 2-D coordinates (CSV)", "Download the separation metrics (CSV)"} <= labels
    assert "Numbers (CSV)" in labels  # every figure's own numbers
    assert any("random weights" in c.value for c in at.caption)

    at.slider(key="lab_depth").set_value(1.0).run()
    at.selectbox(key="lab_projection").set_value("t-SNE").run()
    at.radio(key="lab_which").set_value("first in each sentence").run()
    _ok(at)
    assert "layer 2 of 2" in _charts(at)[0]  # the slider at 1.0 takes the last layer


def test_lab_other_preset_fills_word_and_sentences():
    at = _page(LAB, ["elmo-tiny-test"])
    at.selectbox(key="lab_preset").set_value("plant").run()
    _ok(at)
    assert at.text_input(key="lab_target").value == "plant"
    text = at.text_area(key="lab_text").value
    assert text.count("\n") == 19 and "factory | " in text
    assert len(_frame(at, "silhouette")) == 3


def test_lab_target_absent_and_only_inside_other_words():
    at = _page(LAB, ["elmo-tiny-test"])
    at.text_input(key="lab_target").set_value("zebra").run()
    _ok(at)
    assert any("'zebra' does not occur as a whole word in any sentence." == w.value for w in at.warning)

    at.text_input(key="lab_target").set_value("bank")
    at.text_area(key="lab_text").set_value("The riverbank flooded.\nBanking is dull.").run()
    _ok(at)
    assert any("only inside other words: 'riverbank', 'Banking'" in w.value for w in at.warning)
    assert at.selectbox(key="lab_preset").value == "(my own sentences)"


def test_lab_lists_sentences_without_the_target_and_asks_for_senses():
    at = _page(LAB, ["elmo-tiny-test"])
    at.text_area(key="lab_text").set_value(
        "The bank was shut.\nA dog barked.\nWe sat by the bank.\nThe riverbank flooded.").run()
    _ok(at)
    assert any("2 of 4 sentences do not contain 'bank'" in i.value for i in at.info)
    assert _frame(at, "sentence")["sentence"].tolist() == ["A dog barked.", "The riverbank flooded."]
    assert any("at least two senses" in i.value for i in at.info)  # untagged: no separation plot


def test_lab_html_and_script_sentences_are_escaped():
    at = _page(LAB, ["elmo-tiny-test"])
    at.text_area(key="lab_text").set_value(
        "finance | <script>alert('x')</script> the bank closed\n"
        "river | <b>bank</b> of the river\n"
        "<img src=x onerror=alert(1)> | a bank of snow\n"
        "river | the bank & the ducks").run()
    _ok(at)
    scatter = _charts(at)[0]
    assert "<script>" not in scatter and "&lt;script&gt;" in scatter
    assert "<img" not in scatter


def test_lab_uploaded_csv(tiny_models):
    folder = tiny_models["bert-mlm"]
    at = _page(LAB, [folder], [folder])
    csv = b"sentence,sense\nShe went to the bank.,money\nThe bank of the river.,river\nA bank loan.,money\n"
    at.file_uploader(key="lab_upload").set_value(("s.csv", csv, "text/csv")).run()
    _ok(at)
    assert any("Using 3 sentences from the uploaded file" in c.value for c in at.caption)
    metrics = _frame(at, "silhouette")
    assert len(metrics) == 3 and metrics["accuracy"].notna().all()


def test_lab_empty_target_and_no_model():
    at = _page(LAB, ["elmo-tiny-test"])
    at.text_input(key="lab_target").set_value("  ").run()
    assert not at.exception
    assert any("Type the word to follow" in e.value for e in at.error)
    at.text_input(key="lab_target").set_value("bank")
    at.sidebar.multiselect[0].set_value([]).run()  # every model taken out of the sidebar
    assert not at.exception
    assert any("Pick at least one model" in i.value for i in at.info)


def _slider_as_drawn(at, key):
    """What the browser shows on a slider it draws afresh: the value the server sends with
    the element (set_value), else the slider's default. AppTest reads the server's value."""
    proto = at.slider(key=key).proto
    return (proto.value if proto.set_value else proto.default)[0]


def test_lab_layer_slider_stays_with_the_charts_after_the_target_changes():
    at = _page(LAB, ["elmo-tiny-test"])
    at.slider(key="lab_depth").set_value(1.0).run()
    assert "layer 2 of 2" in _charts(at)[0]
    # A target the sentences lack stops the page before the slider: the browser drops it.
    at.text_input(key="lab_target").set_value("plant").run()
    assert not at.slider and any("'plant' does not occur" in w.value for w in at.warning)
    at.selectbox(key="lab_preset").set_value("plant").run()
    _ok(at)
    # Drawn again, the slider must show the depth the charts use (it showed 0.5, the default,
    # over charts of the last layer, and the next click moved the charts to layer 1).
    assert at.slider(key="lab_depth").value == 1.0
    assert _slider_as_drawn(at, "lab_depth") == 1.0
    assert "layer 2 of 2" in _charts(at)[0]
    assert "'plant' in elmo-tiny-test, layer 2" in _charts(at)[1]


def test_lab_layer_of_identical_vectors_is_said_and_drawn_as_one_point():
    at = _page(LAB, ["elmo-tiny-test"])
    assert not any("all vectors identical" in i.value for i in at.info)
    at.slider(key="lab_depth").set_value(0.0).run()  # ELMo's layer 0: the character CNN
    _ok(at)
    assert any("elmo-tiny-test, layer 0: all vectors identical at this layer" in i.value for i in at.info)
    scatter = json.loads(_charts(at)[0])
    assert scatter["layout"]["annotations"][0]["text"].endswith("layer 0 of 2 · all vectors identical")
    for trace in scatter["data"]:  # one point, not rounding noise blown up by PCA
        for axis in ("x", "y"):
            xy = trace[axis]
            xy = np.frombuffer(base64.b64decode(xy["bdata"]), xy["dtype"]) if isinstance(xy, dict) else xy
            assert not np.any(xy)
    metrics = _frame(at, "silhouette")
    assert metrics.loc[0, "silhouette"] == 0.0 and metrics.loc[0, "accuracy"] == 0.5


# ---------------------------------------------------------------- contextuality


def test_contextuality_corpus_runs_on_button(tiny_models):
    folder = tiny_models["gpt2"]
    at = _page(CONTEXT, [folder, "elmo-tiny-test"], [folder])
    _ok(at)
    assert any("Press **Run**" in i.value for i in at.info)
    assert not at.dataframe  # nothing computed before Run
    at.number_input(key="cx_n").set_value(30)
    at.button(key="cx_run").click().run()
    _ok(at)
    table = _frame(at, "self_similarity_adj")
    assert table.groupby("model").size().to_dict() == {folder: 3, "elmo-tiny-test": 3}
    assert (table["n_types"] > 0).all()
    assert "What the paper found" in [e.label for e in at.expander]
    assert any("anisotropic" in m.value for m in at.markdown)
    assert len(_charts(at)) == 2  # raw and baseline-adjusted
    labels = [b.label for b in at.get("download_button")]
    assert labels.count("Download the table (CSV)") == 1 and "Numbers (CSV)" in labels

    at.selectbox(key="cx_pooling").set_value("first").run()  # a new key: waits for Run again
    _ok(at)
    assert any("Press **Run**" in i.value for i in at.info)
    at.selectbox(key="cx_pooling").set_value("mean").run()  # back: cached, no Run needed
    assert len(_frame(at, "self_similarity_adj")) == 6


def test_contextuality_own_sentences_with_html():
    at = _page(CONTEXT, ["elmo-tiny-test"])
    at.radio(key="cx_source").set_value("My own sentences").run()
    assert any("at least two sentences" in w.value for w in at.warning)
    at.text_area(key="cx_text").set_value(
        "<script>alert('x')</script> dogs bark\n<b>Cats</b> purr & sleep\nBirds sing.").run()
    at.button(key="cx_run").click().run()
    _ok(at)
    assert len(_frame(at, "self_similarity")) == 3
    assert any("No word occurs in 5 or more" in w.value for w in at.warning)


def test_lab_tsne_projection_runs_with_progress_and_is_seeded(tiny_models):
    folder = tiny_models["bert-mlm"]
    at = _page(LAB, [folder, "elmo-tiny-test"], [folder])
    at.selectbox(key="lab_projection").set_value("t-SNE").run()
    _ok(at)
    first = _charts(at)[0]
    at.run()  # same seed, same picture
    assert _charts(at)[0] == first
