"""Attention views computed on the device: per-head statistics, mean over heads, rollout.

Each reads the record's "attn" layers where they live and sends back only what a view draws
([L, H] statistics, one layer's [T, T]), so a 30-layer model at 512 tokens moves kilobytes
instead of a gigabyte. The numpy definitions in `analysis.attention` are the reference the
tests compare with; the arithmetic here is the same, in float64.
"""

from __future__ import annotations

import numpy as np
import torch

from ..analysis.attention import STATISTICS, is_punctuation_token
from ..models import catalog as cat
from ..record import ATTN, Analysis
from .registry import register


def _f64(t: torch.Tensor) -> torch.Tensor:
    # MPS has no float64: fall back to the CPU there (rare, and still one layer at a time).
    return t.to("cpu", torch.float64) if t.device.type == "mps" else t.to(torch.float64)


def _layer_statistics(att: torch.Tensor, sep: torch.Tensor, punct: torch.Tensor) -> dict[str, torch.Tensor]:
    """[H, T, T] → {name: [H]}; the definitions of analysis.attention.head_statistics."""
    n = att.shape[-1]
    nan = torch.full(att.shape[:1], float("nan"), dtype=att.dtype, device=att.device)
    diagonal = lambda offset: torch.diagonal(att, offset=offset, dim1=-2, dim2=-1).mean(-1)  # noqa: E731
    return {
        "entropy": -torch.special.xlogy(att, att).sum(-1).mean(-1),  # 0·log 0 = 0
        "first": att[..., 0].mean(-1),
        "sep": att[..., sep].sum(-1).mean(-1) if bool(sep.any()) else nan,
        "self": diagonal(0),
        "prev": diagonal(-1) if n > 1 else nan,
        "next": diagonal(1) if n > 1 else nan,
        "punct": att[..., punct].sum(-1).mean(-1) if bool(punct.any()) else nan,
    }


def head_statistics(record: Analysis) -> dict[str, np.ndarray]:
    """{statistic: [L, H] float64} for every head, computed layer by layer on the device."""
    def compute():
        first = record.acts.tensor(ATTN, 0)
        device = _f64(first).device
        special = np.asarray(record.special_mask, dtype=bool)
        sep = special.copy()
        sep[0] = False
        punct = np.array([is_punctuation_token(t) for t in record.tokens]) & ~special
        sep_t, punct_t = (torch.as_tensor(m, device=device) for m in (sep, punct))
        per_layer = [_layer_statistics(_f64(a), sep_t, punct_t) for a in record.acts.layers(ATTN)]
        return {name: record.acts.to_numpy_exact(torch.stack([s[name] for s in per_layer]))
                for name in STATISTICS}

    return record.acts.memo("head_statistics", compute)


def mean_over_heads(record: Analysis, layer: int) -> np.ndarray:
    """[T, T] float32 (averaged in float64): one layer's attention averaged over its heads."""
    return record.acts.to_numpy(_f64(record.acts.tensor(ATTN, layer)).mean(0))


def _rollout_all(record: Analysis) -> torch.Tensor:
    """[L, T, T] float64 on the device (kept in the record: each layer's view reuses it)."""
    def compute():
        layers = [_f64(a).mean(0) for a in record.acts.layers(ATTN)]
        n = layers[0].shape[-1]
        eye = torch.eye(n, dtype=torch.float64, device=layers[0].device)
        rollout, out = eye, []
        for a in layers:
            a = 0.5 * a + 0.5 * eye
            sums = a.sum(-1, keepdim=True)
            a = torch.where(sums > 0, a / torch.where(sums > 0, sums, torch.ones_like(sums)), torch.zeros_like(a))
            rollout = a @ rollout
            out.append(rollout)
        return torch.stack(out)

    return record.acts.memo("rollout", compute)


def rollout(record: Analysis, layer: int) -> np.ndarray:
    """[T, T] float32 (computed in float64): attention rollout (Abnar & Zuidema 2020) up to
    `layer`; see analysis.attention.attention_rollout for the definition."""
    return record.acts.to_numpy(_rollout_all(record)[layer])


register("attention-maps", "Attention maps", "every head's attention (bertviz head and model views, one head's map)",
         [cat.ATTENTIONS], lambda record, layer, head: record.attention(layer, head))
register("head-statistics", "Head statistics", "per head: entropy, attention to the first token, [SEP], itself, "
         "its neighbours and punctuation", [cat.ATTENTIONS], head_statistics)
register("rollout", "Attention rollout", "attention multiplied through the layers, with the residual stream",
         [cat.ATTENTIONS], rollout)
