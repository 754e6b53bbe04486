"""The logit lens: the model's own output head on every layer's hidden state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..analysis.masking import MASK_PLACEHOLDER
from ..backends.hf import LoadedModel
from ..errors import InputError
from ..models import catalog as cat
from ..record import RESID, Analysis
from .common import display_ids, require
from .fill_mask import require_mlm
from .registry import need, register


@dataclass(frozen=True)
class LogitLens:
    """The output head applied to every layer's hidden state (layer 0 = embeddings).

    For each position and layer: that layer's own top token, and the rank (1 = top) and
    probability of the final layer's top token, which shows when the answer "appears".
    """

    positions: np.ndarray  # [P] token indices into the record
    position_tokens: tuple[str, ...]  # the input token at each position
    final_ids: np.ndarray  # [P] the last layer's top prediction
    final_tokens: tuple[str, ...]
    final_rank: np.ndarray  # [P, L+1] int, 1 = top
    final_prob: np.ndarray  # [P, L+1] float32
    top_ids: np.ndarray  # [P, L+1] int
    top_tokens: tuple[tuple[str, ...], ...]  # [P][L+1]
    top_prob: np.ndarray  # [P, L+1] float32

    @property
    def n_layers(self) -> int:
        return self.final_rank.shape[1] - 1


def _lens(lm: LoadedModel, record: Analysis, positions: np.ndarray) -> LogitLens:
    """The model's own head (`lm.unembed`) on every layer's hidden state at `positions`.

    One layer at a time on the device, keeping only tops and ranks: [P, layers, V] at once
    would take gigabytes for a 30-layer model with a 49k vocabulary. The hidden states never
    leave the device; only [P] tops and ranks per layer cross to the CPU.
    """
    positions = np.asarray(positions, dtype=np.int64)
    hidden = [h[torch.as_tensor(positions, device=h.device)] for h in record.acts.layers(RESID)]

    def logits_at(layer: int) -> torch.Tensor:
        with torch.inference_mode():
            return lm.unembed(hidden[layer].to(lm.dtype), layer).float()

    n_layers = len(hidden)
    final = logits_at(n_layers - 1).argmax(-1)  # [P]
    rank = np.zeros((len(positions), n_layers), dtype=np.int64)
    final_prob, top_prob = (np.zeros((len(positions), n_layers), dtype=np.float32) for _ in range(2))
    top_ids = np.zeros((len(positions), n_layers), dtype=np.int64)
    for layer in range(n_layers):
        logits = logits_at(layer)
        probs = torch.softmax(logits, -1)
        final_logit = logits.gather(1, final[:, None])
        rank[:, layer] = ((logits > final_logit).sum(-1) + 1).cpu().numpy()
        final_prob[:, layer] = probs.gather(1, final[:, None])[:, 0].cpu().numpy()
        top_prob[:, layer], top_ids[:, layer] = (t.cpu().numpy() for t in probs.max(-1))
    return LogitLens(
        positions=positions,
        position_tokens=tuple(record.tokens[p] for p in positions),
        final_ids=final.cpu().numpy(),
        final_tokens=display_ids(lm, final.tolist()),
        final_rank=rank,
        final_prob=final_prob,
        top_ids=top_ids,
        top_tokens=tuple(display_ids(lm, row) for row in top_ids),
        top_prob=top_prob,
    )


def mlm_logit_lens(lm: LoadedModel, record: Analysis, positions: Sequence[int] | None = None) -> LogitLens:
    """The MLM head on every layer at the mask positions (or `positions`).

    BERT-style encoders have no final layer norm outside the head, so the last layer's lens
    equals the model's own prediction.
    """
    require_mlm(lm)
    positions = record.head.positions if positions is None else np.asarray(positions)
    if positions is None or len(positions) == 0:
        raise InputError(f"The text has no mask: add {MASK_PLACEHOLDER} to see the logit lens.")
    return _lens(lm, record, positions)


def causal_logit_lens(lm: LoadedModel, record: Analysis, positions: Sequence[int] | None = None) -> LogitLens:
    """Final norm + LM head on every layer's hidden state, at every position (or `positions`).

    Hugging Face returns the last hidden state after the final norm, so the norm is applied
    to the earlier layers only; the last layer's lens is then the model's own prediction.
    """
    require(lm, cat.NEXT_TOKEN)
    positions = np.arange(record.n_tokens) if positions is None else np.asarray(positions)
    return _lens(lm, record, positions)


def logit_lens(lm: LoadedModel, record: Analysis, positions: Sequence[int] | None = None) -> LogitLens:
    """The lens of whichever output head the model has: the MLM head or the causal LM head."""
    return (mlm_logit_lens if lm.spec.can(cat.MLM) else causal_logit_lens)(lm, record, positions)


register("logit-lens", "Logit lens", "the model's own output head applied to every layer's hidden state",
         [need(cat.MLM, cat.NEXT_TOKEN)], logit_lens)
