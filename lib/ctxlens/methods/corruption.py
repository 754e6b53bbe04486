"""BERT's pre-training corruption (80 % [MASK], 10 % random, 10 % kept), drawn with a seed,
and what a model with an MLM head predicts at the chosen positions."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..backends.hf import LoadedModel
from ..errors import CapabilityMissing, InputError
from ..models import catalog as cat
from ..validate import clean_text
from .common import Filler, display_ids, top_fillers, vocab_logits
from .registry import register

MASK, RANDOM, KEEP = "mask", "random", "keep"


@dataclass(frozen=True)
class CorruptedToken:
    position: int  # token index (special tokens included)
    action: str  # MASK (80%), RANDOM (10%) or KEEP (10%)
    original_id: int
    original: str
    shown_id: int  # what the model reads at this position
    shown: str
    predictions: tuple[Filler, ...] | None = None  # the model's top fillers, when it has a head
    recovered: bool | None = None  # its top filler is the original token


@dataclass(frozen=True)
class Corruption:
    """One draw of BERT's pre-training corruption; the loss is computed at `positions` only."""

    text: str
    seed: int
    rate: float
    original_ids: np.ndarray
    original_tokens: tuple[str, ...]
    corrupted_ids: np.ndarray
    corrupted_tokens: tuple[str, ...]
    items: tuple[CorruptedToken, ...]

    @property
    def positions(self) -> np.ndarray:
        return np.array([c.position for c in self.items], dtype=np.int64)


@lru_cache(maxsize=8)
def _replacement_ids(tokenizer) -> np.ndarray:
    return np.setdiff1d(np.arange(len(tokenizer)), tokenizer.all_special_ids)


def corruption_demo(lm_or_tokenizer, text: str, seed: int, rate: float = 0.15, top_k: int = 5) -> Corruption:
    """BERT's recipe: choose round(rate × n) of the n non-special tokens (at least one) with a
    seeded numpy Generator; each chosen token becomes [MASK] with p 0.8, a random
    non-special vocabulary token with p 0.1, or stays as it is with p 0.1. The model must
    predict the original at every chosen position, changed or not, so it cannot learn
    to trust only the [MASK]s. With a model that has an MLM head, its predictions are added.
    """
    lm = lm_or_tokenizer if isinstance(lm_or_tokenizer, LoadedModel) else None
    tok = lm.tokenizer if lm else lm_or_tokenizer
    if tok.mask_token_id is None:
        raise CapabilityMissing("This tokenizer has no mask token: the recipe is for BERT-style models.")
    if not 0 < rate <= 1:
        raise InputError(f"The corruption rate must be in (0, 1] (got {rate}).")
    text = clean_text(text)
    limit = lm.max_tokens if lm else min(int(getattr(tok, "model_max_length", 512)), 512)
    enc = tok(text, truncation=True, max_length=limit, return_special_tokens_mask=True)
    original = np.array(enc["input_ids"], dtype=np.int64)
    candidates = np.flatnonzero(~np.array(enc["special_tokens_mask"], dtype=bool))
    if candidates.size == 0:
        raise InputError("The text has no tokens to corrupt.")
    rng = np.random.default_rng(seed)
    n = max(1, min(candidates.size, round(rate * candidates.size)))
    chosen = np.sort(rng.choice(candidates, size=n, replace=False))
    corrupted, actions = original.copy(), []
    replacement_ids = _replacement_ids(tok)
    for pos in chosen:
        u = rng.random()
        action = MASK if u < 0.8 else RANDOM if u < 0.9 else KEEP
        if action == MASK:
            corrupted[pos] = tok.mask_token_id
        elif action == RANDOM:
            corrupted[pos] = rng.choice(replacement_ids)
        actions.append(action)
    predictions = _corruption_predictions(lm, corrupted, chosen, top_k)
    orig_tokens, shown_tokens = display_ids(tok, original), display_ids(tok, corrupted)
    items = tuple(
        CorruptedToken(
            int(p), a, int(original[p]), orig_tokens[p], int(corrupted[p]), shown_tokens[p],
            predictions[i] if predictions else None,
            predictions[i][0].token_ids[0] == int(original[p]) if predictions else None,
        )
        for i, (p, a) in enumerate(zip(chosen, actions))
    )
    return Corruption(text, seed, rate, original, orig_tokens, corrupted, shown_tokens, items)


def _corruption_predictions(lm, corrupted: np.ndarray, positions: np.ndarray, top_k: int):
    if lm is None or not lm.spec.can(cat.MLM):
        return None
    logits = vocab_logits(lm, torch.from_numpy(corrupted)[None])[0, positions].cpu()
    return [top_fillers(lm, torch.softmax(row, -1), top_k) for row in logits]


register("corruption", "BERT's 80/10/10 corruption", "one seeded draw of the pre-training corruption, and what an "
         "MLM head predicts at the chosen positions", [cat.MASK_INPUT], corruption_demo, seed=0, rate=0.15, top_k=5)
