"""Plotly figures for the prediction views: top-k bars, logit lens, surprisal, QA, few-shot.

Plotly renders a subset of HTML in tick labels, cell text and hover text, so every token
passes through `basic.safe_label`: a token "<b>" must read as text, not turn the label bold.
Categorical axes use "i:token" labels (or numeric positions with tick text), because two
equal tokens would otherwise merge into one row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go


if TYPE_CHECKING:  # result types only: figures never run a method
    from ..analysis.few_shot import FewShotPrompt
    from ..analysis.qa import QAWindow
    from ..analysis.sampling import Surprisal
    from ..methods.common import Filler
    from ..methods.few_shot import AnswerScore
    from ..methods.logit_lens import LogitLens
from .basic import safe_label, shorten

_CELL_TEXT_LIMIT = 600  # above this many heatmap cells, tokens show on hover only
LENS_PLOT_PX = 760  # the lens's plot width in a wide page at 1400 px: what a cell's text gets
_CELL_FONT = 13
_MIN_CELL_CHARS = 4  # a cell that would show fewer characters of its token shows none


def _indexed(tokens: Sequence[str], indices: Sequence[int] | None = None) -> list[str]:
    indices = range(len(tokens)) if indices is None else indices
    return [f"{i}:{safe_label(t)}" for i, t in zip(indices, tokens)]


def top_k_bars(fillers: Sequence[Filler], title: str = "") -> go.Figure:
    """Horizontal probability bars, the most probable filler on top."""
    labels = [safe_label(f.text) for f in fillers]
    probs = [f.prob for f in fillers]
    rows = list(range(len(fillers)))
    fig = go.Figure(go.Bar(
        x=probs, y=rows, orientation="h", customdata=labels,
        text=[f"{p:.1%}" for p in probs], textposition="auto",
        hovertemplate="%{customdata}: %{x:.4f}<extra></extra>",
    ))
    fig.update_layout(
        title=safe_label(title), xaxis_title="probability", height=80 + 32 * max(len(rows), 1),
        yaxis=dict(tickvals=rows, ticktext=labels, autorange="reversed"),
        margin=dict(l=10, r=10, t=40 if title else 10, b=40),
    )
    return fig


def _cell_text(tokens: Sequence[Sequence[str]], n_columns: int) -> list[list[str]] | None:
    """The tokens as cell text, cut to what a cell of the lens holds at _CELL_FONT px; None
    when a cell holds fewer than _MIN_CELL_CHARS characters (hover still names the token)."""
    fit = int(LENS_PLOT_PX / n_columns / (0.6 * _CELL_FONT)) - 1  # a glyph is about 0.6 em
    if fit < _MIN_CELL_CHARS:
        return None
    # Cut before escaping, so that "&lt;" is never cut in two.
    return [[safe_label(shorten(t, fit)) for t in row] for row in tokens]


def logit_lens_heatmap(lens: LogitLens, value: str = "final_prob") -> go.Figure:
    """Positions × layers. value="final_prob": the probability of the final prediction at
    each layer (when the answer emerges); "top_prob": each layer's own top token's
    probability. Cells show that layer's top token where it fits (else hover does); each
    row's label ends with the final prediction."""
    z = {"final_prob": lens.final_prob, "top_prob": lens.top_prob}[value]
    custom = np.dstack([
        np.array([[safe_label(t) for t in row] for row in lens.top_tokens], dtype=object),
        np.round(lens.top_prob, 4).astype(object),
        lens.final_rank.astype(object),
        np.array([[safe_label(t)] * z.shape[1] for t in lens.final_tokens], dtype=object),
    ])
    text = _cell_text(lens.top_tokens, z.shape[1]) if z.size <= _CELL_TEXT_LIMIT else None
    rows = [f"{label} → {safe_label(final)}"
            for label, final in zip(_indexed(lens.position_tokens, lens.positions), lens.final_tokens)]
    fig = go.Figure(go.Heatmap(
        z=z, x=list(range(z.shape[1])), y=rows,
        zmin=0, zmax=1, colorscale="Viridis", customdata=custom,
        text=text, texttemplate="%{text}" if text else None, textfont=dict(size=_CELL_FONT),
        xgap=1, ygap=1,
        hovertemplate=(
            "%{y}, layer %{x}<br>top: %{customdata[0]} (%{customdata[1]:.1%})"
            "<br>final %{customdata[3]}: rank %{customdata[2]}, p %{z:.1%}<extra></extra>"
        ),
        colorbar=dict(title="p"),
    ))
    fig.update_layout(
        title=None if text else dict(text="hover a cell for that layer's top token", font=dict(size=13)),
        xaxis=dict(title="layer (0 = embeddings)", dtick=1), yaxis=dict(autorange="reversed"),
        height=140 + 40 * len(lens.positions), margin=dict(l=10, r=10, t=40, b=40),
    )
    return fig


