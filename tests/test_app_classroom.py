"""Classroom polish (issue 14) under AppTest and on figures: Home's defaults, norm map and
token table, lessons and links that never leave the session unusable, projector figures."""

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from apptest import charts, ok, open_page
from streamlit.testing.v1 import AppTest

from ctxlens.figures.basic import for_projector, hidden_norm_heatmap
from ctxlens.figures.export import figure_table
from ctxlens.record import Activations, Analysis, Family, Word

APP = Path(__file__).resolve().parents[1] / "app"
HOME, MASKED_LM = str(APP / "Home.py"), str(APP / "pages" / "4_Masked_LM.py")
BERT = "bert-base-uncased"
LESSON = {"model": BERT, "text": "The doctor told the [MASK] to rest for a week."}


def _record(hidden: np.ndarray) -> Analysis:
    n = hidden.shape[1]
    return Analysis(
        model_key="toy", family=Family.CAUSAL_LM, text="w " * n, text_pair=None,
        tokens=tuple(f"t{i}" for i in range(n)), token_ids=np.arange(n),
        offsets=np.array([[2 * i, 2 * i + 1] for i in range(n)]), word_ids=np.arange(n),
        special_mask=np.zeros(n, bool), segment_ids=np.zeros(n, int),
        words=tuple(Word("w", 2 * i, 2 * i + 1) for i in range(n)), acts=Activations.from_arrays(hidden),
    )


def _bert_offline():
    from ui.state import unavailable

    if unavailable(BERT) is None:
        pytest.skip(f"{BERT} can run here (cached or online): the offline lesson does not apply")


def test_an_attention_sink_is_coloured_on_a_log_scale_and_many_layers_are_thinned():
    hidden = np.ones((31, 5, 4), np.float32)
    hidden[3:, 0] *= 10_000  # the first token's norm, hundreds of times the others
    heatmap = hidden_norm_heatmap(_record(hidden))
    trace = heatmap.data[0]
    assert "log scale" in trace.colorbar.title.text
    assert set(trace.colorbar.ticktext) >= {"10", "10,000"}
    np.testing.assert_allclose(trace.customdata, np.linalg.norm(hidden, axis=-1))  # hover: the real norm
    table = figure_table(heatmap)  # the CSV: the colour's log10 and the norm itself
    np.testing.assert_allclose(table["norm"], np.linalg.norm(hidden, axis=-1).ravel(), rtol=1e-6)
    np.testing.assert_allclose(table["value"], np.log10(table["norm"]), rtol=1e-5)
    assert len(range(0, 31, heatmap.layout.yaxis.dtick)) <= 12
    flat = hidden_norm_heatmap(_record(np.ones((3, 5, 4), np.float32) * np.arange(1, 4)[:, None, None]))
    assert "log" not in flat.data[0].colorbar.title.text and flat.layout.yaxis.dtick == 1


def test_projector_figures_have_no_text_under_18_px_and_leave_the_original_alone():
    fig = go.Figure([go.Heatmap(z=[[1, 2]], colorbar=dict(title="p")),
                     go.Bar(x=["a"], y=[1], text=["n/a"], marker=dict(color=[1], colorbar=dict(title="c")))])
    fig.update_layout(title="t", height=300, xaxis=dict(tickfont=dict(size=9)), coloraxis=dict(colorscale="Viridis"))
    fig.add_annotation(text="note", font=dict(size=10))
    big = for_projector(fig)
    layout = big.layout
    sizes = [layout.font.size, layout.title.font.size, layout.legend.font.size, layout.hoverlabel.font.size,
             layout.xaxis.tickfont.size, layout.xaxis.title.font.size, layout.yaxis.tickfont.size,
             layout.annotations[0].font.size, layout.coloraxis.colorbar.tickfont.size,
             big.data[0].colorbar.tickfont.size, big.data[0].colorbar.title.font.size,
             big.data[1].marker.colorbar.tickfont.size, big.data[1].textfont.size]
    assert min(sizes) >= 18 and layout.height > 300
    assert fig.layout.xaxis.tickfont.size == 9 and fig.layout.height == 300
    # A chart without a scale gets none (an empty colorbar once covered a line chart's legend).
    lines = for_projector(go.Figure([go.Scatter(x=[0, 1], y=[1, 2], mode="lines+markers"), go.Heatmap(z=[[1]])]))
    assert lines.data[0].marker.colorbar.to_plotly_json() == {} and lines.data[1].colorbar.tickfont.size >= 18


