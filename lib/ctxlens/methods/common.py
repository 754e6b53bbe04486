"""What the prediction methods share: the capability check, candidates (Filler) and their
display, and a full-vocabulary forward for inputs a method builds itself (beam search,
corrupted ids, prompt + answer)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..analysis.tokens import display_tokens
from ..backends.hf import LoadedModel
from ..errors import CapabilityMissing, InputError
from ..models import catalog as cat
from .registry import who_has


def require(lm: LoadedModel, capability: str) -> None:
    """CapabilityMissing naming the catalog models that have `capability`, unless lm has it."""
    if not lm.spec.can(capability):
        raise CapabilityMissing(f"'{lm.spec.key}' has no trained head for {cat.CAPABILITY_LABELS[capability]}. "
                                + who_has([capability]))


@dataclass(frozen=True)
class Filler:
    """One candidate: a token (or a whole word of several pieces) and its probability."""

    text: str  # display form: "##ing" / "␣Paris" for single tokens, plain text for words
    token_ids: tuple[int, ...]
    prob: float


def display_ids(lm_or_tok, ids: Sequence[int]) -> tuple[str, ...]:
    tok = getattr(lm_or_tok, "tokenizer", lm_or_tok)
    ids = [int(i) for i in ids]
    raw = tok.convert_ids_to_tokens(ids)
    special = np.isin(ids, tok.all_special_ids)
    return display_tokens([r if r is not None else "" for r in raw], tok, special)


def top_fillers(lm: LoadedModel, probs: torch.Tensor, top_k: int) -> tuple[Filler, ...]:
    top = probs.topk(min(top_k, probs.shape[-1]))
    ids = top.indices.tolist()
    names = display_ids(lm, ids)
    return tuple(Filler(n, (i,), float(p)) for n, i, p in zip(names, ids, top.values.tolist()))


def check_top_k(top_k: int) -> None:
    if not isinstance(top_k, int) or top_k < 1:
        raise InputError(f"top_k must be a positive whole number (got {top_k!r}).")


def model_inputs(lm: LoadedModel, ids: torch.Tensor, segments: np.ndarray | None = None) -> dict:
    """Keyword inputs for a batch of unpadded id rows [B, T] of equal length."""
    inputs = {"input_ids": ids.to(lm.device), "attention_mask": torch.ones_like(ids).to(lm.device)}
    if "token_type_ids" in getattr(lm.tokenizer, "model_input_names", ()):
        types = torch.zeros_like(ids) if segments is None else torch.as_tensor(segments).expand_as(ids)
        inputs["token_type_ids"] = types.to(lm.device)
    return inputs


def vocab_logits(lm: LoadedModel, ids: torch.Tensor, segments: np.ndarray | None = None) -> torch.Tensor:
    """Full-vocabulary logits [B, T, V] (float32) from the model's LM head."""
    with torch.inference_mode():
        out = lm.model(**model_inputs(lm, ids, segments), return_dict=True)
    logits = getattr(out, "prediction_logits", None)
    return (out.logits if logits is None else logits).float()
