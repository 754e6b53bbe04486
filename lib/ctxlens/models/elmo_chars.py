"""ELMo's character ids, exactly as the original indexer (bilm-tf / AllenNLP) makes them.

A token is `max_chars` ids: begin-of-word, the token's UTF-8 bytes (truncated to
max_chars - 2 bytes, even mid-character, as the original does), end-of-word, then padding.
Every id is shifted by +1 so that 0 can mean "no token". The sentence boundary tokens
<S> and </S> are the single characters 256 and 257 framed the same way.
"""

from __future__ import annotations

import torch

MAX_CHARS = 50
BOS_CHAR, EOS_CHAR = 256, 257  # sentence start / end
BOW_CHAR, EOW_CHAR = 258, 259  # word start / end
PAD_CHAR = 260
BOS_TOKEN, EOS_TOKEN = "<S>", "</S>"


def _framed(ids: list[int], max_chars: int) -> list[int]:
    row = [PAD_CHAR] * max_chars
    row[0] = BOW_CHAR
    row[1 : len(ids) + 1] = ids
    row[len(ids) + 1] = EOW_CHAR
    return [c + 1 for c in row]  # +1: 0 is reserved for "no token"


def word_to_char_ids(word: str, max_chars: int = MAX_CHARS) -> list[int]:
    """The `max_chars` character ids of one token; "<S>" / "</S>" are the boundary tokens.

    The boundary strings are special only because the original indexer treats them so; the
    shared word segmentation never produces them (it splits "<", "S", ">").
    """
    if word == BOS_TOKEN:
        return _framed([BOS_CHAR], max_chars)
    if word == EOS_TOKEN:
        return _framed([EOS_CHAR], max_chars)
    return _framed(list(word.encode("utf-8", "ignore")[: max_chars - 2]), max_chars)


def words_to_char_tensor(words: list[str], max_chars: int = MAX_CHARS) -> torch.Tensor:
    """[len(words), max_chars] int64 character ids."""
    return torch.tensor([word_to_char_ids(w, max_chars) for w in words], dtype=torch.long)
