"""The first figures of the Home page: the token table and hidden-state norms."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..record import Analysis


def safe_label(text) -> str:
    """Plotly renders a subset of HTML in labels and hovers: escape user text so it shows as typed."""
    return html.escape(str(text), quote=False)


def token_axis(record: Analysis) -> tuple[list[int], list[str]]:
    """Positions and escaped tokens; positions keep repeated tokens apart on plotly axes."""
    return list(range(record.n_tokens)), [f"{safe_label(t)}" for t in record.tokens]


def token_table(record: Analysis) -> pd.DataFrame:
    """One row per token: what the model reads, and which word of the text it belongs to."""
    words = [record.words[w].text if w >= 0 else "" for w in record.word_ids]
    return pd.DataFrame(
        {
            "position": np.arange(record.n_tokens),
            "token": list(record.tokens),
            "id": record.token_ids,
            "word": words,
            "segment": np.where(record.segment_ids == 0, "A", "B"),
            "special": record.special_mask,
        }
    )


def hidden_norm_heatmap(record: Analysis, title: str | None = None) -> go.Figure:
    """L2 norm of every token's vector at every layer (layer 0 = embeddings)."""
    norms = np.linalg.norm(record.hidden_states, axis=-1)
    x, labels = token_axis(record)
    fig = go.Figure(
        go.Heatmap(
            z=norms, x=x, y=list(range(norms.shape[0])), colorscale="Viridis",
            colorbar=dict(title="‖h‖"), customdata=np.array([labels] * norms.shape[0]),
            hovertemplate="token %{customdata} (pos %{x})<br>layer %{y}<br>norm %{z:.2f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title or f"Hidden-state norms: {safe_label(record.model_key)}",
        xaxis=dict(title="token", tickmode="array", tickvals=x, ticktext=labels, tickangle=-60),
        yaxis=dict(title="layer (0 = embeddings)", dtick=1),
        height=360, margin=dict(l=60, r=20, t=50, b=90),
    )
    return fig