def test_home_shows_the_three_families_elmo_without_ids_and_a_log_norm_map():
    at = AppTest.from_file(HOME, default_timeout=180).run()  # a fresh session: Home's own defaults
    ok(at)
    assert at.session_state["ctx_models"][-1] == "elmo-tiny-test"
    assert any("random weights" in c.value for c in at.caption)
    elmo = next(df.value for df in at.dataframe if "id" in df.value.columns and (df.value["id"] == "—").all())
    assert elmo["word"].tolist()[:2] == ["The", "bank"]
    assert any("no vocabulary ids" in c.value for c in at.caption)
    smol = next(c for c in charts(at) if "SmolLM2" in str(c["layout"]["title"]))
    assert "log scale" in smol["data"][0]["colorbar"]["title"]["text"]


def test_an_offline_lesson_is_disabled_with_what_it_needs_and_what_runs_instead(tiny_models):
    _bert_offline()
    folder = tiny_models["bert-mlm"]
    at = open_page(HOME, [folder])
    ok(at)
    links = {link.proto.label: link.proto for link in at.get("page_link")}
    assert links["What does BERT predict?"].disabled
    assert any(BERT in c.value and "HF_HUB_OFFLINE" in c.value for c in at.caption)
    instead = next(p for label, p in links.items() if "SmolLM2" in label)
    assert not instead.disabled and "Next_token" in instead.page and "SmolLM2" in instead.query_string
    assert at.session_state["ctx_models"] == [folder]


def test_the_lessons_link_opened_offline_keeps_the_sessions_models(tiny_models):
    _bert_offline()
    folder = tiny_models["bert-mlm"]
    at = AppTest.from_file(MASKED_LM, default_timeout=180)
    at.session_state["ctx_models"] = [folder]
    at.session_state["ctx_extra_models"] = [folder]
    for name, value in LESSON.items():
        at.query_params[name] = value
    at.run()
    assert not at.exception
    assert at.session_state["ctx_models"] == [folder]
    (note,) = [w.value for w in at.warning if BERT in w.value]
    assert "left out" in note and folder in note and "Home" in note
    assert at.text_area[0].value == LESSON["text"]  # the lesson's other inputs still arrive


def test_projector_mode_enlarges_the_figures_the_page_draws(tiny_models):
    folder = tiny_models["bert-mlm"]
    at = open_page(HOME, [folder])
    at.sidebar.toggle(key="w_projector").set_value(True).run()
    ok(at)
    (spec,) = charts(at)
    assert spec["layout"]["font"]["size"] >= 18 and spec["layout"]["xaxis"]["tickfont"]["size"] >= 18


def test_online_the_lesson_is_a_plain_link_that_downloads_on_demand(tiny_models, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # nothing is downloaded: Home only asks what could run
    folder = tiny_models["bert-mlm"]
    at = open_page(HOME, [folder])
    ok(at)
    links = {link.proto.label: link.proto for link in at.get("page_link")}
    assert not links["What does BERT predict?"].disabled
    assert not any("SmolLM2, offline" in label for label in links)


def test_a_link_choosing_float32_keeps_it_where_half_precision_is_the_default(monkeypatch, tiny_models):
    monkeypatch.setenv("CTXLENS_DTYPE", "bfloat16")
    at = AppTest.from_file(MASKED_LM, default_timeout=180)
    at.session_state["ctx_models"] = at.session_state["ctx_extra_models"] = [tiny_models["bert-mlm"]]
    at.run()
    assert at.selectbox(key="w_dtype").value == "bfloat16"  # the machine's default
    linked = AppTest.from_file(MASKED_LM, default_timeout=180)
    linked.session_state["ctx_models"] = linked.session_state["ctx_extra_models"] = [tiny_models["bert-mlm"]]
    linked.query_params["w_dtype"] = "float32 (the model's numbers)"  # the link holds the shown label
    linked.run()
    ok(linked)
    assert linked.selectbox(key="w_dtype").value == "auto"
