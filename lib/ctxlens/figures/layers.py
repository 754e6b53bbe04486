"""Plotly figures of the layer story, the probes, model-vs-model CKA and the corpus search,
and the HTML of a corpus sentence with its word marked.

Models of different depth share one axis, relative depth (0 = embeddings, 1 = last layer);
hover names the layer. User text (model ids, corpus sentences, words) reaches plotly only
through `basic.safe_label`, and our HTML only through `html.escape`.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from .basic import MAX_TICKS, safe_label
from .embeddings import DEPTH_TITLE

_PALETTE = qualitative.D3
# One colour per measure, the same in every panel and on every run (a measure a model lacks,
# such as ELMo's mix weight, leaves its colour unused rather than shifting the others).
MEASURE_COLORS = {
    "pos_selectivity": _PALETTE[0],
    "sense_separation": _PALETTE[1],
    "self_similarity": _PALETTE[2],
    "anisotropy": _PALETTE[7],
    "right_token_mrr": _PALETTE[3],
    "mix_weight": _PALETTE[4],
}
_DASHED = {"anisotropy": "dot"}  # a baseline, not a finding
PROBE_SERIES = {  # column → (legend name, colour, dash)
    "accuracy": ("probe accuracy", _PALETTE[0], "solid"),
    "control": ("control task accuracy", _PALETTE[1], "solid"),
    "selectivity": ("selectivity (probe − control)", _PALETTE[2], "solid"),
    "majority": ("majority-label baseline", "#555555", "dash"),
}
NEIGHBOUR_SERIES = {
    "same_word": ("the query's own word", _PALETTE[0]),
    "kept_from_previous": ("still neighbours from the layer before", _PALETTE[1]),
}


def measure_color(measure: str) -> str:
    """The colour of a story measure; one the table does not name gets a colour of its own."""
    if measure in MEASURE_COLORS:
        return MEASURE_COLORS[measure]
    return _PALETTE[(len(MEASURE_COLORS) + sum(map(ord, measure))) % len(_PALETTE)]


def _grid(n: int, cols: int) -> tuple[int, int]:
    cols = max(1, min(cols, n))
    return -(-n // cols), cols


def _panels(titles: list[str], cols: int, height: int, shared_y: bool = True) -> tuple[go.Figure, int, int]:
    n_rows, n_cols = _grid(len(titles), cols)
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=[safe_label(t) for t in titles],
                        shared_yaxes=shared_y, vertical_spacing=min(0.25, 0.6 / n_rows), horizontal_spacing=0.08)
    # The legend above the panels, in the figure's own space (below, it sat on the axis titles).
    fig.update_layout(height=height * n_rows + 100, margin=dict(t=110, l=50, r=20, b=40),
                      legend=dict(orientation="h", yref="container", y=1, yanchor="top", xanchor="left", x=0))
    return fig, n_rows, n_cols


def story_figure(story: pd.DataFrame, height: int = 360, cols: int = 2) -> go.Figure:
    """One panel per model (`cols` to a row): a line per measure over relative depth, on
    the 0–1 scale the story puts every measure on (a negative selectivity or cosine stays in
    view); hover names the layer.

    story: `layer_story` frames, one or more models concatenated (columns model, layer,
    relative_depth, measure, value, label)."""
    if story.empty:
        raise ValueError("the story has no rows")
    models = list(dict.fromkeys(story["model"]))
    fig, _, n_cols = _panels(models, cols, height)
    shown = set()  # a measure appears once in the legend; clicking it toggles every panel
    for i, model in enumerate(models):
        rows = story[story["model"] == model]
        for measure, curve in rows.groupby("measure", sort=False):
            curve = curve.sort_values("relative_depth")
            label = safe_label(curve["label"].iloc[0] if "label" in curve else measure)
            fig.add_trace(
                go.Scatter(
                    x=curve["relative_depth"], y=curve["value"], customdata=curve["layer"],
                    mode="lines+markers", name=label, legendgroup=measure, showlegend=measure not in shown,
                    line=dict(color=measure_color(measure), dash=_DASHED.get(measure, "solid"), width=2.5),
                    marker=dict(size=6),
                    hovertemplate=f"{safe_label(model)}<br>layer %{{customdata}}<br>{label}: %{{y:.3f}}<extra></extra>",
                ),
                row=i // n_cols + 1, col=i % n_cols + 1,
            )
            shown.add(measure)
    low = min(0.0, float(np.nanmin(story["value"].to_numpy(float))))  # selectivity, cosines can dip below 0
    fig.update_xaxes(title_text=DEPTH_TITLE, range=[-0.03, 1.03])
    fig.update_yaxes(range=[low - 0.03, 1.03], zeroline=True, zerolinecolor="#999999")
    fig.update_yaxes(title_text="value (0 to 1)", col=1)
    return fig


def probe_figure(frames: pd.DataFrame, height: int = 340, cols: int = 2, title: str | None = None) -> go.Figure:
    """Per model: probe accuracy, control-task accuracy and selectivity by relative depth, and
    the majority-label baseline dashed. frames: `probe_curves` outputs concatenated."""
    if frames.empty:
        raise ValueError("no probe results")
    models = list(dict.fromkeys(frames["model"]))
    fig, _, n_cols = _panels(models, cols, height)
    for i, model in enumerate(models):
        rows = frames[frames["model"] == model].sort_values("relative_depth")
        for column, (name, color, dash) in PROBE_SERIES.items():
            fig.add_trace(
                go.Scatter(
                    x=rows["relative_depth"], y=rows[column], customdata=rows["layer"], name=name,
                    mode="lines" if column == "majority" else "lines+markers", legendgroup=column, showlegend=i == 0,
                    line=dict(color=color, dash=dash, width=2 if column == "majority" else 2.5), marker=dict(size=6),
                    hovertemplate=f"{safe_label(model)}<br>layer %{{customdata}}<br>{name}: %{{y:.3f}}<extra></extra>",
                ),
                row=i // n_cols + 1, col=i % n_cols + 1,
            )
    low = min(0.0, float(np.nanmin(frames[list(PROBE_SERIES)].to_numpy(float))))
    fig.update_xaxes(title_text=DEPTH_TITLE, range=[-0.03, 1.03])
    fig.update_yaxes(range=[low - 0.03, 1.03], zeroline=True, zerolinecolor="#999999")
    fig.update_yaxes(title_text="accuracy on held-out sentences", col=1)
    if title:  # the title at the top, the legend under it
        fig.update_layout(title=dict(text=safe_label(title), yref="container", y=1, yanchor="top", pad=dict(t=10)),
                          legend_y=1 - 48 / fig.layout.height, margin_t=140)
        fig.update_layout(height=fig.layout.height + 30)
    return fig


def _layer_ticks(layers: np.ndarray) -> dict:
    """Every layer's number, or every k-th past MAX_TICKS (they would overlap)."""
    step = max(1, math.ceil(len(layers) / MAX_TICKS))
    return dict(tickmode="array", tickvals=list(layers[::step]), ticktext=[str(x) for x in layers[::step]])


