"""Per-head query and key vectors of a loaded Hugging Face model, for bertviz's neuron view.

Forward hooks on the attention projections catch their outputs during an ordinary forward
pass over the same input `models.hf.analyze` builds, so q·kᵀ/√d (plus the mask) softmaxed
reproduces the record's attention weights. Supported attention modules:

- BERT-family self-attention (BERT, RoBERTa, ELECTRA, ALBERT, …): `query` / `key` Linears;
- GPT-2: `c_attn`, whose output is q, k, v side by side;
- DistilBERT: `q_lin` / `k_lin`.

Llama-style models (SmolLM2, Qwen, …) are not supported: their attention rotates q and k by a
position-dependent rotary embedding after the projection (and repeats keys per query group),
so the projection outputs are not the vectors whose dot products give the attention.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from ..models.loading import LoadedModel


def _kind(module: torch.nn.Module) -> str | None:
    """Which projection layout an attention module has, or None if it is not one we read."""
    if getattr(module, "is_cross_attention", False):
        return None
    if hasattr(module, "query") and hasattr(module, "key") and hasattr(module, "attention_head_size"):
        kind = "bert"
    elif hasattr(module, "c_attn") and hasattr(module, "split_size") and hasattr(module, "head_dim"):
        kind = "gpt2"
    elif hasattr(module, "q_lin") and hasattr(module, "k_lin") and hasattr(module, "n_heads"):
        kind = "distilbert"
    else:
        return None
    # bertviz's page divides q·k by √d itself: any other scaling would not reproduce the weights.
    scaling = getattr(module, "scaling", None)
    if scaling is None or not np.isclose(scaling, _head_dim(module, kind) ** -0.5):
        return None
    return kind


def _head_dim(module, kind: str) -> int:
    return module.head_dim if kind == "gpt2" else module.attention_head_size


def _attention_modules(lm: LoadedModel) -> list[tuple[torch.nn.Module, str]]:
    found = []
    for module in lm.model.base_model.modules():
        kind = _kind(module)
        if kind:
            found.append((module, kind))
    return found


def supports_neuron_view(lm: LoadedModel) -> bool:
    """True when every attention layer is one whose queries and keys we can read."""
    n_layers = getattr(lm.model.config, "num_hidden_layers", None) or getattr(lm.model.config, "n_layer", None)
    modules = _attention_modules(lm)
    if not modules:
        return False
    # ALBERT shares one attention module across all layers; otherwise one module per layer.
    return len(modules) == n_layers or len(modules) == 1


def _heads(x: torch.Tensor, head_dim: int) -> torch.Tensor:
    """[1, T, H·d] projection output → [H, T, d]."""
    t = x.shape[1]
    return x[0].reshape(t, -1, head_dim).transpose(0, 1)


def query_key_vectors(lm: LoadedModel, text: str, text_pair: str | None = None):
    """Queries and keys, each [layers, heads, tokens, head_dim] float32, for analyze()'s input."""
    from ..models.hf import _encode, _forward

    if not supports_neuron_view(lm):
        raise ValueError(f"{lm.spec.key}: no neuron view for {type(lm.model).__name__} (see neurons.py)")
    queries, keys, hooks = [], [], []
    # The model is shared by every browser session: another thread's forward pass fires these
    # hooks too while they are registered, and must not add its vectors to ours.
    owner = threading.get_ident()

    def catch(store, head_dim, part=None, size=None):
        def hook(_module, _inputs, output):
            if threading.get_ident() != owner:
                return
            out = output if part is None else output[..., part * size:(part + 1) * size]
            store.append(_heads(out, head_dim).detach().float().cpu().numpy())
        return hook

    for module, kind in _attention_modules(lm):
        d = _head_dim(module, kind)
        if kind == "bert":
            hooks += [module.query.register_forward_hook(catch(queries, d)),
                      module.key.register_forward_hook(catch(keys, d))]
        elif kind == "distilbert":
            hooks += [module.q_lin.register_forward_hook(catch(queries, d)),
                      module.k_lin.register_forward_hook(catch(keys, d))]
        else:  # gpt2: one Conv1D gives q | k | v
            hooks += [module.c_attn.register_forward_hook(catch(queries, d, 0, module.split_size)),
                      module.c_attn.register_forward_hook(catch(keys, d, 1, module.split_size))]
    try:
        _forward(lm, [_encode(lm, text, text_pair, lm.max_tokens)], hidden_only=True)
    finally:
        for h in hooks:
            h.remove()
    return np.stack(queries), np.stack(keys)  # hooks fire in layer order (also for shared ALBERT)
