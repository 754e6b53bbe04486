"""Knock parts of the model out and watch the prediction: one head, every head of a layer, a
layer's MLP; and the importance of every head for one target, by ablation.

A knocked-out head's output (its slice of the attention output, before the output projection)
is zeroed; a knocked-out MLP adds nothing to the residual stream. Ablations run as rows of one
batch over copies of the same input (`LoadedModel.ablating` takes a mask per row), so the
heatmap of all L × H heads costs L × H / `ROWS_PER_BATCH` batched forwards, and each batch
skips the layers before its first knockout (they are replayed from one clean forward).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..backends import architectures as arch
from ..errors import InputError
from ..models import catalog as cat
from .attribution import Subject, _check_model, head_position
from .registry import check, register
from .common import display_ids
from .targets import EXPLAINABLE, NSP, QA_END, QA_SPAN, QA_START, TOKEN, Target, score

HEAD, LAYER_HEADS, MLP = "head", "layer-heads", "mlp"
ROWS_PER_BATCH = 24
TOP_K = 5


@dataclass(frozen=True)
class Knockout:
    kind: str  # HEAD | LAYER_HEADS | MLP
    layer: int
    head: int | None = None

    @property
    def label(self) -> str:
        return {HEAD: f"head {self.layer}.{self.head}", LAYER_HEADS: f"every head of layer {self.layer}",
                MLP: f"the MLP of layer {self.layer}"}[self.kind]


@dataclass(frozen=True)
class Ablated:
    knockout: Knockout
    target: Target
    value: float  # the target's number with the whole model
    ablated_value: float  # ... with the knockout
    top: tuple[tuple[str, float], ...]  # the head's top outputs at the target, whole model
    ablated_top: tuple[tuple[str, float], ...]

    @property
    def change(self) -> float:
        return self.ablated_value - self.value


@dataclass(frozen=True)
class HeadImportance:
    target: Target
    value: float  # the target's number with every head
    change: np.ndarray  # [L, H]: number with the head knocked out − with every head


def masks(lm, knockouts: list[Knockout]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, which heads [B, L, H] and MLPs [B, L] stay (1) or are knocked out (0)."""
    layers, heads = _shape(lm)
    keep_heads, keep_mlps = torch.ones(len(knockouts), layers, heads), torch.ones(len(knockouts), layers)
    for row, k in enumerate(knockouts):
        if not 0 <= k.layer < layers or (k.kind == HEAD and not 0 <= (k.head if k.head is not None else -1) < heads):
            raise InputError(f"{lm.spec.key} has layers 0–{layers - 1} and heads 0–{heads - 1}: no {k.label}.")
        if k.kind == HEAD:
            keep_heads[row, k.layer, k.head] = 0
        elif k.kind == LAYER_HEADS:
            keep_heads[row, k.layer] = 0
        elif k.kind == MLP:
            keep_mlps[row, k.layer] = 0
        else:
            raise InputError(f"Unknown knockout {k.kind!r}: use {HEAD}, {LAYER_HEADS} or {MLP}.")
    return keep_heads, keep_mlps


def ablated_values(lm, subj: Subject, target: Target, knockouts: list[Knockout],
                   replay: list | None = None) -> np.ndarray:
    """[len(knockouts)] the target's number with each knockout, in batches of one layer's
    knockouts, each replaying the layers before it (`replay`: the layer outputs with nothing
    knocked out; recorded here when not given)."""
    _check_model(lm)
    if replay is None:
        replay = whole_and_layers(lm, subj, target)[1]
    out = np.zeros(len(knockouts), np.float32)
    for rows in _batches(knockouts):
        out[rows] = _run(lm, subj, target, [knockouts[i] for i in rows], replay=replay)[0]
    return out


def whole_and_layers(lm, subj: Subject, target: Target) -> tuple[float, list | None]:
    """The target's number with nothing knocked out, and the layer outputs of that forward
    (None where the architecture table does not say where the layers are: then every batch
    computes every layer)."""
    with lm.recording_layers() as layers:
        whole = float(_run(lm, subj, target, [], whole=True)[0][0])
    return whole, (layers if arch.layer_modules(lm.model) is not None else None)