def cka_heatmap(sim, height: int = 460, title: str | None = None, best: bool = True) -> go.Figure:
    """Linear CKA of every layer of model A (rows, y) with every layer of model B (columns, x),
    on a fixed 0–1 colour scale so two heatmaps compare; hover gives both layers, their
    relative depths and the value. best: marks, for each layer of A, the most similar layer
    of B. sim: a `methods.similarity.LayerSimilarity`."""
    cka = np.asarray(sim.cka, dtype=float)
    depth = np.stack(np.broadcast_arrays(np.asarray(sim.depth_a, float)[:, None],
                                         np.asarray(sim.depth_b, float)[None, :]), axis=-1)
    a, b = safe_label(sim.model_a), safe_label(sim.model_b)
    itself = sim.model_a == sim.model_b
    fig = go.Figure(go.Heatmap(
        z=cka, x=list(map(int, sim.layers_b)), y=list(map(int, sim.layers_a)), zmin=0.0, zmax=1.0,
        colorscale="Viridis", name="CKA", customdata=depth, colorbar=dict(title=dict(text="CKA")),
        hovertemplate=(f"{a} layer %{{y}} (depth %{{customdata[0]:.2f}})<br>{b} layer %{{x}} "
                       "(depth %{customdata[1]:.2f})<br>CKA %{z:.3f}<extra></extra>"),
    ))
    if best and not itself:
        fig.add_trace(go.Scatter(
            x=list(map(int, sim.best_match())), y=list(map(int, sim.layers_a)), mode="markers",
            name=f"most similar layer of {b}", marker=dict(symbol="circle-open", size=11, color="#ff3355",
                                                            line=dict(width=2.5)),
            hovertemplate=f"{a} layer %{{y}} is most like {b} layer %{{x}}<extra></extra>",
        ))
    fig.update_xaxes(title_text=f"layer of {b}", **_layer_ticks(np.asarray(sim.layers_b)))
    fig.update_yaxes(title_text=f"layer of {a}", **_layer_ticks(np.asarray(sim.layers_a)))
    default = f"{a} vs itself" if itself else f"{a} vs {b}"
    fig.update_layout(title=dict(text=safe_label(title) if title else default,
                                 subtitle=dict(text=f"linear CKA on {int(sim.n_words):,} words")),
                      height=height, margin=dict(t=80, l=60, r=20, b=60), showlegend=best and not itself,
                      legend=dict(orientation="h", yref="container", yanchor="bottom", y=0, x=0))
    return fig


