"""Plotly figures for contextual embeddings: the polysemy lab and the contextuality lines.

Models of different depth are compared on relative depth (0 = embedding layer, 1 = last
layer). User text reaches plotly only as already-escaped HTML (Occurrences.hover) or
through `basic.safe_label`, because plotly renders a subset of HTML in hover, tick and legend text.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from ..analysis.polysemy import UNLABELLED, Occurrences
from .basic import safe_label

_PALETTE = qualitative.D3
_UNLABELLED_COLOR = "#9e9e9e"
DEPTH_TITLE = "relative depth (0 = embeddings, 1 = last layer)"
_CONTEXT_PANELS = {
    False: [
        ("self_similarity", "Self-similarity"),
        ("intra_sentence", "Intra-sentence similarity"),
        ("baseline", "Anisotropy baseline"),
    ],
    True: [
        ("self_similarity_adj", "Self-similarity − baseline"),
        ("intra_sentence_adj", "Intra-sentence − baseline"),
    ],
}


def sense_colors(senses: Sequence[str]) -> dict[str, str]:
    """One colour per sense, in order of first appearance; untagged occurrences are grey."""
    named = [s for s in dict.fromkeys(senses) if s != UNLABELLED]
    colors = {s: _PALETTE[i % len(_PALETTE)] for i, s in enumerate(named)}
    if UNLABELLED in senses:
        colors[UNLABELLED] = _UNLABELLED_COLOR
    return colors


def _model_colors(models: Sequence[str]) -> dict[str, str]:
    return {m: _PALETTE[i % len(_PALETTE)] for i, m in enumerate(dict.fromkeys(models))}


def sense_scatter(
    coords: Sequence[np.ndarray],
    occurrences: Sequence[Occurrences],
    titles: Sequence[str],
    height: int = 460,
) -> go.Figure:
    """Side-by-side 2-D projections (one per model or layer), points coloured by sense.

    coords[i] is the [N_i, 2] projection of occurrences[i] at the chosen layer.
    """
    if not (len(coords) == len(occurrences) == len(titles)) or not coords:
        raise ValueError("give one coords array, one Occurrences and one title per panel")
    colors = sense_colors([s for occ in occurrences for s in occ.senses])
    fig = make_subplots(rows=1, cols=len(coords), subplot_titles=[safe_label(t) for t in titles])
    shown = set()  # a sense appears once in the legend; clicking it toggles every panel
    for col, (xy, occ) in enumerate(zip(coords, occurrences), start=1):
        senses = np.array(occ.senses)
        hover = np.array(occ.hover, dtype=object)
        for sense, color in colors.items():
            idx = np.flatnonzero(senses == sense)
            if idx.size == 0:
                continue
            fig.add_trace(
                go.Scatter(
                    x=xy[idx, 0],
                    y=xy[idx, 1],
                    mode="markers",
                    marker=dict(color=color, size=9, line=dict(width=0.5, color="white")),
                    name=safe_label(sense),
                    legendgroup=sense,
                    showlegend=sense not in shown,
                    hovertext=hover[idx],
                    hovertemplate="%{hovertext}<extra></extra>",
                ),
                row=1,
                col=col,
            )
            shown.add(sense)
    # Projection axes have no units; ticks would only invite over-reading.
    fig.update_xaxes(showticklabels=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, zeroline=False)
    fig.update_layout(height=height, legend_title_text="sense", margin=dict(t=60, l=20, r=20, b=20))
    return fig


def _lines(frame: pd.DataFrame, panels: list[tuple[str, str]], height: int, cols: int | None = None) -> go.Figure:
    """One subplot per column in `panels`, `cols` to a row (default: one row), one line per
    model over relative depth. height: of one row of panels."""
    cols = cols or len(panels)
    n_rows = -(-len(panels) // cols)
    fig = make_subplots(rows=n_rows, cols=cols, subplot_titles=[t for _, t in panels],
                        vertical_spacing=0.22, horizontal_spacing=0.1)
    colors = _model_colors(frame["model"].tolist())
    for i, (column, title) in enumerate(panels):
        for model, color in colors.items():
            rows = frame[frame["model"] == model].sort_values("relative_depth")
            fig.add_trace(
                go.Scatter(
                    x=rows["relative_depth"],
                    y=rows[column],
                    customdata=rows["layer"],
                    mode="lines+markers",
                    line=dict(color=color),
                    name=safe_label(model),
                    legendgroup=model,
                    showlegend=i == 0,
                    hovertemplate=(
                        f"{safe_label(model)}<br>layer %{{customdata}}<br>{title}: %{{y:.3f}}"
                        "<extra></extra>"
                    ),
                ),
                row=i // cols + 1,
                col=i % cols + 1,
            )
    fig.update_xaxes(title_text=DEPTH_TITLE, range=[-0.03, 1.03])
    fig.update_layout(height=height * n_rows, legend_title_text="model", margin=dict(t=60, l=40, r=20, b=40))
    return fig


def separation_lines(
    frame: pd.DataFrame, chance: float | None = None, height: int = 380
) -> go.Figure:
    """Accuracy and silhouette over relative depth, one line per model.

    frame: separation_by_layer outputs concatenated (columns model, layer, relative_depth,
    accuracy, silhouette). chance: draws the guessing level on the accuracy panel.
    """
    fig = _lines(
        frame,
        [
            ("accuracy", "Leave-one-out nearest-centroid accuracy"),
            ("silhouette", "Silhouette (cosine)"),
        ],
        height,
    )
    fig.update_yaxes(range=[0, 1.05], row=1, col=1)
    if chance is not None:
        fig.add_hline(
            y=chance,
            line_dash="dot",
            line_color="grey",
            row=1,
            col=1,
            annotation_text="chance",
            annotation_position="bottom right",
        )
    return fig


def contextuality_lines(
    frame: pd.DataFrame, adjusted: bool = False, height: int = 380, cols: int | None = None
) -> go.Figure:
    """Ethayarajh's measures over relative depth, one line per model.

    frame: contextuality_report outputs concatenated. adjusted=True shows the measures
    minus the anisotropy baseline. cols: panels to a row (default: all in one).
    """
    return _lines(frame, _CONTEXT_PANELS[adjusted], height, cols)


def cosine_floor(matrix: np.ndarray) -> float:
    """The lowest off-diagonal value (the diagonal is 1), a little under 1 when all are 1."""
    off = np.asarray(matrix, dtype=np.float64)[~np.eye(len(matrix), dtype=bool)]
    off = off[np.isfinite(off)]
    return min(float(off.min()), 0.99) if off.size else 0.0


def cosine_heatmap(
    matrix: np.ndarray, senses: Sequence[str], title: str = "", height: int = 520
) -> go.Figure:
    """The [N, N] cosine matrix (already grouped by sense, see polysemy.cosine_matrix),
    with lines between senses and the sense names at the middle of each block.

    senses: the sense of each row, in the matrix's order. The colours span the data shown
    (lowest off-diagonal cosine to 1): contextual vectors are all alike (cosines ≥ 0.5 are
    usual), so a −1…1 scale would paint every cell the same.
    """
    labels = [f"{i}: {safe_label(s)}" for i, s in enumerate(senses)]  # unique, or rows would merge
    low = cosine_floor(matrix)
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=labels,
            y=labels,
            colorscale="Viridis",
            zmin=low,
            zmax=1.0,
            colorbar={"title": {"text": f"cosine<br>{low:.2f} to 1"}},
            hovertemplate="%{y}<br>%{x}<br>cosine %{z:.3f}<extra></extra>",
        )
    )
    starts = [i for i in range(len(senses)) if i == 0 or senses[i] != senses[i - 1]]
    ends = starts[1:] + [len(senses)]
    ticks = [labels[(a + b - 1) // 2] for a, b in zip(starts, ends)]
    names = [safe_label(senses[a]) for a in starts]
    for boundary in starts[1:]:
        edge = boundary - 0.5
        line = dict(color="black", width=1)
        fig.add_shape(type="line", x0=edge, x1=edge, y0=-0.5, y1=len(senses) - 0.5, line=line)
        fig.add_shape(type="line", y0=edge, y1=edge, x0=-0.5, x1=len(senses) - 0.5, line=line)
    fig.update_xaxes(tickvals=ticks, ticktext=names)
    fig.update_yaxes(tickvals=ticks, ticktext=names, autorange="reversed", scaleanchor="x")
    fig.update_layout(title_text=safe_label(title), height=height, margin=dict(t=50, l=20, r=20, b=20))
    return fig


def coordinates_frame(
    coords: np.ndarray, occ: Occurrences, layer: int, model: str | None = None
) -> pd.DataFrame:
    """The points of one panel as a table for CSV export (pd.concat several panels)."""
    return pd.DataFrame(
        {
            "x": coords[:, 0],
            "y": coords[:, 1],
            "sentence": occ.texts,
            "sense": occ.senses,
            "model": model or occ.model_key,
            "layer": layer,
        }
    )
