"""Adapters and partial fine-tuning: a model's parameters by component beside what an adapter
adds, and the live demo's training loss."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from .basic import safe_label


def parameters_figure(components: Mapping[str, int], additions: Mapping[str, int], total: int,
                      title: str = "") -> go.Figure:
    """Horizontal bars, log scale: the model's parameters per component, then what each adapter
    adds, each labelled with its count and its share of the model."""
    names = list(components) + list(additions)
    counts = [int(v) for v in components.values()] + [int(v) for v in additions.values()]
    colours = ["#4a5568"] * len(components) + ["#dd6b20"] * len(additions)
    fig = go.Figure(go.Bar(
        x=[max(c, 0.5) for c in counts], y=[safe_label(n) for n in names], orientation="h",
        marker_color=colours, text=[f"{c:,} ({c / total:.2%})" if total else f"{c:,}" for c in counts],
        textposition="outside", cliponaxis=False, customdata=counts,
        hovertemplate="%{y}: %{customdata:,} parameters<extra></extra>",
    ))
    fig.update_xaxes(type="log", dtick=1, title="parameters (log scale)")  # ticks at powers of ten only
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title or f"Parameters: {total:,} in the model (grey);<br>what an adapter adds (orange)",
                      height=140 + 40 * len(names), margin=dict(l=10, r=120, t=80, b=40))
    return fig


def loss_figure(losses: Sequence[float], steps: int | None = None, title: str = "") -> go.Figure:
    """The training loss per step (x up to `steps` when given, so a live chart does not rescale).
    `title` is shown as plotly HTML: escape user text in it (`basic.safe_label`)."""
    x = list(range(1, len(losses) + 1))
    fig = go.Figure(go.Scatter(x=x, y=list(losses), mode="lines+markers", name="training loss",
                               hovertemplate="step %{x}: loss %{y:.4f}<extra></extra>"))
    fig.update_xaxes(title="step", range=[0.5, (steps or max(len(x), 1)) + 0.5])
    fig.update_yaxes(title="cross-entropy loss", rangemode="tozero")
    fig.update_layout(title=title or "Training loss (the whole training set, each step)", height=320,
                      margin=dict(l=10, r=10, t=60, b=40))
    return fig
