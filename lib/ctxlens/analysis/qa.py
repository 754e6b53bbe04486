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
import torch

from ..errors import InputError
from ..models import catalog as cat
from ..backends.hf import LoadedModel
from ..validate import clean_text
from .predictions import require
from .tokens import display_tokens

_WINDOWS_PER_BATCH = 16  # bounds memory on very long contexts


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

    @property
    def no_answer_preferred(self) -> bool:
        """Meaningful for SQuAD 2.0 models only: they answer "no answer" when this is True."""
        return not self.answers or self.null_score > self.answers[0].score


def answer_question(
    lm: LoadedModel, question: str, context: str, top_k: int = 3, max_answer_len: int = 30,
    stride: int = 64, max_tokens: int | None = None,
) -> QAResult:
    """The top-k answers to `question` found in `context`, read in overlapping windows.

    stride: tokens shared by consecutive windows (capped at half a window), so an answer
    cut by one window boundary lies whole in the next window.
    """
    require(lm, cat.QA_SPANS)
    question = clean_text(question, "question")
    context = clean_text(context, "context")
    tok = lm.tokenizer
    limit = min(max_tokens or lm.max_tokens, lm.max_tokens)
    question_len = len(tok(question, add_special_tokens=False)["input_ids"])
    room = limit - question_len - tok.num_special_tokens_to_add(pair=True)
    if room < 8:
        raise InputError(
            f"The question is too long: with a {limit}-token limit it leaves {max(room, 0)} tokens "
            "for the context. Shorten the question."
        )
    enc = tok(
        question, context, truncation="only_second", max_length=limit, stride=max(0, min(stride, room // 2)),
        return_overflowing_tokens=True, return_offsets_mapping=True, return_special_tokens_mask=True,
    )
    windows = _run_windows(lm, enc, max_answer_len)
    answers = _best_answers(windows, context, top_k)
    return QAResult(question, context, answers, windows, min(w.null_score for w in windows))


def _run_windows(lm: LoadedModel, enc, max_answer_len: int) -> tuple[QAWindow, ...]:
    ids = enc["input_ids"]
    starts, ends = [], []
    for first in range(0, len(ids), _WINDOWS_PER_BATCH):
        s, e = _forward(lm, enc, range(first, min(first + _WINDOWS_PER_BATCH, len(ids))))
        starts += s
        ends += e
    windows = []
    for w, row in enumerate(ids):
        seq = enc.sequence_ids(w)
        context_mask = np.array([s == 1 for s in seq]) & ~np.array(enc["special_tokens_mask"][w], dtype=bool)
        special = np.array([s is None for s in seq])
        cls = _cls_index(lm, row)
        windows.append(QAWindow(
            index=w, tokens=display_tokens(lm.tokenizer.convert_ids_to_tokens(row), lm.tokenizer, special),
            offsets=np.array(enc["offset_mapping"][w], dtype=np.int64).reshape(-1, 2),
            context_mask=context_mask, start_logits=starts[w], end_logits=ends[w],
            null_score=float(starts[w][cls] + ends[w][cls]), max_answer_len=max_answer_len,
        ))
    return tuple(windows)


def _forward(lm: LoadedModel, enc, rows: range) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Start/end logits of some windows, padded on the right into one batch."""
    lengths = [len(enc["input_ids"][r]) for r in rows]
    width = max(lengths)
    pad = lm.tokenizer.pad_token_id or 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    types = torch.zeros_like(ids)
    for k, (r, n) in enumerate(zip(rows, lengths)):
        ids[k, :n] = torch.tensor(enc["input_ids"][r])
        mask[k, :n] = 1
        if "token_type_ids" in enc:
            types[k, :n] = torch.tensor(enc["token_type_ids"][r])
    inputs = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in enc:
        inputs["token_type_ids"] = types
    with torch.inference_mode():
        out = lm.model(**{k: v.to(lm.device) for k, v in inputs.items()}, return_dict=True)
    s, e = out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()
    return [s[k, :n] for k, n in enumerate(lengths)], [e[k, :n] for k, n in enumerate(lengths)]


def _cls_index(lm: LoadedModel, row: list[int]) -> int:
    cls = lm.tokenizer.cls_token_id
    return row.index(cls) if cls is not None and cls in row else 0


def _best_answers(windows, context: str, top_k: int) -> tuple[Answer, ...]:
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
