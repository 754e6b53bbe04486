"""Extractive QA: the question and context read in overlapping windows, each window's
start/end logits from the model's QA head, decoded into answers by `analysis.qa`."""

from __future__ import annotations

import numpy as np
import torch

from ..analysis.qa import QAResult, QAWindow, best_answers
from ..analysis.tokens import display_tokens
from ..backends.hf import LoadedModel
from ..backends.limits import REQUEST_TOKENS_ENV, request_token_budget
from ..errors import InputError
from ..models import catalog as cat
from ..validate import clean_text
from .registry import check, register

_WINDOWS_PER_BATCH = 16  # bounds memory on very long contexts
_CHARS_PER_TOKEN = 8  # a first guess, generous for prose (about 4), at the characters worth tokenising


def answer_question(
    lm: LoadedModel, question: str, context: str, top_k: int = 3, max_answer_len: int = 30,
    stride: int = 64, max_tokens: int | None = None, token_budget: int | None = None,
) -> QAResult:
    """The top-k answers to `question` found in `context`, read in overlapping windows.

    stride: tokens shared by consecutive windows (capped at half a window), so an answer
    cut by one window boundary lies whole in the next window.
    token_budget: the most tokens the windows read in all (default `CTXLENS_REQUEST_TOKENS`),
    at least one window. A longer context is read from its start as far as that many windows
    reach; `result.read_to` says up to which character (`budget_message` says it in words).
    """
    check("qa-spans", lm.spec)
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
    stride = max(0, min(stride, room // 2))
    budget = token_budget or request_token_budget()
    n_windows = max(1, budget // limit)
    reach = room + (n_windows - 1) * (room - stride)  # context tokens that many windows read
    enc, whole = _windows_within(tok, question, context, limit, stride, reach, n_windows)
    windows = _run_windows(lm, enc, max_answer_len, n_windows)
    answers = best_answers(windows, context, top_k)
    read_to = None if whole and len(enc["input_ids"]) <= n_windows else windows[-1].char_range[1]
    return QAResult(question, context, answers, windows, min(w.null_score for w in windows), read_to, budget)


def budget_message(key: str, result: QAResult) -> str:
    """What the request's token budget cut from the context, in the words of the interactive
    limit's message (empty when nothing was cut)."""
    if not result.cut:
        return ""
    n, width = len(result.windows), max(len(w.tokens) for w in result.windows)
    return (f"{key}: one request reads at most {result.token_budget:,} tokens in all "
            f"({REQUEST_TOKENS_ENV} sets the budget), {n} window{'s' if n > 1 else ''} of {width:,} "
            f"tokens here, so only the first {result.read_to:,} of {len(result.context):,} characters "
            "of the context were read.")


def _windows_within(tok, question: str, context: str, limit: int, stride: int, reach: int, n_windows: int):
    """The overflowing windows of (question, context), tokenising only as much of a long
    context as `n_windows` windows can read (`reach` context tokens): a prefix cut at a space,
    grown until its windows pass `n_windows`, so the first `n_windows` windows are those of the
    whole context. Returns (the encoding, whether it holds the whole context)."""
    chars = reach * _CHARS_PER_TOKEN
    while True:
        whole = chars >= len(context)
        if whole:
            text = context
        else:
            space = context.rfind(" ", chars // 2, chars)  # a word cut in two tokenises differently
            text = context[: space if space > 0 else chars]
        enc = tok(
            question, text, truncation="only_second", max_length=limit, stride=stride,
            return_overflowing_tokens=True, return_offsets_mapping=True, return_special_tokens_mask=True,
        )
        if whole or len(enc["input_ids"]) > n_windows:
            return enc, whole
        chars *= 2


def _run_windows(lm: LoadedModel, enc, max_answer_len: int, n_windows: int) -> tuple[QAWindow, ...]:
    ids = enc["input_ids"][:n_windows]
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


register("qa-spans", "Answer spans", "start/end scores over the context and the best answer spans", [cat.QA_SPANS],
         answer_question, top_k=3, max_answer_len=30, stride=64)
