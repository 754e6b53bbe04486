"""One attention implementation for every Hugging Face family that also hands out q and k.

Transformers 5 routes every attention layer through a registry of attention functions
(`AttentionInterface`). We register "ctxlens_eager": it calls the model's own eager attention
(so the numbers are exactly eager's) and, when the calling thread asked for them, keeps the
queries and keys the attention scored: after the rotary step, before grouped keys are repeated.
That gives the neuron view every family at once (Llama-style included) with no per-module
hooks, and a thread-local store keeps concurrent sessions on one shared model apart.
The same function knocks heads out for ablation: their slice of the attention output, before
the output projection, is multiplied by a per-row 0/1 mask.
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager

import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask

ATTN_IMPLEMENTATION = "ctxlens_eager"
_local = threading.local()


def _attention(module, query, key, value, attention_mask, **kwargs):
    eager = sys.modules[type(module).__module__].eager_attention_forward
    output, weights = eager(module, query, key, value, attention_mask, **kwargs)
    keep = getattr(_local, "keep_heads", None)
    if keep is not None:  # [B, L, H]; layers are called in order, so the i-th call is layer i
        layer = _local.layer
        _local.layer += 1
        output = output * keep[:, layer, :, None].to(output)[:, None]  # output: [B, T, H, d]
    store = getattr(_local, "store", None)
    if store is not None:
        scaling = kwargs.get("scaling")
        store.append((query, key, query.shape[-1] ** -0.5 if scaling is None else float(scaling)))
    return output, weights


AttentionInterface.register(ATTN_IMPLEMENTATION, _attention)
AttentionMaskInterface.register(ATTN_IMPLEMENTATION, eager_mask)  # the same 4-D masks as eager


@contextmanager
def capturing_queries_keys():
    """Yields a list that fills, in layer order, with (queries [B, H, T, d], keys [B, H, T, d],
    scaling) for each attention call this thread makes inside the block."""
    store: list = []
    _local.store = store
    try:
        yield store
    finally:
        _local.store = None


@contextmanager
def keeping_heads(keep: torch.Tensor, first_layer: int = 0):
    """Inside the block, this thread's forward keeps head h of layer l in batch row b only where
    keep[b, l, h] is 1 (0 zeroes its output). first_layer: the first layer whose attention
    runs (the ones before are replayed, see architectures.ablating)."""
    _local.keep_heads, _local.layer = keep, first_layer
    try:
        yield
    finally:
        _local.keep_heads = None


def repeat_groups(keys: torch.Tensor, n_heads: int) -> torch.Tensor:
    """[B, H_kv, T, d] → [B, H, T, d]: each key head serves H / H_kv query heads in turn."""
    groups = n_heads // keys.shape[1]
    return keys if groups == 1 else keys.repeat_interleave(groups, dim=1)
