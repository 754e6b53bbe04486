"""Extractive question answering: from start/end logits to answer spans in the context.

A span (i, j) of tokens is valid when i ≤ j, it has at most `max_answer_len` tokens and
every token in it belongs to the context (never the question, never a special token).
Its score is start_logit[i] + end_logit[j], the log of the unnormalised probability
that the answer starts at i and ends at j, as in BERT's SQuAD recipe.

Long contexts are read in overlapping windows (the tokenizer's overflow with a stride);
spans from every window are compared by score, and each answer is mapped back to exact
character offsets of the typed context.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class Span:
    start: int  # token index, inclusive
    end: int  # token index, inclusive
    score: float  # start_logit[start] + end_logit[end]


def valid_spans(context_mask: np.ndarray, max_answer_len: int) -> np.ndarray:
    """[T, T] bool: True where (start, end) is a valid span (see the module docstring)."""
    inside = np.asarray(context_mask, dtype=bool)
    # outside[k] = number of non-context tokens before k; a span is clean if none lie in it.
    outside = np.concatenate([[0], np.cumsum(~inside)])
    i, j = np.indices((len(inside), len(inside)))
    clean = outside[j + 1] - outside[i] == 0
    return (j >= i) & (j - i < max_answer_len) & clean & inside[i]


def span_scores(start_logits, end_logits, context_mask, max_answer_len: int) -> np.ndarray:
    """[T, T] start+end scores, NaN where the span is invalid (the heatmap's data)."""
    s = np.asarray(start_logits, dtype=np.float64)
    e = np.asarray(end_logits, dtype=np.float64)
    scores = s[:, None] + e[None, :]
    return np.where(valid_spans(context_mask, max_answer_len), scores, np.nan)


def decode_spans(
    start_logits, end_logits, context_mask, max_answer_len: int = 30, top_k: int = 5
) -> list[Span]:
    """The top-k valid spans by score, best first (ties: earlier start, then earlier end)."""
    if max_answer_len < 1 or top_k < 1:
        raise InputError("max_answer_len and top_k must be at least 1.")
    scores = span_scores(start_logits, end_logits, context_mask, max_answer_len)
    starts, ends = np.nonzero(np.isfinite(scores))
    values = scores[starts, ends]
    order = np.lexsort((ends, starts, -values))[:top_k]
    return [Span(int(starts[k]), int(ends[k]), float(values[k])) for k in order]


@dataclass(frozen=True)
class Answer:
    text: str  # == context[char_start:char_end]
    char_start: int
    char_end: int
    score: float  # start + end logit
    prob: float  # softmax of the score over every valid span of its window
    window: int
    token_start: int  # token indices within that window
    token_end: int


@dataclass(frozen=True)
class QAWindow:
    """One window of question + part of the context, as the model read it."""

    index: int
    tokens: tuple[str, ...]
    offsets: np.ndarray  # [n, 2]; context tokens: character offsets into the context
    context_mask: np.ndarray  # [n] bool
    start_logits: np.ndarray  # [n]
    end_logits: np.ndarray  # [n]
    null_score: float  # start + end logit of the [CLS] token: SQuAD 2.0's "no answer"
    max_answer_len: int

    @property
    def context_positions(self) -> np.ndarray:
        return np.flatnonzero(self.context_mask)

    @property
    def char_range(self) -> tuple[int, int]:
        """The characters of the context this window covers."""
        pos = self.context_positions
        return int(self.offsets[pos[0], 0]), int(self.offsets[pos[-1], 1])

    def span_matrix(self) -> np.ndarray:
        """[C, C] span scores over this window's context tokens; NaN where invalid."""
        pos = self.context_positions
        full = span_scores(self.start_logits, self.end_logits, self.context_mask, self.max_answer_len)
        return full[np.ix_(pos, pos)]


@dataclass(frozen=True)
class QAResult:
    question: str
    context: str
    answers: tuple[Answer, ...]  # best first, one per distinct character span
    windows: tuple[QAWindow, ...]
    null_score: float  # the lowest no-answer score over windows (as SQuAD 2.0 evaluation does)
    read_to: int | None = None  # the context was read up to this character (None: all of it)
    token_budget: int = 0  # the request's token budget that cut it (CTXLENS_REQUEST_TOKENS)

    @property
    def cut(self) -> bool:
        """True when the token budget stopped the windows before the end of the context."""
        return self.read_to is not None and self.read_to < len(self.context)

    @property
    def no_answer_preferred(self) -> bool:
        """Meaningful for SQuAD 2.0 models only: they answer "no answer" when this is True."""
        return not self.answers or self.null_score > self.answers[0].score


def best_answers(windows, context: str, top_k: int) -> tuple[Answer, ...]:
    """Top spans of every window, mapped to characters; a span seen in two overlapping
    windows keeps its best score."""
    best: dict[tuple[int, int], Answer] = {}
    for w in windows:
        scores = span_scores(w.start_logits, w.end_logits, w.context_mask, w.max_answer_len)
        finite = scores[np.isfinite(scores)]
        if finite.size == 0:
            continue
        log_z = float(np.logaddexp.reduce(finite))
        for span in decode_spans(w.start_logits, w.end_logits, w.context_mask, w.max_answer_len, top_k):
            a, b = int(w.offsets[span.start, 0]), int(w.offsets[span.end, 1])
            prob = float(np.exp(span.score - log_z))
            answer = Answer(context[a:b], a, b, span.score, prob, w.index, span.start, span.end)
            if (a, b) not in best or best[(a, b)].score < answer.score:
                best[(a, b)] = answer
    ranked = sorted(best.values(), key=lambda x: (-x.score, x.char_start, x.char_end))
    return tuple(ranked[:top_k])
