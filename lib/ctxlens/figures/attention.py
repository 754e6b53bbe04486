"""Plotly figures for attention: head heatmaps, the heads of one layer, per-head summaries.

Layers and heads are numbered from 0, as in the arrays and in bertviz. Token labels pass
through `safe_label`, because plotly renders a subset of HTML in tick, hover and title
text: a token "<b>" must show as text, not turn the label bold.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..analysis.attention import STATISTICS
from .basic import safe_label

LONG_INPUT = 128  # above this many tokens, line views show only the top-k edges
MASKED_BACKGROUND = "#d0d0d0"  # causal-mask cells are NaN gaps over this grey
_COLORSCALE = "Blues"
_LINE_RGB = "31, 119, 180"
_LINE_LEVELS = 5  # line opacities are quantised to this many traces
GRID_TICKS = 16  # token labels per axis of the all-heads grid; more tokens show every k-th


def axis_labels(tokens: Sequence[str]) -> list[str]:
    """Unique category labels "i:token"; bare tokens would merge repeated words into one row."""
    return [f"{i}:{safe_label(t)}" for i, t in enumerate(tokens)]


def causal_masked(att_matrix: np.ndarray) -> np.ndarray:
    """Copy of [..., T, T] with keys after the query (j > i) set to NaN, drawn as gaps."""
    out = np.array(att_matrix, dtype=np.float64, copy=True)
    n = out.shape[-1]
    out[..., np.triu(np.ones((n, n), dtype=bool), k=1)] = np.nan
    return out


def _heatmap(z: np.ndarray, labels: list[str], **kwargs) -> go.Heatmap:
    return go.Heatmap(
        z=z,
        x=labels,
        y=labels,
        hoverongaps=False,
        hovertemplate="query %{y} → key %{x}: %{z:.3f}<extra></extra>",
        **kwargs,
    )


def _zmax(z: np.ndarray) -> float:
    # Scale to the data: most weights are far below 1, a fixed [0, 1] range washes them out.
    finite = z[np.isfinite(z)]
    return float(finite.max()) if finite.size and finite.max() > 0 else 1.0


def head_heatmap(
    att_matrix: np.ndarray,
    tokens: Sequence[str],
    *,
    causal: bool = False,
    title: str | None = None,
) -> go.Figure:
    """One attention matrix [T, T] as a heatmap: queries down, keys across."""
    z = causal_masked(att_matrix) if causal else np.asarray(att_matrix, dtype=np.float64)
    labels = axis_labels(tokens)
    fig = go.Figure(
        _heatmap(z, labels, colorscale=_COLORSCALE, zmin=0.0, zmax=_zmax(z), colorbar={"title": {"text": "weight"}})
    )
    size = min(900, 260 + 14 * len(tokens))
    fig.update_layout(
        title={"text": safe_label(title)} if title else None,
        plot_bgcolor=MASKED_BACKGROUND,
        height=size,
        xaxis={"title": {"text": "key"}, "type": "category", "tickangle": -60, "showgrid": False},
        yaxis={"title": {"text": "query"}, "type": "category", "autorange": "reversed", "showgrid": False},
    )
    return fig


@lru_cache(maxsize=64)
def _grid_layout(rows: int, cols: int, n_heads: int) -> str:
    """make_subplots' layout of the all-heads grid (panel domains, "head h" titles), as JSON:
    it depends on the shape only, and building it is most of a small grid's cost."""
    return make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[f"head {h}" for h in range(n_heads)],
        horizontal_spacing=0.02,
        vertical_spacing=0.06 / max(1, rows / 3),
    ).layout.to_json()


