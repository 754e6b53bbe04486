"""Figures for the "why" views: the sentence shaded by word scores, word bars, head importance
by ablation and the cross-check's agreement matrix.

One diverging, colour-blind-safe scale (ColorBrewer RdBu, reversed) for every figure: red
for a word or head that supports the target, blue for one that works against it, near-white
for 0. Scales are symmetric around 0 (±max |score|), so the colour of 0 never moves.
User text is escaped everywhere: `safe_label` in plotly, `_escape_text` in our own HTML.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.colors as pc
import plotly.graph_objects as go

from .basic import safe_label

if TYPE_CHECKING:  # result types only: figures never run a method
    from ..methods.attribution import Attribution

# Low (against the target) = blue, 0 = rgb(247,247,247), high (for the target) = red.
DIVERGING = pc.make_colorscale(list(reversed(pc.diverging.RdBu)))
NOT_SCORED = "#d9d9d9"  # a word the method gives no score (occlusion of the word the target reads)
TAIL_CHARS = 200  # unscored text after the last scored word (cut by truncation) is shown this far
# HTML's specials, and those markdown (or its math plugin) would act on were the HTML read
# as markdown, as character references, in one pass; a newline is a line break.
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "<br>",
                          **{c: f"&#{ord(c)};" for c in "'*_`$[]~\\#|"}})


def _escape_text(text: str) -> str:
    """User text as literal characters inside our HTML, whether read as HTML or markdown."""
    return text.translate(_ESCAPES)


def scale_limit(scores) -> float:
    """The symmetric scale's end: max |score| (1 when every score is 0 or NaN)."""
    finite = np.abs(np.asarray(scores, dtype=np.float64))
    finite = finite[np.isfinite(finite)]
    return float(finite.max()) if finite.size and finite.max() > 0 else 1.0


def score_colour(score: float, limit: float) -> str:
    """The background of a word scored `score` on the scale −limit … +limit."""
    if score is None or not math.isfinite(score):
        return NOT_SCORED
    return pc.sample_colorscale(DIVERGING, [min(max(0.5 + score / (2 * limit), 0.0), 1.0)])[0]


def _ink(background: str) -> str:
    """Black or white text, whichever reads better on `background` (WCAG luminance)."""
    if background.startswith("#"):
        return "#000000"
    r, g, b = (float(v) / 255 for v in background[4:-1].split(","))
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return "#000000" if 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2] > 0.18 else "#ffffff"


def _word_span(word: str, score: float, limit: float, outline: bool) -> str:
    background = score_colour(score, limit)
    tip = f"{word}: {score:+.4g}" if math.isfinite(score) else f"{word}: not scored"
    border = "outline:3px solid #000;" if outline else ""
    return (f'<span title="{_escape_text(tip)}" style="background:{background};color:{_ink(background)};'
            f'{border}padding:0.1em 0.15em;border-radius:0.2em">{_escape_text(word)}</span>')


FOR_TARGET = ("against the target", "for the target")  # the legend's words for −max and +max


def _legend(limit: float, words: tuple[str, str]) -> str:
    ends = [(-limit, words[0]), (0.0, "no effect"), (limit, words[1])]
    cells = "".join(f'<span style="background:{score_colour(v, limit)};color:{_ink(score_colour(v, limit))};'
                    f'padding:0.1em 0.4em;margin-right:0.3em">{v:+.3g} {label}</span>' for v, label in ends)
    return f'<div style="font-size:0.8em;margin-top:0.6em">{cells}</div>'


def shaded_sentence_html(words_with_scores: Sequence[tuple[str, float]], text: str, highlight: int | None = None,
                         legend: tuple[str, str] | None = FOR_TARGET, limit: float | None = None) -> str:
    """`text` with each scored word's background coloured by its score (hover: the score).

    words_with_scores: (word, score) in text order, each word as it appears in `text` (the
    words of `analysis.words.split_words`); they are found left to right, so the text's own
    spacing and punctuation stay. highlight: the index of a word to outline (the occurrence
    a sense attribution explains). legend: what −max and +max mean (None: no legend). limit:
    the scale's end (default: max |score| here; a pair's two texts share one). One block of
    HTML with no blank line and no raw newline."""
    limit = limit or scale_limit([s for _, s in words_with_scores])
    parts, cursor = [], 0
    for n, (word, score) in enumerate(words_with_scores):
        span = _word_span(word, float(score), limit, n == highlight)
        start = text.find(word, cursor)
        if start < 0:  # not in the text (should not happen): shown where it came, spaced
            parts.append(f" {span} ")
            continue
        parts += [_escape_text(text[cursor:start]), span]
        cursor = start + len(word)
    tail = text[cursor:]
    parts.append(_escape_text(tail[:TAIL_CHARS]) + ("…" if len(tail) > TAIL_CHARS else ""))
    body = "".join(parts)
    return (f'<div class="ctx-shaded" style="font-size:1.25em;line-height:2.1;padding:0.4em 0">{body}'
            f'{_legend(limit, legend) if legend else ""}</div>')


