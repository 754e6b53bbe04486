"""Sense attribution for the Polysemy lab: which context words pull one occurrence of the
target word toward its own sense.

The number explained is cos(v, own sense's centroid) − cos(v, the nearest other sense's
centroid), where v is the occurrence's word vector (mean of its pieces) at the chosen layer
and the centroids are the lab's, at that layer, with the occurrence left out of its own
(as the lab's nearest-centroid accuracy). Integrated gradients (Captum) attribute it to the
input words: word embeddings for BERT/GPT (from zero vectors, with the baseline of
`attribution.baseline_embeddings`: specials and a decoder's first token stay), ELMo's
character-CNN token vectors for ELMo (from zeros); positions, segments and <S>/</S> stay.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..analysis.importance import sum_to_words
from ..analysis.polysemy import UNLABELLED, Occurrences
from ..errors import InputError
from ..models import catalog as cat
from ..record import RESID, word_token_indices
from .attribution import Subject, baseline_embeddings, rows_per_backward
from .registry import check, register

DEFAULT_STEPS = 32
STEPS_PER_BATCH = 16


@dataclass(frozen=True)
class SenseAttribution:
    occurrence: int  # index into the occurrences
    sense: str
    other_sense: str
    layer: int
    words: tuple[str, ...]  # the sentence's words (that the model read)
    word_scores: np.ndarray  # [W] float32, signed
    target_word: int  # index of the occurrence's word among `words`
    value: float  # cos(own) − cos(other) for the sentence
    baseline_value: float

    @property
    def completeness_gap(self) -> float:
        return float(np.sum(self.word_scores, dtype=np.float64) - (self.value - self.baseline_value))

    def context_ranking(self) -> list[tuple[str, float]]:
        """The other words, strongest pull toward the own sense first."""
        order = [i for i in np.argsort(-self.word_scores, kind="stable") if i != self.target_word]
        return [(self.words[i], float(self.word_scores[i])) for i in order]


def centroids(occ: Occurrences, layer: int, which: int) -> tuple[str, np.ndarray, str, np.ndarray]:
    """(own sense, its centroid without `which`, nearest other sense, its centroid) at `layer`."""
    senses = np.array(occ.senses)
    own = senses[which]
    if own == UNLABELLED:
        raise InputError("This sentence has no sense tag: tag it (`sense | sentence`) to attribute its sense.")
    vectors = occ.vectors[layer].astype(np.float64)
    mine = (senses == own) & (np.arange(occ.n) != which)
    if not mine.any():
        raise InputError(f"Sense '{own}' has only this sentence: add another of that sense to have a centroid.")
    others = [s for s in dict.fromkeys(senses) if s not in (own, UNLABELLED)]
    if not others:
        raise InputError("Tag sentences with at least two senses to attribute one against the other.")
    own_c = vectors[mine].mean(0)
    unit = lambda x: x / max(np.linalg.norm(x), 1e-12)  # noqa: E731
    v = unit(vectors[which])
    other = max(others, key=lambda s: float(v @ unit(vectors[senses == s].mean(0))))
    return own, own_c, other, vectors[senses == other].mean(0)


def sense_attribution(lm, occ: Occurrences, text: str, which: int, layer: int,
                      steps: int = DEFAULT_STEPS) -> SenseAttribution:
    """Integrated gradients of cos(v, own centroid) − cos(v, other centroid) for occurrence
    `which` (its sentence is `text`, as the lab read it) at `layer`."""
    from captum.attr import IntegratedGradients

    check("sense-attribution", lm.spec)
    own, own_c, other, other_c = centroids(occ, layer, which)
    word = int(occ.word_index[which])
    inputs, baseline, extra, pieces, record, rows = _inputs(lm, text, word)
    centres = torch.as_tensor(np.stack([own_c, other_c]), dtype=torch.float32, device=inputs.device)
    hidden = _hidden(lm)

    def forward(x: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        v = hidden(x, rest, layer)[:, pieces].mean(1)  # [B, D]
        cos = torch.nn.functional.cosine_similarity(v[:, None], centres[None], dim=-1)
        return cos[:, 0] - cos[:, 1]

    with torch.enable_grad():
        scores = IntegratedGradients(forward).attribute(
            inputs, baselines=baseline, additional_forward_args=extra, n_steps=steps,
            internal_batch_size=rows,
        )
    with torch.no_grad():
        both = forward(torch.cat([inputs, baseline]), *(t.expand(2, *t.shape[1:]) for t in extra)).tolist()
    token_scores = scores.sum(-1)[0].detach().float().cpu().numpy()
    if getattr(lm.spec.family, "value", "") == "elmo":
        token_scores = token_scores[1:-1]  # <S> and </S> are not words
    words = np.unique(record.word_ids[record.word_ids >= 0])
    return SenseAttribution(
        which, own, other, layer, tuple(record.words[w].text for w in words),
        sum_to_words(token_scores, record.word_ids, words), int(np.searchsorted(words, word)),
        float(both[0]), float(both[1]),
    )


def _inputs(lm, text: str, word: int):
    """(inputs [1, T, D], baseline, extra forward args, the word's token positions, record,
    interpolation steps per forward)."""
    if _is_elmo(lm):
        record = lm.analyze([text])[0]
        tokens = lm.model.differentiable_tokens(list(record.tokens))  # [1, T + 2, D] with <S> </S>
        baseline = tokens.clone()
        baseline[:, 1:-1] = 0
        pieces = word_token_indices(record, word) + 1
        return tokens, baseline, (), torch.as_tensor(pieces), record, STEPS_PER_BATCH
    enc = lm.encode([text])[0]
    record = lm.records([enc])[0]
    batch = lm.batch_inputs([enc])
    ids = batch.pop("input_ids")
    with torch.no_grad():
        embeds = lm.embed(ids).float()
    baseline = baseline_embeddings(lm, Subject(enc, record), embeds, "zero")  # keeps a decoder's sink
    pieces = word_token_indices(record, word)
    if not pieces.size:
        raise InputError("The target word was cut off: shorten the sentence.")
    return embeds, baseline, tuple(batch.values()), torch.as_tensor(pieces), record, rows_per_backward(lm, enc)


def _hidden(lm):
    """hidden(x, extra, layer) → [B, T, D] differentiable hidden states of `layer`."""
    if _is_elmo(lm):
        return lambda x, extra, layer: lm.model.layers_from_tokens(x)[layer]

    def hidden(x, extra, layer):
        keys = ("attention_mask", "token_type_ids")[: len(extra)]  # the order of `batch_inputs`
        out = lm.forward({"inputs_embeds": x, **dict(zip(keys, extra))}, {RESID}, grad=True)
        return out[(RESID, layer)]

    return hidden


def _is_elmo(lm) -> bool:
    return lm.spec.can(cat.BILM_LAYERS)


register("sense-attribution", "Sense attribution",
         "which context words pull one occurrence of the word toward its own sense", [cat.HIDDEN],
         sense_attribution, steps=DEFAULT_STEPS)