def _batches(knockouts: list[Knockout]) -> list[list[int]]:
    """Indices of the knockouts grouped by layer, at most `ROWS_PER_BATCH` per batch: a batch
    computes from its first knockout's layer on, so one layer per batch computes least."""
    by_layer: dict[int, list[int]] = {}
    for i, k in enumerate(knockouts):
        by_layer.setdefault(k.layer, []).append(i)
    return [rows[start:start + ROWS_PER_BATCH] for _, rows in sorted(by_layer.items())
            for start in range(0, len(rows), ROWS_PER_BATCH)]


def ablate(lm, subj: Subject, target: Target, knockout: Knockout) -> Ablated:
    """The prediction with and without `knockout` (one batch of two rows)."""
    check("ablation", lm.spec)
    _check_model(lm)
    values, tops = _run(lm, subj, target, [knockout], whole=True, tops=True)
    return Ablated(knockout, target, float(values[0]), float(values[1]), tops[0], tops[1])


def head_importance(lm, subj: Subject, target: Target) -> HeadImportance:
    """The change in the target's number when each head alone is knocked out: [L, H]."""
    check("head-importance", lm.spec)
    layers, heads = _shape(lm)
    knockouts = [Knockout(HEAD, layer, head) for layer in range(layers) for head in range(heads)]
    whole, replay = whole_and_layers(lm, subj, target)
    values = ablated_values(lm, subj, target, knockouts, replay)
    return HeadImportance(target, whole, (values - whole).reshape(layers, heads).astype(np.float32))


def _run(lm, subj: Subject, target: Target, knockouts: list[Knockout], whole: bool = False,
         replay: list | None = None, tops: bool = False):
    """(values [B], top outputs per row when `tops`, else None) of one batch, a row per
    knockout, after a first row that knocks nothing out when `whole`; `replay`: see
    `LoadedModel.ablating`. The heatmap reads values only: no vocabulary softmax per row."""
    keep_heads, keep_mlps = masks(lm, knockouts)
    if whole:
        keep_heads = torch.cat([torch.ones(1, *keep_heads.shape[1:]), keep_heads])
        keep_mlps = torch.cat([torch.ones(1, *keep_mlps.shape[1:]), keep_mlps])
    rows = len(keep_heads)
    inputs = {k: v.expand(rows, -1) for k, v in lm.batch_inputs([subj.enc]).items()}
    at, read = head_position(target)
    with torch.inference_mode(), lm.ablating(keep_heads, keep_mlps, replay):
        heads = lm.heads(inputs, at=at)
    values = score(heads, [read] * rows, [subj.enc.length] * rows).cpu().numpy()
    return values, [_top(lm, heads, r, read) for r in range(rows)] if tops else None


def _top(lm, heads: dict, row: int, target: Target) -> tuple[tuple[str, float], ...]:
    """The most probable outputs of the head the target reads: tokens or classes."""
    logits = heads[target.head][row].float()
    if target.kind == TOKEN:
        probs = torch.softmax(logits[target.position], -1)
        top = probs.topk(TOP_K)
        return tuple(zip(display_ids(lm, top.indices.tolist()), top.values.tolist()))
    if logits.dim() == 2 and target.position is not None:
        logits = logits[target.position]
    if logits.dim() != 1 or target.kind in (QA_START, QA_END, QA_SPAN):
        return ()
    probs = torch.softmax(logits, -1)
    names = getattr(lm.model.config, "id2label", {}) or {}
    labels = ["IsNext", "NotNext"] if target.kind == NSP else [str(names.get(i, i)) for i in range(len(probs))]
    return tuple(zip(labels, probs.tolist()))


def _shape(lm) -> tuple[int, int]:
    config = lm.model.config
    return config.num_hidden_layers, config.num_attention_heads


register("ablation", "Ablation", "the prediction with one head, a layer's heads or a layer's MLP knocked out",
         [cat.ATTENTIONS, EXPLAINABLE], ablate)
register("head-importance", "Head importance by ablation",
         "every head knocked out in turn: the change in the target's log-probability", [cat.ATTENTIONS, EXPLAINABLE],
         head_importance)
