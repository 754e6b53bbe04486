"""ELMo's scalar mix: one vector per token from a weighted sum of all layers.

γ · Σ_j softmax(s)_j · h_j (Peters et al. 2018, eq. 1). It works on any record's
hidden_states ([layers + 1, tokens, dim]), so BERT and GPT layers can be mixed the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def mix_weights(s: Sequence[float]) -> np.ndarray:
    """softmax(s), computed stably (a huge s_j must not overflow)."""
    s = np.asarray(s, dtype=np.float64)
    e = np.exp(s - s.max())
    return e / e.sum()


def scalar_mix(layers: np.ndarray, s: Sequence[float], gamma: float = 1.0) -> np.ndarray:
    """Mix `layers` [L, ...] over axis 0 with weights softmax(s), scaled by gamma."""
    layers = np.asarray(layers)
    if len(s) != layers.shape[0] or layers.shape[0] == 0:
        raise ValueError(f"scalar_mix needs one weight per layer: {len(s)} weights, "
                         f"{layers.shape[0]} layers")
    w = mix_weights(s)
    mixed = gamma * np.tensordot(w, layers.astype(np.float64), axes=(0, 0))
    return mixed.astype(layers.dtype if np.issubdtype(layers.dtype, np.floating) else np.float32)
