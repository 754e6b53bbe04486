"""Figures are built once per input and shared by every session (issue 15, one classroom):
a second session on the same input builds none and is shown the same figures, which equal a
fresh build; a new input or projector mode gets its own."""

import json
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from apptest import charts, ok, open_page

import ctxlens.figures.attention as fig_attention
import ctxlens.figures.basic as fig_basic
from ctxlens.cache import CACHE, weigh
from ctxlens.models.registry import analyze_text

APP = Path(__file__).resolve().parents[1] / "app"
HOME, ATTENTION = str(APP / "Home.py"), str(APP / "pages" / "1_Attention.py")
BUILDERS = {  # (module, name) of every figure builder the two pages call
    (fig_basic, "hidden_norm_heatmap"), (fig_basic, "for_projector"), (fig_attention, "head_heatmap"),
    (fig_attention, "layer_heads_grid"), (fig_attention, "attention_lines"), (fig_attention, "head_summary_heatmap"),
}


@pytest.fixture
def builds(monkeypatch):
    """How many times each figure builder ran, counted while the pages run."""
    counts = {name: 0 for _, name in BUILDERS}
    for module, name in BUILDERS:
        def counted(*args, _build=getattr(module, name), _name=name, **kwargs):
            counts[_name] += 1
            return _build(*args, **kwargs)
        monkeypatch.setattr(module, name, counted)
    return counts


def session(page, folder, text, projector=False):
    at = open_page(page, [folder], w_text=text, ctx_projector=projector)
    ok(at)
    return at


def test_a_second_session_on_the_same_input_builds_no_figure(tiny_models, builds):
    folder, text = tiny_models["bert-mlm"], "Shared by the whole class: the river bank."
    first = {page: charts(session(page, folder, text)) for page in (HOME, ATTENTION)}
    built = dict(builds)
    assert built["hidden_norm_heatmap"] == 1 and built["layer_heads_grid"] == 1
    assert built["head_heatmap"] == 3  # one head (also the fallbacks' figure), mean, rollout
    second = {page: charts(session(page, folder, text)) for page in (HOME, ATTENTION)}
    assert builds == built  # nothing built again
    assert second == first and len(first[ATTENTION]) == 6

    session(HOME, folder, "Another sentence is another input.")
    assert builds["hidden_norm_heatmap"] == 2


def test_the_shared_figure_equals_a_fresh_build(tiny_models):
    folder, text = tiny_models["gpt2"], "A figure built once, shown to all."
    shown = [charts(session(HOME, folder, text)) for _ in range(2)]
    record = analyze_text(folder, text)
    fresh = json.loads(fig_basic.hidden_norm_heatmap(record).to_json())
    assert shown[0] == shown[1] == [fresh]
    shared = charts(session(ATTENTION, folder, text))
    CACHE.clear()  # every figure is built again, from a new forward: the same
    assert charts(session(ATTENTION, folder, text)) == shared


def test_projector_mode_has_its_own_shared_figure(tiny_models, builds):
    folder, text = tiny_models["bert-mlm"], "Read from the back of the room."
    big = [charts(session(HOME, folder, text, projector=True))[0] for _ in range(2)]
    plain = charts(session(HOME, folder, text))[0]
    assert builds["for_projector"] == 1 and builds["hidden_norm_heatmap"] == 1
    assert big[0] == big[1] and big[0]["layout"]["font"]["size"] == fig_basic.PROJECTOR_PX
    assert "font" not in plain["layout"] and plain["data"][0]["z"] == big[0]["data"][0]["z"]


def test_a_loaded_model_leaves_the_collectors_sweeps_once(tiny_models, monkeypatch):
    """Streamlit collects garbage after every run; the objects alive once a model is loaded
    (the model, torch, transformers) are frozen out of those sweeps the first time only."""
    from ui import running

    freezes = []
    monkeypatch.setattr(running.gc, "freeze", lambda: freezes.append(1))
    monkeypatch.setattr(running, "_SETTLED", set())
    for _ in range(2):
        session(HOME, tiny_models["gpt2"], "Loaded once, frozen once.")
    assert len(freezes) == 1


def test_a_cached_figure_weighs_what_it_holds():
    fig = go.Figure(go.Heatmap(z=np.zeros((100, 100))))
    assert 80_000 <= weigh(fig) <= 2 * 80_000  # float64 cells, not the few bytes of the object
