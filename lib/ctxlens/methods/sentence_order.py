"""Both orders of a sentence pair through the pre-training heads that judge pairs: BERT's
next-sentence prediction (NSP: is B the sentence that followed A, or a random one?) and
ALBERT's sentence-order prediction (SOP: are two consecutive segments in their order, or
swapped?). RoBERTa dropped the objective, so its checkpoints have neither head.

NSP's negatives were random sentences, usually from another document, so topic alone
solves most of them; SOP's negatives are the same two segments swapped, so only order
(coherence) can. Scoring A → B and B → A side by side shows the difference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

import numpy as np
import torch

from ..backends.hf import LoadedModel
from ..errors import CapabilityMissing
from ..models import catalog as cat
from ..validate import clean_text
from .common import display_ids
from .registry import method, need, register

NAME = "sentence-order"
TITLE = "Sentence order (NSP and SOP)"
ORDER_HEADS = (cat.NSP, cat.SOP)
# The output of each head, and what the probability of its class 0 means: BERT's
# seq_relationship class 0 is IsNext; ALBERT's sentence_order_label 0 is the original order.
HEAD_OUTPUT = {cat.NSP: "seq_relationship_logits", cat.SOP: "sop_logits"}
HEAD_QUESTION = {cat.NSP: "P(IsNext)", cat.SOP: "P(in order)"}
HEAD_NAME = {cat.NSP: "next-sentence (NSP)", cat.SOP: "sentence-order (SOP)"}
ROBERTA_NOTE = (
    "RoBERTa dropped BERT's next-sentence objective: Liu et al. (2019) found that training without "
    "it matched or slightly improved downstream results, so roberta-base has no such head (and "
    "sentence-embedding encoders such as all-MiniLM-L6-v2 ship without one too)."
)


@dataclass(frozen=True)
class OrderScore:
    """One head's verdict on both orders of the pair."""

    capability: str  # cat.NSP or cat.SOP
    question: str  # "P(IsNext)" or "P(in order)"
    forward: float  # the probability for A then B
    backward: float  # the same for B then A
    logits: np.ndarray  # [2 orders (A→B, B→A), 2 classes], float32


@dataclass(frozen=True)
class PairOrders:
    model_key: str
    first: str  # A
    second: str  # B
    scores: tuple[OrderScore, ...]  # one per head the model has
    tokens: tuple[tuple[str, ...], tuple[str, ...]]  # as read: [CLS] A [SEP] B [SEP], then B first
    segment_ids: tuple[np.ndarray, np.ndarray]  # 0 for the first sentence and its [SEP], 1 for the second
    truncated: bool  # a long pair was cut to fit (both orders are cut alike)


def order_heads(spec: cat.ModelSpec) -> tuple[str, ...]:
    """The pair-order heads (NSP, SOP) the model has trained weights for."""
    return tuple(c for c in ORDER_HEADS if spec.can(c))


def models_with(capability: str) -> list[str]:
    """The real catalog models with a trained `capability` head."""
    return [k for k, s in cat.CATALOG.items() if not s.test_model and s.can(capability)]


def no_order_head_message(spec: cat.ModelSpec) -> str:
    """Why `spec` cannot score sentence order, RoBERTa's story, and where the heads are."""
    claimed = cat.CATALOG.get(spec.key)
    lost = [c for c in ORDER_HEADS if claimed is not None and claimed.can(c) and not spec.can(c)]
    if lost:
        why = (f"{TITLE}: {spec.key} was pre-trained with a {HEAD_NAME[lost[0]]} head, but its checkpoint "
               "has no trained weights for it (they were missing when it loaded), so its output would be "
               "random and is not shown.")
    else:
        why = (f"{TITLE} needs a trained next-sentence (NSP) or sentence-order (SOP) head, which "
               f"{spec.key} ({spec.family.label}) does not have.")
    where = " ".join(f"{HEAD_NAME[c][0].upper()}{HEAD_NAME[c][1:]} heads: {', '.join(models_with(c)) or 'none'}."
                     for c in ORDER_HEADS)
    return f"{why} {ROBERTA_NOTE} {where}"


def sentence_order(lm: LoadedModel, first: str, second: str) -> PairOrders:
    """P(IsNext) (NSP) and/or P(in order) (SOP) for A → B and for B → A: one forward over both
    orders, each probability the head's softmax."""
    if method(NAME).missing(lm.spec) is not None:
        raise CapabilityMissing(no_order_head_message(lm.spec))
    first, second = clean_text(first, "sentence A"), clean_text(second, "sentence B")
    encoded = lm.encode([first, second], [second, first])
    with torch.inference_mode():
        out = lm.model(**lm.batch_inputs(encoded), return_dict=True)
    scores = tuple(_score(c, getattr(out, HEAD_OUTPUT[c])) for c in order_heads(lm.spec))
    return PairOrders(
        model_key=lm.spec.key, first=first, second=second, scores=scores,
        tokens=tuple(display_ids(lm, e.input_ids) for e in encoded),
        segment_ids=tuple(e.segment_ids.copy() for e in encoded),
        truncated=any(e.n_tokens_full > e.length for e in encoded),
    )


def _score(capability: str, logits: torch.Tensor) -> OrderScore:
    logits = logits.float().cpu()
    p = torch.softmax(logits, -1)[:, 0]  # class 0: IsNext / in order
    return OrderScore(capability, HEAD_QUESTION[capability], float(p[0]), float(p[1]), logits.numpy())


@dataclass(frozen=True)
class PairPreset:
    key: str
    title: str
    relation: str  # how A and B are related as written: continuation, swapped, unrelated, same topic
    a: str
    b: str
    shows: str  # one line: what the pair shows


def load_pair_presets() -> dict[str, PairPreset]:
    """The built-in sentence pairs, by key, in file order."""
    raw = json.loads(resources.files("ctxlens").joinpath("data/sentence_pair_presets.json").read_text("utf-8"))
    return {p["key"]: PairPreset(**p) for p in raw["presets"]}


register(NAME, TITLE, "P(IsNext) from BERT's NSP head and P(in order) from ALBERT's SOP head, for A → B and B → A",
         [need(cat.NSP, cat.SOP)], sentence_order)
