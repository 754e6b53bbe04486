"""Attention arithmetic on plain numpy arrays: per-head statistics, rollout, word merging.

Every function takes attention probabilities shaped [..., T, T] with queries on the
second-to-last axis and keys on the last (rows sum to 1), as in `Analysis.attentions`
[layers, heads, T, T]. Nothing here needs a model.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import numpy as np

# Name of each statistic returned by head_statistics, in display order, with a label.
STATISTICS: dict[str, str] = {
    "entropy": "Entropy (nats)",
    "first": "Attention to first token ([CLS]/BOS)",
    "sep": "Attention to [SEP]/EOS",
    "self": "Attention to self",
    "prev": "Attention to previous token",
    "next": "Attention to next token",
    "punct": "Attention to punctuation",
}

# Markers that display tokens carry for word boundaries; not part of the token's text.
_BOUNDARY_MARKS = ("␣", "##", "Ġ", "▁")


def is_punctuation_token(token: str) -> bool:
    """True when the token's text, without boundary markers, is only punctuation (Unicode P*)."""
    text = token
    for mark in _BOUNDARY_MARKS:
        text = text.replace(mark, "")
    text = text.strip()
    return bool(text) and all(unicodedata.category(c).startswith("P") for c in text)


def row_entropy(att: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats of every attention row, [..., T, T] -> [..., T]; 0 log 0 = 0."""
    p = att.astype(np.float64)
    logp = np.log(np.where(p > 0, p, 1.0))  # log 1 = 0 where p == 0
    return -(p * logp).sum(axis=-1)


def head_statistics(
    att: np.ndarray, special_mask: np.ndarray, tokens: Sequence[str]
) -> dict[str, np.ndarray]:
    """Per-head summaries of attention [L, H, T, T] as a dict of [L, H] float64 arrays.

    With a_ij the weight query i gives key j, and every mean taken over query rows i:
      entropy: mean_i of -sum_j a_ij ln a_ij (nats; 0 = one-hot, ln T = uniform).
      first:   mean_i a_i0, attention to position 0 ([CLS], <s>, BOS, or GPT-2's first
               word, which serves as the same "sink").
      sep:     mean_i of sum_j a_ij over special tokens at positions j > 0 ([SEP], </s>,
               EOS). NaN when there are none (GPT-2 inputs usually): the final ordinary
               token is no stand-in, since under a causal mask only the last query sees it.
      self:    mean_i a_ii.
      prev:    mean over i >= 1 of a_i,i-1 (row 0 has no previous token).
      next:    mean over i <= T-2 of a_i,i+1 (exactly 0 for causal models).
      punct:   mean_i of sum_j a_ij over punctuation tokens (see is_punctuation_token;
               special tokens excluded). NaN when the input has no punctuation.
    All rows, special tokens' included, count as queries. prev/next are NaN when T == 1.
    """
    att = np.asarray(att, dtype=np.float64)
    special = np.asarray(special_mask, dtype=bool)
    n = att.shape[-1]
    if att.ndim != 4 or att.shape[-2] != n or len(special) != n or len(tokens) != n:
        raise ValueError(f"expected attention [L, H, T, T] with T={len(tokens)} tokens, got {att.shape}")
    sep = special.copy()
    sep[0] = False
    punct = np.array([is_punctuation_token(t) for t in tokens]) & ~special
    diag = np.diagonal(att, axis1=-2, axis2=-1)  # [L, H, T]
    nan = np.full(att.shape[:2], np.nan)
    return {
        "entropy": row_entropy(att).mean(axis=-1),
        "first": att[..., :, 0].mean(axis=-1),
        "sep": att[..., sep].sum(axis=-1).mean(axis=-1) if sep.any() else nan,
        "self": diag.mean(axis=-1),
        "prev": np.diagonal(att, offset=-1, axis1=-2, axis2=-1).mean(axis=-1) if n > 1 else nan,
        "next": np.diagonal(att, offset=1, axis1=-2, axis2=-1).mean(axis=-1) if n > 1 else nan,
        "punct": att[..., punct].sum(axis=-1).mean(axis=-1) if punct.any() else nan,
    }


def mean_over_heads(att: np.ndarray) -> np.ndarray:
    """Average over the head axis: [L, H, T, T] -> [L, T, T]."""
    return np.asarray(att).mean(axis=1)


def _normalise_rows(mat: np.ndarray) -> np.ndarray:
    """Divide each row by its sum; all-zero rows stay zero instead of becoming NaN."""
    sums = mat.sum(axis=-1, keepdims=True)
    return np.divide(mat, sums, out=np.zeros_like(mat), where=sums > 0)


def attention_rollout(att: np.ndarray, add_residual: bool = True) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020): [L, H, T, T] -> cumulative [L, T, T].

    Per layer A'_l = 0.5 * mean_heads(A_l) + 0.5 * I (the residual connection carries half
    of each token's identity forward; skipped when add_residual is False), rows
    renormalised to sum to 1. Output l is A'_l @ ... @ A'_1: how much each input token
    (column) contributes to each position (row) after layer l.
    """
    mean = mean_over_heads(np.asarray(att, dtype=np.float64))
    n = mean.shape[-1]
    out = np.empty_like(mean)
    rollout = np.eye(n)
    for layer, a in enumerate(mean):
        if add_residual:
            a = 0.5 * a + 0.5 * np.eye(n)
        rollout = _normalise_rows(a) @ rollout
        out[layer] = rollout
    return out


def drop_special_sinks(att: np.ndarray, special_mask: np.ndarray) -> np.ndarray:
    """Zero the key columns of special tokens and renormalise rows, [..., T, T].

    Special tokens soak up much attention as a "no-op" sink; dropping them shows how the
    rest is shared among real tokens. Rows left with nothing stay all zero.
    """
    out = np.array(att, dtype=np.float64, copy=True)
    out[..., np.asarray(special_mask, dtype=bool)] = 0.0
    return _normalise_rows(out)


def present_words(word_ids: np.ndarray) -> np.ndarray:
    """Sorted word ids that have at least one token: the row/column order of merge_to_words."""
    ids = np.asarray(word_ids)
    return np.unique(ids[ids >= 0])


def merge_to_words(att: np.ndarray, word_ids: np.ndarray) -> np.ndarray:
    """Token attention [..., T, T] -> word attention [..., W, W] over present_words(word_ids).

    Keys: SUM over a word's pieces (attention paid to any piece is paid to the word, so
    rows still sum to 1 apart from what went to dropped tokens). Queries: MEAN over a
    word's pieces (each piece is one observation of where the word looks). Tokens with
    word id -1 (special, whitespace-only) are dropped.
    """
    ids = np.asarray(word_ids)
    words = present_words(ids)
    member = (ids[:, None] == words[None, :]).astype(np.float64)  # [T, W]
    query_avg = (member / member.sum(axis=0, keepdims=True)).T  # [W, T]
    return query_avg @ np.asarray(att, dtype=np.float64) @ member
