"""The layer-story figures on synthetic results: their structure, colours that mean one thing
across panels, and user text escaped (no model here)."""

import json

import numpy as np
import pandas as pd
import pytest

from ctxlens.figures.basic import for_projector
from ctxlens.figures.export import figure_table
from ctxlens.figures.layers import (
    MEASURE_COLORS,
    cka_heatmap,
    highlight_html,
    measure_color,
    neighbour_layers_figure,
    neighbours_html,
    probe_figure,
    story_figure,
)
from ctxlens.methods.similarity import LayerSimilarity

LABELS = {"pos_selectivity": "POS probe selectivity", "sense_separation": "sense separation",
          "self_similarity": "self-similarity", "anisotropy": "anisotropy",
          "right_token_mrr": "logit lens", "mix_weight": "ELMo's mix"}


def story(model, n_layers, measures):
    rng = np.random.default_rng(n_layers)
    rows = [{"model": model, "layer": layer, "relative_depth": layer / (n_layers - 1), "measure": m,
             "value": float(rng.random()), "label": LABELS[m]} for m in measures for layer in range(n_layers)]
    return pd.DataFrame(rows)


def probes(model, n_layers):
    depth = np.linspace(0, 1, n_layers)
    return pd.DataFrame({"model": model, "task": "depth", "layer": np.arange(n_layers), "relative_depth": depth,
                         "accuracy": 0.5 + 0.3 * depth, "control": 0.7 - 0.1 * depth, "selectivity": depth - 0.2,
                         "majority": 0.33, "n_train": 100, "n_test": 25})


def sim(model_a="A", model_b="B", la=4, lb=7):
    cka = np.random.default_rng(0).random((la, lb))
    return LayerSimilarity(model_a, model_b, np.arange(la), np.arange(lb), np.linspace(0, 1, la),
                           np.linspace(0, 1, lb), cka if model_a != model_b else np.eye(la), 123)


def across(n_layers=4, top="bank"):
    return pd.DataFrame({"layer": np.arange(n_layers), "relative_depth": np.linspace(0, 1, n_layers),
                         "same_word": [10, 7, 5, 4][:n_layers], "mean_cosine": 0.5,
                         "kept_from_previous": [np.nan, 6, 5, 4][:n_layers], "top_word": top,
                         "top_sentence": f"the {top} of it"})


def test_story_one_panel_per_model_and_one_colour_per_measure():
    frame = pd.concat([story("bert", 13, ["pos_selectivity", "sense_separation", "self_similarity", "anisotropy",
                                          "right_token_mrr"]),
                       story("elmo", 3, ["pos_selectivity", "self_similarity", "anisotropy", "mix_weight"]),
                       story("gpt", 31, ["sense_separation", "right_token_mrr"])])
    fig = story_figure(frame, cols=2)
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["bert", "elmo", "gpt"]
    assert len(fig.data) == 5 + 4 + 2
    colours = {}
    for trace in fig.data:  # the same measure has the same colour in every panel
        colours.setdefault(trace.legendgroup, set()).add(trace.line.color)
    assert all(len(c) == 1 for c in colours.values())
    assert {m: c.pop() for m, c in colours.items()} == {m: MEASURE_COLORS[m] for m in colours}
    assert len(set(MEASURE_COLORS.values())) == len(MEASURE_COLORS)
    legend = [t.name for t in fig.data if t.showlegend]  # each measure once in the legend
    assert sorted(legend) == sorted(LABELS[m] for m in colours)
    gpt = [t for t in fig.data if t.xaxis == "x3"]
    assert len(gpt) == 2 and len(gpt[0].x) == 31
    assert list(gpt[0].customdata) == list(range(31)) and "layer %{customdata}" in gpt[0].hovertemplate
    for axis in ("xaxis", "xaxis2", "xaxis3"):
        assert tuple(fig.layout[axis].range) == (-0.03, 1.03)
    assert tuple(fig.layout.yaxis.range) == (-0.03, 1.03)


def test_story_keeps_a_negative_selectivity_in_view():
    frame = story("m", 4, ["pos_selectivity"])
    frame.loc[0, "value"] = -0.25
    fig = story_figure(frame)
    assert fig.layout.yaxis.range[0] <= -0.25 and fig.layout.yaxis.range[1] == 1.03


def test_story_colours_do_not_depend_on_which_measures_a_model_has():
    one = story_figure(story("m", 4, ["mix_weight"]))
    two = story_figure(story("m", 4, ["pos_selectivity", "mix_weight"]))
    assert one.data[0].line.color == two.data[1].line.color == MEASURE_COLORS["mix_weight"]
    assert measure_color("something new") == measure_color("something new")


