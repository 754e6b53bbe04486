"""Extractive QA: the question and context read in overlapping windows, each window's
start/end logits from the model's QA head, decoded into answers by `analysis.qa`."""

from __future__ import annotations

import numpy as np
import torch

from ..analysis.qa import QAResult, QAWindow, best_answers
from ..analysis.tokens import display_tokens
from ..backends.hf import LoadedModel
from ..errors import InputError
from ..models import catalog as cat
from ..validate import clean_text
from .common import require
from .registry import register

_WINDOWS_PER_BATCH = 16  # bounds memory on very long contexts


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
    answers = best_answers(windows, context, top_k)
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


register("qa-spans", "Answer spans", "start/end scores over the context and the best answer spans", [cat.QA_SPANS],
         answer_question, top_k=3, max_answer_len=30, stride=64)