def surprisal_strip(s: Surprisal, per_row: int = 16) -> go.Figure:
    """The text as rows of token cells coloured by surprisal in bits (grey: not scored)."""
    n = len(s.tokens)
    rows = max(1, math.ceil(n / per_row))
    z = np.full((rows, per_row), np.nan)
    text = np.full((rows, per_row), "", dtype=object)
    z.flat[:n] = s.bits
    text.flat[:n] = [safe_label(t) for t in s.tokens]
    finite = s.bits[np.isfinite(s.bits)]
    fig = go.Figure(go.Heatmap(
        z=z, text=text, texttemplate="%{text}", colorscale="OrRd", hoverongaps=False,
        zmin=0, zmax=float(finite.max()) if finite.size else 1.0,
        hovertemplate="%{text}: %{z:.2f} bits<extra></extra>", colorbar=dict(title="bits"),
        xgap=2, ygap=2,
    ))
    fig.update_layout(
        title=f"{s.total_bits:.1f} bits in total, {s.mean_bits:.2f} bits/token",
        xaxis=dict(visible=False), yaxis=dict(visible=False, autorange="reversed"),
        plot_bgcolor="#e8e8e8", height=80 + 40 * rows, margin=dict(l=10, r=10, t=40, b=10),
    )
    return fig


def qa_start_end_bars(window: QAWindow) -> go.Figure:
    """Start and end logits over the window's context tokens."""
    pos = window.context_positions
    labels = _indexed([window.tokens[p] for p in pos], pos)
    fig = go.Figure([
        go.Bar(x=labels, y=window.start_logits[pos], name="start"),
        go.Bar(x=labels, y=window.end_logits[pos], name="end"),
    ])
    fig.update_layout(
        barmode="group", yaxis_title="logit", xaxis=dict(type="category", tickangle=-60),
        title=f"window {window.index}", margin=dict(l=10, r=10, t=40, b=80),
    )
    return fig


def span_matrix_heatmap(window: QAWindow) -> go.Figure:
    """Start token × end token: the score of every valid span (gaps are invalid spans)."""
    pos = window.context_positions
    labels = _indexed([window.tokens[p] for p in pos], pos)
    fig = go.Figure(go.Heatmap(
        z=window.span_matrix(), x=labels, y=labels, hoverongaps=False, colorscale="Viridis",
        hovertemplate="start %{y} → end %{x}: %{z:.2f}<extra></extra>", colorbar=dict(title="score"),
    ))
    fig.update_layout(
        xaxis=dict(title="end", type="category"),
        yaxis=dict(title="start", type="category", autorange="reversed"),
        margin=dict(l=10, r=10, t=30, b=10),
    )
    return fig


def few_shot_bars(curve: Sequence[tuple[FewShotPrompt, AnswerScore]], answer: str = "") -> go.Figure:
    """P(expected answer) for each number of demonstrations."""
    labels = [f"{fp.shots}-shot" for fp, _ in curve]
    probs = [score.prob for _, score in curve]
    fig = go.Figure(go.Bar(
        x=labels, y=probs, text=[f"{p:.1%}" for p in probs], textposition="auto",
        hovertemplate="%{x}: %{y:.4f}<extra></extra>",
    ))
    title = f"P({safe_label(answer.strip())} | prompt)" if answer else "P(answer | prompt)"
    fig.update_layout(
        title=title, yaxis=dict(range=[0, 1], title="probability"), margin=dict(l=10, r=10, t=40, b=40)
    )
    return fig
