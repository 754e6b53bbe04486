"""What differs between Hugging Face architectures, one row per `config.model_type`.

Everything else (the forward, hidden states, attention, queries and keys through
`capture.py`) is the same code for every architecture. A row says where the final norm and the
MLM head live (for the logit lens) and how far the position table is offset. A model type
with no row still runs every view that needs only the forward; the logit lens then names
the missing row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Architecture:
    final_norm: str | None = None  # path from the full model to the norm after the last layer
    mlm_head: str | None = None  # path from the full model to the MLM head (hidden → logits)
    # Rows of the position table never used: RoBERTa's ids start after padding_idx.
    position_offset_from_pad: bool = False


_BERT = Architecture(mlm_head="cls.predictions")
_ROBERTA = Architecture(mlm_head="lm_head", position_offset_from_pad=True)
_LLAMA = Architecture(final_norm="model.norm")

ARCHITECTURES: dict[str, Architecture] = {
    "bert": _BERT,
    "electra": Architecture(mlm_head="generator_predictions"),
    "roberta": _ROBERTA,
    "xlm-roberta": _ROBERTA,
    "camembert": _ROBERTA,
    "distilbert": Architecture(mlm_head="vocab_projector"),  # see mlm_head(): three modules before it
    "gpt2": Architecture(final_norm="transformer.ln_f"),
    "gpt_neox": Architecture(final_norm="gpt_neox.final_layer_norm"),
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
}


def architecture(config) -> Architecture | None:
    return ARCHITECTURES.get(getattr(config, "model_type", ""))


def module_at(model: torch.nn.Module, path: str | None):
    module = model
    for part in (path or "").split("."):
        module = getattr(module, part, None) if part else None
    return module


def final_norm(model) -> torch.nn.Module | None:
    row = architecture(model.config)
    return module_at(model, row.final_norm) if row and row.final_norm else None


def mlm_head(model):
    """The MLM head as a function hidden → logits, through its own transform and norm."""
    row = architecture(model.config)
    if row is None or row.mlm_head is None:
        return None
    if getattr(model.config, "model_type", "") == "distilbert":
        m = model
        if not hasattr(m, "vocab_projector"):
            return None
        return lambda h: m.vocab_projector(m.vocab_layer_norm(m.activation(m.vocab_transform(h))))
    return module_at(model, row.mlm_head)


def position_offset(config) -> int:
    row = architecture(config)
    if row is not None and row.position_offset_from_pad:
        return (getattr(config, "pad_token_id", 1) or 1) + 1
    return 0