def word_bars(attribution: Attribution, title: str | None = None) -> go.Figure:
    """One bar per word, coloured on the diverging scale; a word with no score reads "n/a".
    Anything with `words` and `word_scores` will do (a sense attribution too)."""
    scores = np.asarray(attribution.word_scores, dtype=np.float64)
    labels = [safe_label(w) for w in attribution.words]
    limit = scale_limit(scores)
    x = list(range(len(labels)))
    fig = go.Figure(go.Bar(
        x=x, y=np.nan_to_num(scores, nan=0.0), customdata=labels,
        marker=dict(color=np.nan_to_num(scores, nan=0.0), colorscale=DIVERGING, cmin=-limit, cmax=limit,
                    line=dict(color="#555555", width=0.5)),
        text=["n/a" if not math.isfinite(s) else "" for s in scores], textposition="outside",
        hovertemplate="%{customdata}: %{y:.4g}<extra></extra>",
    ))
    if title is None:
        target = getattr(attribution, "target", None)
        title = f"why {target.title}" if target is not None else ""
    fig.update_layout(
        title=safe_label(title), yaxis=dict(title="score", zeroline=True, zerolinecolor="#444444"),
        xaxis=dict(tickmode="array", tickvals=x, ticktext=labels, tickangle=-45 if len(x) > 12 else 0),
        height=360, margin=dict(l=10, r=10, t=40 if title else 10, b=80),
    )
    return fig


def head_importance_heatmap(change: np.ndarray) -> go.Figure:
    """Layers × heads: the target's change (log-prob or logit difference) when the head alone
    is knocked out. Red: knocking it out lowers the target (the head supported it)."""
    change = np.asarray(change, dtype=np.float64)
    limit = scale_limit(change)
    fig = go.Figure(go.Heatmap(
        z=change, x=list(range(change.shape[1])), y=list(range(change.shape[0])),
        colorscale=DIVERGING, reversescale=True, zmin=-limit, zmax=limit,
        hovertemplate="layer %{y}, head %{x}: Δ %{z:.4f}<extra></extra>", colorbar=dict(title="Δ"),
        xgap=1, ygap=1,
    ))
    fig.update_layout(
        xaxis=dict(title="head", dtick=1), yaxis=dict(title="layer", dtick=1, autorange="reversed"),
        height=140 + 22 * change.shape[0], margin=dict(l=10, r=10, t=30, b=40),
        title="Change when one head is knocked out (red: the head supported the target)",
    )
    return fig


def agreement_heatmap(agreement: pd.DataFrame) -> go.Figure:
    """Methods × methods Spearman rank correlation, each cell written (NaN: "n/a")."""
    z = agreement.to_numpy(dtype=np.float64)
    text = [["n/a" if not math.isfinite(v) else f"{v:.2f}" for v in row] for row in z]
    rows, cols = [safe_label(r) for r in agreement.index], [safe_label(c) for c in agreement.columns]
    fig = go.Figure(go.Heatmap(
        z=z, x=cols, y=rows, text=text, texttemplate="%{text}", colorscale=DIVERGING, zmin=-1, zmax=1,
        hovertemplate="%{y} vs %{x}: %{text}<extra></extra>", colorbar=dict(title="ρ"), hoverongaps=False,
    ))
    fig.update_layout(
        yaxis=dict(autorange="reversed"), xaxis=dict(tickangle=-30),
        height=120 + 45 * len(rows), margin=dict(l=10, r=10, t=30, b=80),
        title="Spearman rank agreement between the methods",
    )
    return fig


def word_table(attribution: Attribution) -> pd.DataFrame:
    """Words and scores, with what was explained and how, for a CSV download."""
    options = dict(getattr(attribution, "options", ()) or ())
    frame = pd.DataFrame({"word": list(attribution.words), "score": np.asarray(attribution.word_scores)})
    target = getattr(attribution, "target", None)
    if target is not None:
        frame["target"] = target.title
        frame["method"] = attribution.method
    for name, value in options.items():
        frame[name] = value
    return frame
