"""The layer story: what each layer of a model knows, on one axis of relative depth.

Per layer, each on a scale of about 0 to 1 so one chart holds them (selectivity and cosines
can dip below 0): the part-of-speech probe's selectivity, how well the senses of ambiguous
words separate, self-similarity and anisotropy (Ethayarajh), the logit lens's reciprocal rank
of the right token, and, for ELMo, the scalar-mix weights a probe learns. `story_text` reads
the curves and says what they show, from the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ..analysis.contextuality import corpus_contextuality
from ..analysis.polysemy import loo_nearest_centroid_accuracy, load_presets
from ..analysis.words import Pooling
from ..cache import cached
from ..errors import CapabilityMissing
from ..models import catalog as cat
from ..models.loading import Progress
from ..models.registry import get_model
from ..record import Family
from .common import model_inputs
from .corpus import bundled_corpus, corpus_words
from .probes import learned_mix, probe_curves
from .registry import register

MEASURES = {
    "pos_selectivity": "POS probe selectivity",
    "sense_separation": "sense separation",
    "self_similarity": "self-similarity",
    "anisotropy": "anisotropy",
    "right_token_mrr": "logit lens: 1 / rank of the right token",
    "mix_weight": "ELMo's learned mix weight (POS)",
}
LENS_SENTENCES = 8  # the lens runs the whole vocabulary at every layer (31 × 49k for SmolLM2): a few sentences
MASK_RATE = 0.15  # of the tokens an MLM hides, as in BERT's pre-training


def sense_separation(model: str, *, pooling: Pooling = "mean", device: str | None = None,
                     dtype: str | None = None, progress: Progress | None = None) -> np.ndarray:
    """Per layer, the leave-one-out nearest-centroid accuracy of the senses of the built-in
    ambiguous words (bank, bat, spring, …: their sentences are in the bundled corpus),
    averaged over the words."""
    corpus = corpus_words(model, pooling=pooling, device=device, dtype=dtype, progress=progress)
    sentence_of = {text: i for i, text in enumerate(corpus.texts)}
    folded = np.array([w.casefold() for w in corpus.words])
    scores = []
    for preset in load_presets().values():
        sense = {sentence_of[s.text]: s.sense for s in preset.sentences()}
        rows = np.flatnonzero(np.isin(corpus.sentence_id, list(sense)) & (folded == preset.target.casefold()))
        senses = [sense[corpus.sentence_id[r]] for r in rows]
        scores.append([loo_nearest_centroid_accuracy(corpus.vectors[layer, rows], senses)
                       for layer in range(len(corpus.layers))])
    return np.nanmean(np.array(scores), axis=0)


def right_token_ranks(model: str, texts: Sequence[str] | None = None, *, device: str | None = None,
                      dtype: str | None = None, seed: int = 0) -> pd.DataFrame:
    """The logit lens on the corpus: at every layer, the rank of the right token under the
    model's own head. A causal LM predicts each next token; an MLM the tokens it hides (15 %,
    seeded, as in pre-training). Columns: layer, mrr (mean of 1/rank), top1, n_predictions."""
    lm = get_model(model, device, None, dtype)
    if not (lm.spec.can(cat.MLM) or lm.spec.can(cat.NEXT_TOKEN)):
        raise CapabilityMissing(f"{model} has no trained output head (MLM or next-token), so the logit lens has "
                                "nothing to read its layers with.")
    texts = tuple((bundled_corpus() if texts is None else texts)[:LENS_SENTENCES])
    return cached(("right-token", model, device, dtype, texts, seed), lambda: _ranks(lm, texts, seed))


def _ranks(lm, texts: tuple[str, ...], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    causal = lm.spec.can(cat.NEXT_TOKEN) and not lm.spec.can(cat.MLM)
    reciprocal, top1 = [], []
    for encoded in lm.encode(list(texts)):
        ids = torch.tensor([encoded.input_ids])
        if causal:
            positions, targets = np.arange(len(encoded.input_ids) - 1), np.array(encoded.input_ids[1:])
        else:
            candidates = np.flatnonzero(~encoded.special_mask)
            positions = candidates[rng.random(len(candidates)) < MASK_RATE]
            positions = positions if len(positions) else candidates[:1]
            targets = ids[0, positions].numpy().copy()
            ids[0, positions] = lm.tokenizer.mask_token_id
        with torch.inference_mode():
            hidden = lm.model(**model_inputs(lm, ids), output_hidden_states=True).hidden_states
            at = torch.as_tensor(positions, device=hidden[0].device)
            wanted = torch.as_tensor(targets, device=hidden[0].device)[:, None]
            ranks = []
            for layer, states in enumerate(hidden):
                logits = lm.unembed(states[0, at].to(lm.dtype), layer).float()
                ranks.append(((logits > logits.gather(1, wanted)).sum(-1) + 1).cpu().numpy())
        ranks = np.stack(ranks)  # [layers, positions]
        reciprocal.append(1.0 / ranks)
        top1.append(ranks == 1)
    reciprocal, top1 = np.concatenate(reciprocal, axis=1), np.concatenate(top1, axis=1)
    return pd.DataFrame({"layer": np.arange(len(reciprocal)), "mrr": reciprocal.mean(axis=1),
                         "top1": top1.mean(axis=1), "n_predictions": reciprocal.shape[1]})


def layer_story(model: str, *, pooling: Pooling = "mean", device: str | None = None, dtype: str | None = None,
                progress: Progress | None = None) -> pd.DataFrame:
    """One model's measures per layer, long format: model, layer, relative_depth, measure,
    value (0–1), and `notes` (attrs) on what could not be measured and why."""
    options = dict(pooling=pooling, device=device, dtype=dtype)
    corpus = corpus_words(model, progress=progress, **options)
    probes = probe_curves(model, "pos", progress=progress, **options)
    context = corpus_contextuality(corpus)
    columns = {"pos_selectivity": probes.selectivity.to_numpy(),
               "sense_separation": sense_separation(model, progress=progress, **options),
               "self_similarity": context.self_similarity.to_numpy(), "anisotropy": context.baseline.to_numpy()}
    notes = []
    try:
        columns["right_token_mrr"] = right_token_ranks(model, device=device, dtype=dtype).mrr.to_numpy()
    except CapabilityMissing as exc:
        notes.append(str(exc))
    if get_model(model, device, None, dtype).spec.family is Family.ELMO:
        columns["mix_weight"] = learned_mix(corpus).weight.to_numpy()
    frame = pd.DataFrame({"layer": corpus.layers, "relative_depth": corpus.relative_depth, **columns})
    long = frame.melt(["layer", "relative_depth"], var_name="measure", value_name="value")
    long.insert(0, "model", model)
    long["label"] = long.measure.map(MEASURES)
    long.attrs["notes"] = notes
    return long


def story_text(story: pd.DataFrame) -> str:
    """What the curves say, one clause per measure, from the numbers of `story` (one or more
    models' layer_story frames concatenated)."""
    lines = []
    for model, frame in story.groupby("model", sort=False):
        curves = {m: f.set_index("layer").value.dropna() for m, f in frame.groupby("measure")}
        said = [say(curves) for measure, say in _FINDINGS if measure in curves and len(curves[measure])]
        if said:
            lines.append(f"**{model}**: " + "; ".join(said) + ".")
    return "\n\n".join(lines)


def _pos(c) -> str:
    s = c["pos_selectivity"]
    return (f"part of speech is most selectively readable at layer {s.idxmax()} (selectivity {s.max():.2f}, "
            f"{s.iloc[0]:.2f} at the embeddings)")


def _senses(c) -> str:
    s = c["sense_separation"]
    return (f"word senses separate best at layer {s.idxmax()} ({s.max():.0%} nearest-centroid accuracy, "
            f"{s.iloc[0]:.0%} at the embeddings)")


def _context(c) -> str:
    s = c["self_similarity"]
    a = c.get("anisotropy", pd.Series(dtype=float))
    text = (f"a word's vectors across sentences have a cosine of {s.iloc[0]:.2f} at the embeddings and "
            f"{s.min():.2f} at their least alike (layer {s.idxmin()})")
    if len(a):
        text += f", while two random words reach {a.max():.2f} (anisotropy, layer {a.idxmax()})"
    return text


def _lens(c) -> str:
    s = c["right_token_mrr"]
    half = s[s >= s.iloc[-1] / 2].index[0]
    return (f"under the logit lens the right token's reciprocal rank reaches half its final {s.iloc[-1]:.2f} "
            f"at layer {half}")


def _mix(c) -> str:
    s = c["mix_weight"]
    return f"a POS probe's learned scalar mix gives layer {s.idxmax()} the largest weight ({s.max():.0%})"


_FINDINGS = (("pos_selectivity", _pos), ("sense_separation", _senses), ("self_similarity", _context),
             ("right_token_mrr", _lens), ("mix_weight", _mix))


register("layer-story", "The layer story", "probe selectivity, sense separation, self-similarity, anisotropy, the "
         "logit lens and ELMo's mix per layer, by relative depth", [cat.HIDDEN], layer_story)
