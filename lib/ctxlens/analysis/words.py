"""One word segmentation for every model, and the token → word alignment.

ELMo reads words; BERT and GPT read sub-words. Every comparison across models happens on
the words produced here: runs of letters/digits, each punctuation or symbol character on
its own, and each CJK ideograph on its own (as BERT's basic tokenizer does). A token belongs
to every word its characters overlap; its word id is the first of them.
"""

from __future__ import annotations

import re
from typing import Literal

import numpy as np

from ..record import Analysis, Word, word_token_indices

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
_WORD_RE = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")

Pooling = Literal["first", "mean", "last"]


def split_words(text: str, segment: int = 0) -> list[Word]:
    return [Word(m.group(), m.start(), m.end(), segment) for m in _WORD_RE.finditer(text)]


def align_tokens_to_words(
    offsets: np.ndarray, special_mask: np.ndarray, segment_ids: np.ndarray, words: list[Word]
) -> np.ndarray:
    """For each token, the index of the first word its characters overlap, else -1.

    Tokens made only of whitespace (GPT's lone "Ġ", newlines) and special tokens get -1.
    """
    word_ids = np.full(len(offsets), -1, dtype=np.int64)
    if not words or not len(offsets):
        return word_ids
    offsets, segment_ids = np.asarray(offsets), np.asarray(segment_ids)
    real = ~np.asarray(special_mask, dtype=bool)
    word_segment = np.array([w.segment for w in words])
    for segment in np.unique(word_segment):
        # A segment's words are in text order and do not overlap, so their ends increase:
        # a token's first overlapping word is the first whose end lies past the token's start.
        index = np.flatnonzero(word_segment == segment)
        starts = np.array([words[i].start for i in index])
        ends = np.array([words[i].end for i in index])
        tokens = np.flatnonzero(real & (segment_ids == segment))
        first = np.searchsorted(ends, offsets[tokens, 0], side="right")
        inside = first < len(index)
        hit = inside.copy()
        hit[inside] = starts[first[inside]] < offsets[tokens[inside], 1]
        word_ids[tokens[hit]] = index[first[hit]]
    return word_ids


def pool_words(record: Analysis, pooling: Pooling = "mean", layers: np.ndarray | None = None):
    """Word vectors from sub-word vectors: [layers, words, dim] and a mask of words present.

    A word has no tokens when truncation cut it off; its row is NaN and its mask False.
    """
    states = record.hidden_states if layers is None else record.hidden_states[layers]
    out = np.full((states.shape[0], len(record.words), states.shape[-1]), np.nan, np.float32)
    present = np.zeros(len(record.words), dtype=bool)
    for w in range(len(record.words)):
        idx = word_token_indices(record, w)
        if idx.size == 0:
            continue
        present[w] = True
        if pooling == "first":
            out[:, w] = states[:, idx[0]]
        elif pooling == "last":
            out[:, w] = states[:, idx[-1]]
        elif pooling == "mean":
            out[:, w] = states[:, idx].mean(axis=1)
        else:
            raise ValueError(f"unknown pooling {pooling!r}: use first, mean or last")
    return out, present
