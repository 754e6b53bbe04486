"""The cross-check: one prediction, six answers to "which words mattered", side by side.

Attention-based: the last layer's attention from the token the head reads (mean over heads),
and attention rollout to that layer. Gradient-based: integrated gradients and gradient ×
input. Perturbation-based: word occlusion, and head ablation (each head's attention from the
read token, weighted by how much knocking that head out lowers the target). Every method
gives one number per word; Spearman's rank correlation (of magnitudes) between every pair
says how far they agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..analysis.importance import rank_agreement, sum_to_words
from ..models import catalog as cat
from ..record import ATTN
from . import attention as attention_methods
from .ablation import HeadImportance, head_importance
from .attribution import (
    DEFAULT_STEPS, GRAD_X_INPUT, IG, OCCLUSION, Attribution, Subject, gradient_x_input, integrated_gradients,
    occlusion,
)
from .registry import check, register
from .targets import EXPLAINABLE, Target

LAST_ATTENTION, ROLLOUT, HEAD_ABLATION = "last-layer attention", "attention rollout", "head ablation × attention"
LABELS = {IG: "integrated gradients", GRAD_X_INPUT: "gradient × input", OCCLUSION: "word occlusion"}
CAVEAT = (
    "Attention weights say where a head reads from, not what made the prediction: different "
    "attention can give the same prediction (Jain & Wallace 2019, 'Attention is not Explanation'). "
    "Whether attention explains depends on what an explanation must do, which is why it is checked "
    "here against methods that change the input or the model (Wiegreffe & Pinter 2019, "
    "'Attention is not not Explanation')."
)


@dataclass(frozen=True)
class CrossCheck:
    target: Target
    words: tuple[str, ...]
    importances: pd.DataFrame  # one row per word, one column per method
    agreement: pd.DataFrame  # Spearman rank correlation, methods × methods
    attributions: dict[str, Attribution]
    heads: HeadImportance


def cross_check(lm, subj: Subject, target: Target, baseline: str | None = None,
                steps: int = DEFAULT_STEPS) -> CrossCheck:
    check("cross-check", lm.spec)
    record = subj.record
    ig = integrated_gradients(lm, subj, target, baseline, steps)
    words = ig.word_index
    reads = target.reads_from
    last = record.n_layers - 1
    heads = head_importance(lm, subj, target)
    scores = {
        LAST_ATTENTION: sum_to_words(attention_methods.mean_over_heads(record, last)[reads], record.word_ids, words),
        ROLLOUT: sum_to_words(attention_methods.rollout(record, last)[reads], record.word_ids, words),
        LABELS[IG]: ig.word_scores,
        LABELS[GRAD_X_INPUT]: gradient_x_input(lm, subj, target).word_scores,
        LABELS[OCCLUSION]: occlusion(lm, subj, target).word_scores,
        HEAD_ABLATION: sum_to_words(ablation_weighted_attention(record, heads.change, reads), record.word_ids, words),
    }
    table = pd.DataFrame(scores, index=pd.Index(ig.words, name="word"))
    return CrossCheck(target, ig.words, table, rank_agreement(scores), {IG: ig}, heads)


def ablation_weighted_attention(record, change: np.ndarray, reads: int) -> np.ndarray:
    """[T]: Σ over heads of (−change) × that head's attention from `reads`: attention counted
    as much as knocking its head out lowers the target (negative for heads that work against it)."""
    weights = -np.asarray(change, dtype=np.float64)  # [L, H]
    rows = np.stack([record.acts.numpy(ATTN, layer, index=(slice(None), reads)) for layer in range(record.n_layers)])
    return np.einsum("lh,lht->t", weights, rows.astype(np.float64))


register("cross-check", "Cross-check", "six word-importance methods side by side and how far they agree",
         [cat.ATTENTIONS, EXPLAINABLE], cross_check, baseline=None, steps=DEFAULT_STEPS)
