"""Word translation retrieval by layer: precision@1 or MRR, each direction raw (dotted) and with
each language's mean subtracted (solid), over the chance level (grey).

User text (model ids) reaches plotly only through `basic.safe_label`.
"""

from __future__ import annotations

import math
from typing import Literal

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from .basic import MAX_TICKS, safe_label
from .embeddings import DEPTH_TITLE

MEASURES = {"precision_at_1": "precision@1", "mrr": "mean reciprocal rank"}
CHANCE = {"precision_at_1": "chance_precision_at_1", "mrr": "chance_mrr"}
CHANCE_COLOR = "#777777"
_PALETTE = qualitative.D3  # one colour per direction, in the table's order


def retrieval_figure(table: pd.DataFrame, measure: str = "precision_at_1",
                     x: Literal["layer", "relative_depth"] = "layer", height: int = 420) -> go.Figure:
    """`measure` (precision_at_1 or mrr) by layer: a line per direction and centring, and the
    chance level. table: `retrieval_table`'s rows (one model). One measure a figure, so each
    figure's CSV names its numbers unambiguously."""
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {', '.join(MEASURES)}, not {measure!r}")
    if table.empty:
        raise ValueError("the retrieval table has no rows")
    fig = go.Figure()
    for i, direction in enumerate(dict.fromkeys(table["direction"])):
        for centred in (False, True):
            rows = table[(table["direction"] == direction) & (table["centred"] == centred)].sort_values("layer")
            name = f"{direction}, {'mean-centred' if centred else 'raw'}"
            fig.add_trace(go.Scatter(
                x=rows[x], y=rows[measure], customdata=rows[["layer", "relative_depth"]], name=name,
                mode="lines+markers",
                line=dict(color=_PALETTE[i % len(_PALETTE)], dash="solid" if centred else "dot", width=2.5),
                marker=dict(size=7, symbol="circle" if centred else "circle-open"),
                hovertemplate=(f"{name}<br>layer %{{customdata[0]}} (depth %{{customdata[1]:.2f}})<br>"
                               f"{MEASURES[measure]}: %{{y:.3f}}<extra></extra>"),
            ))
    level = float(table[CHANCE[measure]].mean())
    fig.add_trace(go.Scatter(
        x=[table[x].min(), table[x].max()], y=[level, level], mode="lines", name="chance (random order)",
        line=dict(color=CHANCE_COLOR, dash="dash", width=1.5), hovertemplate=f"chance: {level:.3f}<extra></extra>",
    ))
    if x == "layer":
        layers = sorted(table["layer"].unique().tolist())
        step = max(1, math.ceil(len(layers) / MAX_TICKS))
        fig.update_xaxes(title_text="layer (0 = embeddings)", tickmode="array", tickvals=layers[::step])
    else:
        fig.update_xaxes(title_text=DEPTH_TITLE, range=[-0.03, 1.03])
    fig.update_yaxes(title_text=MEASURES[measure], range=[-0.03, 1.03])
    model = safe_label(table["model"].iloc[0]) if "model" in table else ""
    fig.update_layout(
        title=dict(text=f"{model}: {MEASURES[measure]}", yref="container", y=1, yanchor="top", pad=dict(t=10)),
        height=height, margin=dict(t=110, l=60, r=20, b=50),
        legend=dict(orientation="h", yref="container", y=1 - 40 / height, yanchor="top", x=0),
    )
    return fig