def test_story_escapes_model_names_and_is_readable_on_a_projector():
    fig = story_figure(story("<script>alert(1)</script>", 4, ["pos_selectivity"]))
    text = fig.to_json()
    assert "<script>" not in text and "&lt;script&gt;" in text
    big = for_projector(fig)
    assert big.layout.font.size == 18 and big.layout.height > fig.layout.height


def test_empty_story_is_refused():
    with pytest.raises(ValueError):
        story_figure(pd.DataFrame(columns=["model", "layer", "relative_depth", "measure", "value", "label"]))


def test_probe_figure_lines_and_dashed_majority():
    fig = probe_figure(pd.concat([probes("bert", 13), probes("elmo", 3)]), title="Depth")
    assert len(fig.data) == 8
    names = [t.name for t in fig.data[:4]]
    assert names == ["probe accuracy", "control task accuracy", "selectivity (probe − control)",
                     "majority-label baseline"]
    majority = [t for t in fig.data if t.name == "majority-label baseline"]
    assert all(t.line.dash == "dash" for t in majority)
    assert [t.showlegend for t in fig.data] == [True] * 4 + [False] * 4
    assert fig.layout.yaxis.range[0] < -0.2  # a negative selectivity stays in view
    assert [a.text for a in fig.layout.annotations] == ["bert", "elmo"] and fig.layout.title.text == "Depth"
    colours = {t.name: t.line.color for t in fig.data[:4]}
    assert all(colours[t.name] == t.line.color for t in fig.data[4:])


def test_cka_heatmap_axes_scale_and_hover():
    fig = cka_heatmap(sim("bert <b>", "gpt"))
    heat = fig.data[0]
    assert heat.type == "heatmap" and (heat.zmin, heat.zmax) == (0.0, 1.0)
    assert np.asarray(heat.z).shape == (4, 7) and list(heat.y) == [0, 1, 2, 3] and list(heat.x) == list(range(7))
    assert "%{z:.3f}" in heat.hovertemplate and "bert &lt;b&gt; layer %{y}" in heat.hovertemplate
    assert fig.layout.yaxis.title.text == "layer of bert &lt;b&gt;"
    assert fig.layout.xaxis.title.text == "layer of gpt"
    assert "vs" in fig.layout.title.text and "123 words" in fig.layout.title.subtitle.text
    best = fig.data[1]  # the most similar layer of B, per layer of A
    assert list(best.y) == [0, 1, 2, 3] and list(best.x) == list(sim().best_match())
    assert "<b>" not in fig.to_json().replace("<br>", "")
    table = figure_table(fig)
    assert len(table[table.trace == "CKA"]) == 28


def test_cka_heatmap_of_a_model_with_itself_and_many_layers():
    fig = cka_heatmap(sim("smol", "smol", 31, 31))
    assert len(fig.data) == 1 and fig.layout.title.text == "smol vs itself"
    assert len(fig.layout.yaxis.tickvals) <= 12  # every k-th layer past MAX_TICKS


def test_neighbour_layers_figure():
    fig = neighbour_layers_figure(across(top="<img src=x onerror=alert(1)>"), k=10)
    assert [t.name for t in fig.data] == ["the query's own word", "still neighbours from the layer before"]
    assert list(fig.data[0].y) == [10, 7, 5, 4] and np.isnan(fig.data[1].y[0])
    assert tuple(fig.layout.yaxis.range) == (-0.3, 10.3) and "of the 10 nearest" in fig.layout.yaxis.title.text
    assert "<img" not in json.dumps(fig.to_plotly_json(), default=str)


def test_highlight_html_escapes_before_marking():
    sentence = "<script>alert('x')</script> sat on the bank & more"
    start = sentence.index("bank")
    out = highlight_html(sentence, start, start + 4)
    assert out == ("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; sat on the <mark>bank</mark> &amp; more")
    assert "<script>" not in out
    tag = "a <b>b</b> c"
    assert highlight_html(tag, 2, 10) == "a <mark>&lt;b&gt;b&lt;/b&gt;</mark> c"
    assert highlight_html("bank", 0, 99) == "<mark>bank</mark>"  # offsets past the end are clamped
    assert highlight_html("银行 🏦 בנק", 3, 4) == "银行 <mark>🏦</mark> בנק"


def test_neighbours_html_table():
    found = pd.DataFrame({"rank": [1, 2], "cosine": [0.91234, 0.5], "word": ["bank", "<i>"],
                          "sentence": ["The bank closed.", "A <i> tag"], "start": [4, 2], "end": [8, 5],
                          "sentence_id": [0, 1], "same_word": [True, False]})
    out = neighbours_html(found)
    assert out.count("<tr>") == 3 and "0.912" in out and "(same word)" in out
    assert "The <mark>bank</mark> closed." in out and "A <mark>&lt;i&gt;</mark> tag" in out
    assert "<i>" not in out
