"""ELMo's scalar mix: one vector per token from a weighted sum of all layers.

γ · Σ_j softmax(s)_j · h_j (Peters et al. 2018, eq. 1). It works on any record's
hidden_states ([layers + 1, tokens, dim]), so BERT and GPT layers can be mixed the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class MixFit:
    """What a probe on the scalar mix of all layers learned."""

    weights: np.ndarray  # [L] softmax(s): the share of each layer in the mix
    gamma: float
    accuracy: float  # on the held-out words


def fit_scalar_mix(layers: np.ndarray, labels: Sequence[str], train: np.ndarray, test: np.ndarray, *,
                   steps: int = 300, lr: float = 0.05, seed: int = 0) -> MixFit:
    """Learn ELMo's task weights: softmax(s) and γ mix the layers [L, N, D], and a linear
    softmax classifier reads the label off the mix; all trained together on the train words
    (full-batch Adam). Each layer is standardised first (on the train words), so a weight says
    how useful a layer is, not how large its vectors are (ELMo's character layer and its LSTM
    layers differ in scale; AllenNLP's ScalarMix can layer-normalise for the same reason)."""
    import torch

    classes, y = np.unique(np.asarray(labels), return_inverse=True)
    x = np.asarray(layers, np.float32)
    mean, std = x[:, train].mean(axis=1, keepdims=True), x[:, train].std(axis=1, keepdims=True)
    x = (x - mean) / np.maximum(std, 1e-6)
    x_train, x_test = torch.as_tensor(x[:, train]), torch.as_tensor(x[:, test])  # indexed once, not per step
    y = torch.as_tensor(y)
    generator = torch.Generator().manual_seed(seed)
    s = torch.zeros(x.shape[0], requires_grad=True)
    gamma = torch.ones((), requires_grad=True)
    classifier = torch.nn.Linear(x.shape[-1], len(classes))
    with torch.no_grad():  # seeded, so a fit is reproducible
        classifier.weight.copy_(torch.randn(classifier.weight.shape, generator=generator) * 0.01)
        classifier.bias.zero_()
    optimiser = torch.optim.Adam([s, gamma, *classifier.parameters()], lr=lr, weight_decay=1e-4)

    def logits(words: torch.Tensor) -> torch.Tensor:
        return classifier(gamma * torch.einsum("l,lnd->nd", torch.softmax(s, 0), words))

    with torch.enable_grad():
        for _ in range(steps):
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(logits(x_train), y[train]).backward()
            optimiser.step()
    with torch.no_grad():
        accuracy = float((logits(x_test).argmax(-1) == y[test]).float().mean())
        return MixFit(torch.softmax(s, 0).numpy().astype(np.float64), float(gamma), accuracy)
