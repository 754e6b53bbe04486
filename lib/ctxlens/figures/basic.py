"""The first figures of the Home page (the token table and hidden-state norms), and the
projector version of any figure."""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..record import Analysis

PROJECTOR_PX = 18  # the smallest text a class reads from the back of a room
PROJECTOR_INK = "#111111"  # axis and legend text: the theme's grey fades on a projector
LOG_RATIO = 100  # norms spanning more than this (an attention sink) are coloured on a log scale
MAX_TICKS = 12  # layer labels past this many overlap: every k-th is shown


def safe_label(text) -> str:
    """Plotly renders a subset of HTML in labels and hovers: escape user text so it shows as typed."""
    return html.escape(str(text), quote=False)


def shorten(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, an ellipsis marking the cut (for a cell or a
    select box, which cannot wrap)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def token_axis(record: Analysis) -> tuple[list[int], list[str]]:
    """Positions and escaped tokens; positions keep repeated tokens apart on plotly axes."""
    return list(range(record.n_tokens)), [f"{safe_label(t)}" for t in record.tokens]


def token_table(record: Analysis) -> pd.DataFrame:
    """One row per token: what the model reads, and which word of the text it belongs to.
    A model that reads words (ELMo, through their characters) has no ids: "—"."""
    words = [record.words[w].text if w >= 0 else "" for w in record.word_ids]
    ids = np.asarray(record.token_ids)
    return pd.DataFrame(
        {
            "position": np.arange(record.n_tokens),
            "token": list(record.tokens),
            "id": ids if (ids >= 0).all() else ["—" if i < 0 else str(i) for i in ids],
            "word": words,
            "segment": np.where(record.segment_ids == 0, "A", "B"),
            "special": record.special_mask,
        }
    )


def _log_ticks(low: float, high: float) -> list[float]:
    """Values between low and high (> 0) for a log colorbar: 1-2-5 over two decades or
    less, else powers of ten (so the labels never crowd)."""
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    steps = (1, 2, 5) if len(decades) <= 3 else (1,)
    return [m * 10.0**d for d in decades for m in steps if low <= m * 10.0**d <= high]


def hidden_norm_heatmap(record: Analysis, title: str | None = None) -> go.Figure:
    """L2 norm of every token's vector at every layer (layer 0 = embeddings).

    A decoder's first token often has a norm hundreds of times the others (an attention
    sink): a linear scale then shows one bright cell, so such data is coloured by log10."""
    norms = np.linalg.norm(record.hidden_states, axis=-1)
    low, high = max(float(norms.min()), 1e-6), max(float(norms.max()), 1e-6)
    log = high / low > LOG_RATIO
    x, labels = token_axis(record)
    colorbar = dict(title=dict(text="‖h‖ (log scale)" if log else "‖h‖", side="right"))
    if log:
        ticks = _log_ticks(low, high)
        colorbar.update(tickvals=np.log10(ticks), ticktext=[f"{t:,g}" for t in ticks])
    fig = go.Figure(
        go.Heatmap(
            z=np.log10(np.maximum(norms, low)) if log else norms, x=x, y=list(range(norms.shape[0])),
            name="log10 ‖h‖" if log else "‖h‖", colorscale="Viridis", colorbar=colorbar,
            text=np.array([labels] * norms.shape[0]), customdata=norms, meta=dict(customdata="norm"),
            hovertemplate="token %{text} (pos %{x})<br>layer %{y}<br>norm %{customdata:.2f}<extra></extra>",
        )
    )
    n_layers = norms.shape[0]
    fig.update_layout(
        title=dict(text=title or "Hidden-state norms", subtitle=dict(text=safe_label(record.model_key))),
        xaxis=dict(title="token", tickmode="array", tickvals=x, ticktext=labels, tickangle=-60),
        yaxis=dict(title="layer (0 = embeddings)", dtick=math.ceil(n_layers / MAX_TICKS)),
        height=360, margin=dict(l=60, r=20, t=70, b=90),
    )
    return fig


_SCALED_TRACES = {"heatmap", "contour", "histogram2d", "histogram2dcontour", "surface", "choropleth"}


def _shows_colorbar(part, trace) -> bool:
    """Whether `part` (a trace or its marker) draws a colorbar. Writing a font into a colorbar
    that was never set creates one: plotly.js then drew an empty scale over a line chart's legend."""
    if "colorbar" not in part or part.showscale is False:
        return False
    return bool(part.colorbar.to_plotly_json()) or bool(part.showscale) or (
        part is trace and trace.type in _SCALED_TRACES)


def for_projector(fig: go.Figure, size: int = PROJECTOR_PX) -> go.Figure:
    """A copy of `fig` with every text at least `size` px: titles, axes, ticks, legend,
    hover, colorbars, annotations and text on bars and points (not in heatmap cells, sized
    to fit them); a little taller for the room it takes."""
    fig = go.Figure(fig)
    big, ink = dict(size=size), dict(size=size, color=PROJECTOR_INK)
    fig.update_layout(font=ink, title_font=dict(size=size + 4, color=PROJECTOR_INK), title_subtitle_font=ink,
                      title_automargin=True, legend_font=ink, legend_title_font=ink, hoverlabel_font=big)
    for update in (fig.update_xaxes, fig.update_yaxes):
        update(tickfont=ink, title_font=ink, automargin=True)
    fig.update_annotations(font=big)
    fig.update_coloraxes(colorbar_tickfont=ink, colorbar_title_font=ink)
    fig.update_scenes(xaxis_tickfont=big, yaxis_tickfont=big, zaxis_tickfont=big)
    for trace in fig.data:
        for part in (trace, getattr(trace, "marker", None)):
            if part is not None and _shows_colorbar(part, trace):
                part.colorbar.update(tickfont=ink, title_font=ink)
        if "textfont" in trace and trace.type != "heatmap":  # numbers in cells keep the size that fits them
            now = trace.textfont.size
            trace.textfont.size = max(now, size) if isinstance(now, (int, float)) else size
    if fig.layout.height:
        fig.update_layout(height=int(fig.layout.height * 1.3))
    return fig
