"""Permutation language modelling (XLNet): who may see whom under a factorisation order.

An order z lists the n positions of a sentence once each; position z_t is predicted from the
positions before it in the order, z_<t, wherever they stand in the sentence. XLNet runs two
streams over the same weights: the content stream h_i sees z_<=t (itself included: it carries
its own token to the positions after it), the query stream g_i sees z_<t only (it predicts
its own token, so it must not see it). BERT's encoder lets every position see every other;
GPT's decoder lets position i see j <= i (the order 0, 1, …, n−1).

Masks are [n, n] booleans, row i = the position that looks, column j = the one looked at.
transformers' XLNet takes the opposite sense: `perm_mask[b, i, j] = 1` means i may NOT attend
to j (modeling_xlnet.py adds the diagonal back for the content stream), and
`target_mapping[b, k, j] = 1` means the k-th prediction is at position j.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ..errors import InputError

_INT = re.compile(r"[+-]?\d+")
_NUMBERS_ONLY = re.compile(r"[\s,+\-\d]+")
_PIECE_MARKS = "▁␣Ġ "  # SentencePiece / display / byte-level BPE word starts


def check_order(order: Sequence[int], n: int) -> tuple[int, ...]:
    """`order` as a tuple, or InputError saying how it fails to be a permutation of 0..n-1."""
    if n < 1:
        raise InputError("The sentence has no tokens to put in an order.")
    order = tuple(int(p) for p in order)
    if not order:
        raise InputError(f"The order is empty: list the positions 0–{n - 1} in the order they are predicted.")
    outside = [p for p in order if not 0 <= p < n]
    if outside:
        raise InputError(f"Position {outside[0]} is out of range: the sentence has {n} tokens, numbered 0–{n - 1}.")
    repeated = sorted({p for p in order if order.count(p) > 1})
    if repeated:
        raise InputError(f"Position {_listed(repeated)} appears more than once: a factorisation order lists "
                         "each position exactly once.")
    missing = sorted(set(range(n)) - set(order))
    if missing:
        raise InputError(f"The order leaves out position {_listed(missing)}: a factorisation order lists every "
                         f"one of the {n} positions once.")
    return order


def parse_order(text: str, tokens: Sequence[str]) -> tuple[int, ...]:
    """An order typed as positions ("3 0 2 1" or "3, 0, 2, 1") or as the tokens themselves
    ("mat The on sat"): a number is a position; a repeated word means its occurrences from
    left to right. InputError with the reason when it is not a permutation of the tokens."""
    text = (text or "").strip()
    n = len(tokens)
    if not text:
        check_order((), n)
    if _NUMBERS_ONLY.fullmatch(text):
        items = [s for s in re.split(r"[\s,]+", text) if s]
    else:
        items = text.split()
    order, used = [], set()
    for item in items:
        if _INT.fullmatch(item):
            order.append(int(item))
        else:
            order.append(_word_position(item, tokens, used))
            used.add(order[-1])
    return check_order(order, n)


def _word_position(word: str, tokens: Sequence[str], used: set[int]) -> int:
    """The first occurrence of `word` among `tokens` not used yet (exact, else ignoring case)."""
    bare, wanted = [_bare(t) for t in tokens], _bare(word)
    exact = [i for i, t in enumerate(bare) if t == wanted]
    loose = [i for i, t in enumerate(bare) if t.casefold() == wanted.casefold()]
    free = [i for i in exact + loose if i not in used]
    if free:
        return free[0]
    if loose:
        raise InputError(f"'{word}' comes {len(loose)} time(s) in the sentence but more often in the order: "
                         "a factorisation order lists each position exactly once.")
    shown = ", ".join(f"{i}:{t}" for i, t in enumerate(bare))
    raise InputError(f"'{word}' is not a token of the sentence. Type positions, or tokens as the model splits "
                     f"the sentence: {shown}.")


def _bare(token: str) -> str:
    return token.lstrip(_PIECE_MARKS) or token


def _listed(positions: Sequence[int]) -> str:
    return ", ".join(map(str, positions))


def shuffled_order(n: int, seed: int) -> tuple[int, ...]:
    """A random factorisation order of n positions, the same for the same seed on any machine."""
    if n < 1:
        raise InputError("The sentence has no tokens to shuffle.")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"The seed must be a whole number ≥ 0 (got {seed!r}).")
    return tuple(int(p) for p in np.random.default_rng(int(seed)).permutation(n))


def left_to_right(n: int) -> tuple[int, ...]:
    return tuple(range(n))


def ranks(order: Sequence[int]) -> np.ndarray:
    """rank[p] = t: position p is the t-th of the order (from 0)."""
    order = check_order(order, len(order))
    rank = np.empty(len(order), dtype=np.int64)
    rank[list(order)] = np.arange(len(order))
    return rank


def content_mask(order: Sequence[int]) -> np.ndarray:
    """[n, n]: h_i sees j iff j comes at or before i in the order (itself included)."""
    rank = ranks(order)
    return rank[None, :] <= rank[:, None]


def query_mask(order: Sequence[int]) -> np.ndarray:
    """[n, n]: g_i sees j iff j comes strictly before i in the order (never itself)."""
    rank = ranks(order)
    return rank[None, :] < rank[:, None]


def bert_mask(n: int) -> np.ndarray:
    """[n, n]: every position sees every position."""
    return np.ones((n, n), dtype=bool)


def gpt_mask(n: int) -> np.ndarray:
    """[n, n]: position i sees j iff j <= i (left to right)."""
    return np.tril(np.ones((n, n), dtype=bool))


def visible_before(order: Sequence[int], target: int) -> tuple[int, ...]:
    """The positions the target is predicted from (z_<t), in the order they come."""
    order = check_order(order, len(order))
    if target not in order:
        raise InputError(f"Position {target} is out of range: the sentence has {len(order)} tokens.")
    return order[: order.index(target)]


def xlnet_perm_mask(order: Sequence[int], length: int | None = None,
                    positions: Sequence[int] | None = None) -> np.ndarray:
    """transformers' `perm_mask` [1, length, length] (float32, 1 = may NOT attend) for `order`.

    `positions[k]`: where the order's k-th token stands in the model's input (default k);
    the other positions (XLNet's <sep> <cls>, which carry no word) are context every position
    may see, and they see only each other, so no word leaks through them."""
    n = len(order)
    positions = list(range(n)) if positions is None else [int(p) for p in positions]
    length = n if length is None else int(length)
    if len(positions) != n or len(set(positions)) != n or not all(0 <= p < length for p in positions):
        raise ValueError(f"positions {positions} must be {n} distinct indices below {length}")
    blocked = np.zeros((length, length), dtype=np.float32)
    others = np.setdiff1d(np.arange(length), positions)
    blocked[np.ix_(others, positions)] = 1.0
    blocked[np.ix_(positions, positions)] = ~query_mask(order)
    return blocked[None]


def xlnet_target_mapping(position: int, length: int) -> np.ndarray:
    """transformers' `target_mapping` [1, 1, length] (float32): one prediction, at `position`."""
    if not 0 <= position < length:
        raise ValueError(f"target position {position} is outside 0..{length - 1}")
    mapping = np.zeros((1, 1, length), dtype=np.float32)
    mapping[0, 0, position] = 1.0
    return mapping


def reference_orders(n: int, target: int) -> dict[str, tuple[int, ...]]:
    """Orders that put `target` first (it sees no word), in reading order (it sees the words to
    its left, as GPT does), and last (it sees every other word, as BERT's [MASK] does)."""
    if not 0 <= target < n:
        raise InputError(f"Position {target} is out of range: the sentence has {n} tokens.")
    others = tuple(p for p in range(n) if p != target)
    return {"target first": (target, *others), "left to right": left_to_right(n), "target last": (*others, target)}
