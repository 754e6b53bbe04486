"""Figures of the fine-tuning notes: the four shapes of a fine-tuning task and the positions each
reads, what each part of a model and each adapter costs, and a training loss.

BERT's paper fine-tunes one encoder for four shapes of task, each a small head on top:
- sentence classification reads [CLS] of "[CLS] A [SEP]";
- token classification reads every token of "[CLS] A [SEP]" (special tokens carry no label);
- sentence-pair classification reads [CLS] of "[CLS] A [SEP] B [SEP]";
- span extraction computes start and end scores from every token's vector of
  "[CLS] question [SEP] passage [SEP]".
A decoder has no [CLS]: its sequence classifier reads the last token, the only one that saw
the whole input. Which positions a shape reads is `read_positions`, a pure function of the
tokenised input that the figure and the tests share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from ..models import catalog as cat
from .basic import safe_label

SHAPES = ("sentence", "token", "pair", "span")
SHAPE_TITLES = {
    "sentence": "Sentence classification",
    "token": "Token classification",
    "pair": "Sentence-pair classification",
    "span": "Span extraction (QA)",
}
SHAPE_READS = {
    "sentence": "one vector: [CLS] (a decoder: the last token) → one label for the sentence",
    "token": "every token's vector → one label per token (special tokens carry none)",
    "pair": "one vector: [CLS] of A and B read together → one label for the pair",
    "span": "every token's vector → a start score and an end score; the best span is the answer",
}
PAIRED = frozenset({"pair", "span"})  # the shapes that read "[CLS] A [SEP] B [SEP]"
# The trained heads (catalog capabilities) that read each shape; NSP is a pre-training pair head.
SHAPE_HEADS = {
    "sentence": (cat.SEQ_CLASS,),
    "token": (cat.TOKEN_CLASS,),
    "pair": (cat.SEQ_CLASS, cat.NSP),
    "span": (cat.QA_SPANS,),
}
_LIT, _DARK = "#dd6b20", "#e2e8f0"


def read_positions(shape: str, special_mask: Sequence[bool], reads_last: bool = False) -> list[int]:
    """The positions whose final vectors the head of `shape` reads, for one tokenised input
    (single text for "sentence" and "token", the pair for "pair" and "span").

    reads_last: a decoder's sequence classifier reads the last token, not the first."""
    special = np.asarray(special_mask, dtype=bool)
    n = len(special)
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; one of {SHAPES}")
    if n == 0:
        return []
    if shape in ("sentence", "pair"):
        if reads_last:
            return [n - 1]
        firsts = np.flatnonzero(special)
        return [int(firsts[0]) if len(firsts) else 0]  # [CLS] / <s>: the first special token
    if shape == "token":
        return [int(i) for i in np.flatnonzero(~special)]
    return list(range(n))  # span: start and end scores at every position


def live_heads(spec: cat.ModelSpec) -> dict[str, list[str]]:
    """Per shape, the labels of the trained heads `spec` has for it (empty: none)."""
    return {shape: [cat.CAPABILITY_LABELS[c] for c in caps if c in spec.capabilities]
            for shape, caps in SHAPE_HEADS.items()}


def shapes_figure(single, pair, reads_last: bool = False, heads: Mapping[str, Sequence[str]] | None = None,
                  title: str = "") -> go.Figure:
    """One row per shape, one cell per token of the input that shape reads; the cells it reads lit.

    single, pair: tokenised inputs (anything with `tokens` and `special_mask`, e.g. an Analysis)
    of text A and of the pair A, B. heads: `live_heads`' answer, shown beside each row."""
    rows = {s: pair if s in PAIRED else single for s in SHAPES}
    width = max(len(r.tokens) for r in rows.values())
    z = np.full((len(SHAPES), width), np.nan)
    text = [[""] * width for _ in SHAPES]
    hover = [[""] * width for _ in SHAPES]
    for i, shape in enumerate(SHAPES):
        read = set(read_positions(shape, rows[shape].special_mask, reads_last))
        for j, token in enumerate(rows[shape].tokens):
            z[i, j] = 1.0 if j in read else 0.0
            text[i][j] = safe_label(token)
            hover[i][j] = f"{SHAPE_TITLES[shape]}<br>position {j}: {safe_label(token)}<br>" + (
                "read by the head" if j in read else "not read")
    labels = [_row_label(s, heads) for s in SHAPES]
    fig = go.Figure(go.Heatmap(
        z=z, x=list(range(width)), y=labels, text=text, texttemplate="%{text}", customdata=hover,
        hovertemplate="%{customdata}<extra></extra>", zmin=0, zmax=1, showscale=False, xgap=2, ygap=6,
        colorscale=[[0, _DARK], [0.5, _DARK], [0.5, _LIT], [1, _LIT]],
    ))
    fig.update_yaxes(autorange="reversed", showgrid=False)
    fig.update_xaxes(title="position", dtick=1 if width <= 40 else None, showgrid=False)
    fig.update_layout(title=title or "What each fine-tuning shape reads (orange: the head reads it)",
                      height=170 + 70 * len(SHAPES), margin=dict(l=10, r=10, t=60, b=40))
    return fig


def _row_label(shape: str, heads: Mapping[str, Sequence[str]] | None) -> str:
    if heads is None:
        return SHAPE_TITLES[shape]
    have = heads.get(shape) or []
    return f"{SHAPE_TITLES[shape]}<br>{'live head: ' + ', '.join(have) if have else 'no trained head'}"
