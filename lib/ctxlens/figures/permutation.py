"""Who may see whom: XLNet's two streams under a factorisation order, beside BERT and GPT.

Each panel is an [n, n] boolean mask, row = the position that looks, column = the one it may
see. Positions are numeric on the axes with "i:token" tick text (two equal tokens stay two
rows), and tokens pass through `safe_label`: plotly renders a subset of HTML in labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..analysis.permutation import bert_mask, content_mask, gpt_mask, query_mask, ranks
from .basic import safe_label

SEES, HIDDEN = "#2b6cb0", "#eeeeee"
TARGET_LINE = "#dd6b20"
CONTENT = "XLNet content h (z≤t)"
QUERY = "XLNet query g (z<t)"
BERT = "BERT (all see all)"
GPT = "GPT (left to right)"


def permutation_masks(order: Sequence[int]) -> dict[str, np.ndarray]:
    """The four masks for `order` (indices of the tokens, in the order they are predicted)."""
    n = len(order)
    return {CONTENT: content_mask(order), QUERY: query_mask(order), BERT: bert_mask(n), GPT: gpt_mask(n)}


def masks_figure(tokens: Sequence[str], order: Sequence[int], target: int | None = None) -> go.Figure:
    """XLNet's content and query masks under `order`, BERT's and GPT's, side by side; the
    row of `target` (the position predicted) outlined in XLNet's panels."""
    if len(order) != len(tokens):
        raise ValueError(f"an order of {len(order)} positions for {len(tokens)} tokens")
    steps = ranks(order)
    return mask_grid(permutation_masks(order), tokens, target=target, outlined=(CONTENT, QUERY), steps=steps)


def mask_grid(masks: Mapping[str, np.ndarray], tokens: Sequence[str], *, target: int | None = None,
              outlined: Sequence[str] = (), steps: np.ndarray | None = None) -> go.Figure:
    """One heatmap per mask in a row, sharing the token axes."""
    n = len(tokens)
    labels = [f"{i}:{safe_label(t)}" for i, t in enumerate(tokens)]
    fig = make_subplots(rows=1, cols=len(masks), subplot_titles=[safe_label(t) for t in masks], shared_yaxes=True,
                        horizontal_spacing=0.03)
    for col, (title, mask) in enumerate(masks.items(), start=1):
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (n, n):
            raise ValueError(f"mask {title!r} has shape {mask.shape}, expected {(n, n)}")
        fig.add_trace(_panel(title, mask, labels, steps if title in outlined else None), row=1, col=col)
        if target is not None and title in outlined:
            fig.add_shape(type="rect", x0=-0.5, x1=n - 0.5, y0=target - 0.5, y1=target + 0.5,
                          line=dict(color=TARGET_LINE, width=3), row=1, col=col)
    ticks = dict(tickvals=list(range(n)), ticktext=labels, showgrid=False, zeroline=False)
    fig.update_xaxes(title_text="may see", tickangle=-60, **ticks)
    fig.update_yaxes(autorange="reversed", **ticks)
    fig.update_yaxes(title_text="position", row=1, col=1)
    fig.update_annotations(font_size=13)
    fig.update_layout(height=min(1000, 300 + 18 * n), margin=dict(l=10, r=10, t=60, b=10), showlegend=False)
    return fig


def _panel(title: str, mask: np.ndarray, labels: list[str], steps: np.ndarray | None) -> go.Heatmap:
    n = len(labels)
    verb = np.where(mask, "sees", "does not see")
    step = [""] * n if steps is None else [f" (order step {int(s) + 1})" for s in steps]
    hover = [[f"{labels[i]}{step[i]} {verb[i, j]} {labels[j]}{step[j]}" for j in range(n)] for i in range(n)]
    return go.Heatmap(
        z=mask.astype(np.float64), x=list(range(n)), y=list(range(n)), name=title, zmin=0, zmax=1,
        colorscale=[[0.0, HIDDEN], [0.5, HIDDEN], [0.5, SEES], [1.0, SEES]], showscale=False,
        xgap=1, ygap=1, customdata=hover, hovertemplate="%{customdata}<extra></extra>",
    )
