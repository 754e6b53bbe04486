"""Surprisal of a text under a causal LM, and the distribution a sampler draws from."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import CapabilityMissing, InputError
from ..record import Analysis


@dataclass(frozen=True)
class Surprisal:
    """How surprised the model is by each token: −log2 p(token | tokens before it)."""

    tokens: tuple[str, ...]
    bits: np.ndarray  # [T]; NaN for the first token, which has no context to be predicted from
    total_bits: float
    n_scored: int

    @property
    def mean_bits(self) -> float:
        return self.total_bits / self.n_scored if self.n_scored else float("nan")

    @property
    def perplexity(self) -> float:
        return 2.0**self.mean_bits


def surprisal(record: Analysis) -> Surprisal:
    if record.head.token_logprobs is None:
        raise CapabilityMissing("Surprisal needs a causal LM's next-token predictions.")
    bits = -record.head.token_logprobs.astype(np.float64) / math.log(2)
    scored = np.isfinite(bits)
    return Surprisal(record.tokens, bits, float(bits[scored].sum()), int(scored.sum()))


def sampling_probs(
    logits: torch.Tensor | np.ndarray, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> torch.Tensor:
    """The distribution the sampler draws from: temperature, then top-k, then top-p (nucleus:
    the fewest most probable tokens whose mass reaches top_p), renormalised. Temperature 0
    is greedy: all mass on the arg-max."""
    logits = torch.as_tensor(logits).float().cpu().flatten()
    if temperature < 0 or not 0 < top_p <= 1 or top_k < 0:
        raise InputError("Use temperature ≥ 0, top_k ≥ 0 (0 = off) and 0 < top_p ≤ 1.")
    if temperature == 0:
        out = torch.zeros_like(logits)
        out[logits.argmax()] = 1.0
        return out
    logits = logits / temperature
    if top_k:
        kth = logits.topk(min(top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p < 1:
        order = logits.argsort(descending=True)
        p = torch.softmax(logits[order], -1)
        drop = (p.cumsum(0) - p) >= top_p  # mass before this token already reached top_p
        logits[order[drop]] = -math.inf
    return torch.softmax(logits, -1)