def layer_heads_grid(
    att_layer: np.ndarray,
    tokens: Sequence[str],
    *,
    causal: bool = False,
    layer: int | None = None,
    cols: int = 4,
) -> go.Figure:
    """All heads of one layer [H, T, T] as a grid of heatmaps sharing one colour scale.

    Built as one layout dict and one Figure: plotly's per-panel updates (update_xaxes with
    row/col) took 4× as long as everything else at 12 heads."""
    n_heads = att_layer.shape[0]
    cols = max(1, min(cols, n_heads))
    rows = math.ceil(n_heads / cols)
    z_all = causal_masked(att_layer) if causal else np.asarray(att_layer, dtype=np.float64)
    labels = axis_labels(tokens)
    layout = json.loads(_grid_layout(rows, cols, n_heads))
    # Token labels on the outer edges only (queries left, keys under each column's last
    # panel), small and thinned: a panel is about 180 px for all its tokens.
    ticks = {"type": "category", "tickvals": labels[:: math.ceil(len(labels) / GRID_TICKS)],
             "tickfont": {"size": 9}, "ticks": "", "showgrid": False}
    suffixes = [str(panel + 1) if panel else "" for panel in range(rows * cols)]  # panels row by row
    for panel, suffix in enumerate(suffixes):
        layout[f"xaxis{suffix}"].update(ticks, tickangle=-60, showticklabels=n_heads - cols <= panel < n_heads)
        layout[f"yaxis{suffix}"].update(ticks, autorange="reversed", showticklabels=panel % cols == 0)
    layout.update(
        title={"text": f"layer {layer}: all heads"} if layer is not None else None,
        coloraxis={"colorscale": _COLORSCALE, "cmin": 0.0, "cmax": _zmax(z_all)},
        plot_bgcolor=MASKED_BACKGROUND,
        height=140 + 240 * rows,
        margin={"b": 110},  # the rotated key labels
    )
    traces = [_heatmap(z_all[h], labels, coloraxis="coloraxis", xaxis=f"x{suffixes[h]}", yaxis=f"y{suffixes[h]}")
              for h in range(n_heads)]
    return go.Figure(data=traces, layout=layout)


def head_summary_heatmap(values: np.ndarray, statistic: str) -> go.Figure:
    """One statistic of head_statistics, [L, H], as a layers × heads heatmap. NaN shows blank."""
    z = np.asarray(values, dtype=np.float64)
    label = STATISTICS.get(statistic, statistic)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(range(z.shape[1])),
            y=list(range(z.shape[0])),
            colorscale="Viridis",
            hoverongaps=False,
            hovertemplate="layer %{y}, head %{x}: %{z:.3f}<extra></extra>",
            colorbar={"title": {"text": safe_label(label)}},
        )
    )
    fig.update_layout(
        title={"text": safe_label(label)},
        xaxis={"title": {"text": "head"}, "dtick": 1},
        yaxis={"title": {"text": "layer"}, "dtick": 1, "autorange": "reversed"},
        height=140 + 28 * z.shape[0],
    )
    return fig


def top_k_edges(att_matrix: np.ndarray, k: int) -> list[tuple[int, int, float]]:
    """The k largest positive weights of [T, T] as (query, key, weight), largest first.

    NaN (masked) cells are ignored; ties keep row-major order.
    """
    flat = np.nan_to_num(np.asarray(att_matrix, dtype=np.float64), nan=0.0).ravel()
    order = np.argsort(-flat, kind="stable")[: max(0, k)]
    n = att_matrix.shape[-1]
    return [(int(i // n), int(i % n), float(flat[i])) for i in order if flat[i] > 0]


def attention_lines(att_matrix: np.ndarray, tokens: Sequence[str], *, k: int | None = None) -> go.Figure:
    """Queries on the left, keys on the right, a line per edge with opacity ∝ weight.

    k defaults to every edge for short inputs and to 3 per token above LONG_INPUT tokens,
    where the full T² lines are unreadable (use head_heatmap there).
    """
    n = len(tokens)
    if k is None:
        k = n * n if n <= LONG_INPUT else 3 * n
    edges = top_k_edges(att_matrix, k)
    top = edges[0][2] if edges else 1.0
    fig = go.Figure()
    levels = [min(_LINE_LEVELS, max(1, math.ceil(w / top * _LINE_LEVELS))) for _, _, w in edges]
    for level in range(1, _LINE_LEVELS + 1):
        xs, ys = [], []
        for (q, key, _), lv in zip(edges, levels):
            if lv == level:
                xs += [0.0, 1.0, None]
                ys += [-q, -key, None]
        if xs:
            fig.add_trace(go.Scatter(
                x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False,
                line={"color": f"rgba({_LINE_RGB}, {level / _LINE_LEVELS:.2f})", "width": 2},
            ))
    text = [safe_label(t) for t in tokens]
    for x, pos in ((0.0, "middle left"), (1.0, "middle right")):
        fig.add_trace(go.Scatter(
            x=[x] * n, y=[-i for i in range(n)], mode="text", text=text, textposition=pos,
            hoverinfo="text", showlegend=False,
        ))
    fig.update_layout(
        xaxis={"visible": False, "range": [-0.6, 1.6]},
        yaxis={"visible": False},
        height=max(200, 40 + 22 * n),
        margin={"l": 10, "r": 10, "t": 20, "b": 10},
        plot_bgcolor="white",
    )
    return fig