def neighbour_layers_figure(frame: pd.DataFrame, k: int | None = None, height: int = 360,
                            title: str | None = None) -> go.Figure:
    """Per layer: how many of the k nearest occurrences are the query's own word, and how
    many of them were already neighbours at the layer before. frame: `neighbours_across_layers`."""
    if frame.empty:
        raise ValueError("no layers")
    frame = frame.sort_values("layer")
    top = [f"{safe_label(w)}" for w in frame["top_word"]]
    fig = go.Figure()
    for column, (name, color) in NEIGHBOUR_SERIES.items():
        fig.add_trace(go.Scatter(
            x=frame["layer"], y=frame[column], name=name, mode="lines+markers", text=top,
            customdata=frame["relative_depth"], line=dict(color=color, width=2.5), marker=dict(size=7),
            hovertemplate=(f"layer %{{x}} (depth %{{customdata:.2f}})<br>{name}: %{{y}}"
                           "<br>nearest: %{text}<extra></extra>"),
        ))
    k = int(k) if k else None
    fig.update_xaxes(title_text="layer (0 = embeddings)", **_layer_ticks(frame["layer"].to_numpy()))
    fig.update_yaxes(title_text=f"of the {k} nearest" if k else "neighbours", rangemode="tozero",
                     range=[-0.3, k + 0.3] if k else None)
    fig.update_layout(title_text=safe_label(title) if title else None, height=height,
                      margin=dict(t=60 if title else 30, l=60, r=20, b=40),
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    return fig


def highlight_html(sentence: str, start: int, end: int) -> str:
    """`sentence` as escaped HTML with characters start:end in <mark> (escaped first, so a
    sentence's own tags show as typed)."""
    sentence = str(sentence)
    start = max(0, min(int(start), len(sentence)))
    end = max(start, min(int(end), len(sentence)))
    before, word, after = sentence[:start], sentence[start:end], sentence[end:]
    return f"{html.escape(before)}<mark>{html.escape(word)}</mark>{html.escape(after)}"


def neighbours_html(found: pd.DataFrame) -> str:
    """The nearest occurrences (`methods.corpus.search`) as an HTML table: rank, cosine and
    the sentence with the word marked; rows of the query's own word say so."""
    rows = []
    for r in found.itertuples(index=False):
        same = " <small>(same word)</small>" if r.same_word else ""
        rows.append(f"<tr><td>{int(r.rank)}</td><td>{r.cosine:.3f}</td>"
                    f"<td>{highlight_html(r.sentence, r.start, r.end)}{same}</td></tr>")
    return ("<table class='ctx-neighbours'><thead><tr><th>#</th><th>cosine</th><th>sentence (the word marked)</th>"
            "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
