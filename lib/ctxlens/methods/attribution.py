"""Which words made the model say that: integrated gradients, gradient × input, occlusion.

Every method explains one `Target` (targets.py) of one input and gives a score per token and
per word (the signed sum of its pieces). Integrated gradients and gradient × input run
Captum on the word embeddings (positions and segments stay as they are); occlusion runs
Captum's feature ablation over whole words, each ablation a forward of the text *without*
the word's tokens. Always float32: the scores are gradients, and half precision moves them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from ..analysis.importance import sum_to_words
from ..analysis.masking import to_model_text
from ..backends.hf import Encoded, LoadedModel
from ..backends.limits import memory_budget_bytes
from ..backends.remote import RemoteBackend
from ..errors import InputError
from ..record import Analysis, Family
from ..validate import clean_text
from .registry import check, register
from .targets import EXPLAINABLE, Target, score

IG, GRAD_X_INPUT, OCCLUSION = "integrated-gradients", "gradient-x-input", "occlusion"
BASELINES = ("mask", "pad", "zero")  # what integrated gradients starts from, for every non-special token
DEFAULT_STEPS = 32
STEPS_PER_BATCH = 16  # interpolation steps per forward, at most (see `rows_per_backward`)
# What a backward may keep, as a share of CTXLENS_MEMORY_MB: the graph holds several tensors
# the size of each layer's attention per row (scores, probabilities, their gradients).
GRAPH_SHARE, GRAPH_COPIES = 0.5, 4
OCCLUSIONS_PER_BATCH = 16
# What an explained input may be: gradients keep every layer's activations for the backward.
MAX_EXPLAINED_TOKENS = 512
FLOAT_ONLY = "Attribution runs in float32: load the model in float32 (sidebar: precision)."


@dataclass(frozen=True)
class Subject:
    """One input to explain: its encoding (what the forwards read) and its record."""

    enc: Encoded
    record: Analysis


@dataclass(frozen=True)
class Attribution:
    method: str
    target: Target
    tokens: tuple[str, ...]
    token_scores: np.ndarray  # [T] float32; NaN where the method scores words only (occlusion)
    words: tuple[str, ...]  # the words that have tokens, in text order
    word_index: np.ndarray  # [W] index of each into record.words
    word_scores: np.ndarray  # [W] float32: signed sum over the word's pieces
    value: float  # the target's number for the input, f(x)
    baseline_value: float | None = None  # integrated gradients: f(baseline)
    options: tuple = ()  # (name, value) pairs the method ran with

    @property
    def completeness_gap(self) -> float | None:
        """Integrated gradients: sum of the scores − (f(x) − f(baseline)); 0 when exact."""
        if self.baseline_value is None:
            return None
        return float(np.sum(self.token_scores, dtype=np.float64) - (self.value - self.baseline_value))

    @property
    def relative_gap(self) -> float | None:
        gap = self.completeness_gap
        if gap is None:
            return None
        change = abs(self.value - self.baseline_value)
        return abs(gap) / change if change > 0 else float("inf") if gap else 0.0


def subject(lm: LoadedModel, text: str, text_pair: str | None = None) -> Subject:
    """Clean and encode `text` (a typed [MASK] becomes the model's mask token) for explaining."""
    _check_model(lm)
    text = clean_text(text)
    if lm.tokenizer.mask_token:
        text, _ = to_model_text(text, lm.tokenizer.mask_token)
    enc = lm.encode([text], [text_pair], max_tokens=MAX_EXPLAINED_TOKENS)[0]
    if enc.length < 2:
        raise InputError("Type at least two tokens: there is nothing else to attribute a prediction to.")
    return Subject(enc, lm.records([enc])[0])


def rows_per_backward(lm, encoded) -> int:
    """Interpolation steps per forward and backward: `STEPS_PER_BATCH`, fewer where a row's
    graph is big (SmolLM2 at 512 tokens keeps ~0.5 GB of attention per row), so a long input
    takes more passes instead of more memory than the budget allows."""
    per_row = GRAPH_COPIES * lm.estimate_bytes([encoded])
    return int(max(1, min(STEPS_PER_BATCH, GRAPH_SHARE * memory_budget_bytes() // max(per_row, 1))))


def default_baseline(lm: LoadedModel) -> str:
    """[MASK] where the tokenizer has one (what BERT saw for an unknown word), else [PAD],
    else zero vectors (GPT-2 has neither token)."""
    tok = lm.tokenizer
    return "mask" if tok.mask_token_id is not None else "pad" if tok.pad_token_id is not None else "zero"


def integrated_gradients(lm: LoadedModel, subj: Subject, target: Target, baseline: str | None = None,
                         steps: int = DEFAULT_STEPS) -> Attribution:
    """Integrated gradients (Sundararajan et al. 2017) from a baseline input whose tokens are
    all [MASK], all [PAD] or zero vectors (default: `default_baseline`; `kept_in_baseline`
    says which stay), to the input, in `steps` steps (Gauss–Legendre, Captum's default),
    `STEPS_PER_BATCH` per forward."""
    from captum.attr import IntegratedGradients

    check(IG, lm.spec)
    baseline = baseline or default_baseline(lm)
    if baseline not in BASELINES:
        raise InputError(f"Unknown baseline {baseline!r}: choose one of {', '.join(BASELINES)}.")
    if not 1 <= steps <= 1024:
        raise InputError("Take between 1 and 1,024 steps.")
    _check_model(lm)
    inputs, forward = _embedding_forward(lm, subj, target)
    embeds = inputs.pop("inputs_embeds")
    base = baseline_embeddings(lm, subj, embeds, baseline)
    extra = tuple(inputs.values())
    with torch.enable_grad():
        scores = IntegratedGradients(forward).attribute(
            embeds, baselines=base, additional_forward_args=extra, n_steps=steps,
            internal_batch_size=rows_per_backward(lm, subj.enc),
        )
    with torch.no_grad():
        value, base_value = forward(torch.cat([embeds, base]), *(t.expand(2, -1) for t in extra)).tolist()
    return _result(IG, subj, target, scores.sum(-1)[0], value, base_value,
                   (("baseline", baseline), ("steps", steps)))


def gradient_x_input(lm: LoadedModel, subj: Subject, target: Target) -> Attribution:
    """The gradient of the target with respect to each word embedding, dotted with it."""
    from captum.attr import InputXGradient

    check(GRAD_X_INPUT, lm.spec)
    _check_model(lm)
    inputs, forward = _embedding_forward(lm, subj, target)
    embeds = inputs.pop("inputs_embeds").requires_grad_()
    with torch.enable_grad():
        scores = InputXGradient(forward).attribute(embeds, additional_forward_args=tuple(inputs.values()))
    with torch.no_grad():
        value = float(forward(embeds, *inputs.values())[0])
    return _result(GRAD_X_INPUT, subj, target, scores.sum(-1)[0], value)


def occlusion(lm: LoadedModel, subj: Subject, target: Target) -> Attribution:
    """Per word: f(text) − f(text without the word's tokens). Positive: the word supported
    the target. A word the target reads (the answer span itself) scores NaN."""
    from captum.attr import FeatureAblation

    check(OCCLUSION, lm.spec)
    _check_model(lm)
    words = _scored_words(subj.record)
    if not words.size:
        raise InputError("No word to occlude: the text has only special tokens.")
    word_ids = subj.record.word_ids
    value = _scores_of(lm, [subj.enc], [target])[0]
    # Removing a word the target reads leaves nothing to score: NaN, set after Captum's sums
    # (which would spread a NaN row to every word); its forward returns the whole text's value.
    read = np.array([target.moved(~np.isin(word_ids, [w])) is None for w in words])

    def forward(keep: torch.Tensor) -> torch.Tensor:  # [B, W] 1 keep / 0 drop, one row per ablation
        variants, targets = [], []
        for row in keep.cpu().numpy():
            kept = ~np.isin(word_ids, words[row == 0])
            variants.append(_keep_tokens(subj.enc, kept))
            targets.append(target.moved(kept))
        return _scores_of(lm, variants, targets, missing=value)

    with torch.inference_mode():
        drops = FeatureAblation(forward).attribute(
            torch.ones(1, len(words)), baselines=0.0, feature_mask=torch.arange(len(words))[None],
            perturbations_per_eval=OCCLUSIONS_PER_BATCH,
        )[0].numpy().astype(np.float32)
    drops[read] = np.nan
    n = subj.record.n_tokens
    return Attribution(OCCLUSION, target, subj.record.tokens, np.full(n, np.nan, np.float32),
                       tuple(subj.record.words[w].text for w in words), words, drops, float(value))


def _scores_of(lm: LoadedModel, variants: list[Encoded], targets: list[Target | None],
               missing: float = float("nan")) -> torch.Tensor:
    """The target's number for each variant (`missing` where its target was removed)."""
    live = [i for i, t in enumerate(targets) if t is not None]
    out = torch.full((len(variants),), float(missing))
    if live:
        rows = [variants[i] for i in live]
        heads = lm.heads(lm.batch_inputs(rows))
        out[live] = score(heads, [targets[i] for i in live], [e.length for e in rows]).cpu()
    return out


def _keep_tokens(enc: Encoded, kept: np.ndarray) -> Encoded:
    ids = [i for i, k in zip(enc.input_ids, kept) if k]
    types = None if enc.token_type_ids is None else [t for t, k in zip(enc.token_type_ids, kept) if k]
    return replace(enc, input_ids=ids, token_type_ids=types, offsets=enc.offsets[kept],
                   special_mask=enc.special_mask[kept], segment_ids=enc.segment_ids[kept])


def _embedding_forward(lm: LoadedModel, subj: Subject, target: Target):
    """The model's inputs with word embeddings in place of ids, and forward(embeds, *rest) → [B]."""
    inputs = lm.batch_inputs([subj.enc])
    ids = inputs.pop("input_ids")
    with torch.no_grad():
        inputs = {"inputs_embeds": lm.embed(ids).float(), **inputs}
    names = list(inputs)[1:]
    n = subj.enc.length

    at, read = head_position(target)

    def forward(embeds: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        heads = lm.heads({"inputs_embeds": embeds, **dict(zip(names, rest))}, grad=True, at=at)
        return score(heads, [read] * len(embeds), [n] * len(embeds))

    return inputs, forward


def kept_in_baseline(lm: LoadedModel, subj: Subject) -> np.ndarray:
    """[T] the tokens the baseline keeps as they are: special tokens, and a GPT-style model's
    first token. A decoder parks most attention on its first token (the "attention sink");
    moving that token's embedding toward a baseline swings the prediction up and down along
    the path (SmolLM2: "The capital of France is" → " Paris" went from −17 to −12 and back to
    −20 between steps), so integrated gradients would not converge. Kept, it scores 0."""
    keep = np.asarray(subj.enc.special_mask, dtype=bool).copy()
    if lm.spec.family is Family.CAUSAL_LM:
        keep[0] = True
    return keep


def head_position(target: Target) -> tuple[int | None, Target]:
    """(the token to compute the head at, or None for every token; the target as read there)."""
    return (target.position, target.at_first()) if target.reads_one_token else (None, target)


def baseline_embeddings(lm: LoadedModel, subj: Subject, embeds: torch.Tensor, baseline: str) -> torch.Tensor:
    """The input's embeddings with every token replaced but those `kept_in_baseline`."""
    keep = torch.as_tensor(kept_in_baseline(lm, subj), device=embeds.device)[None, :, None]
    if baseline == "zero":
        other = torch.zeros_like(embeds)
    else:
        tok = lm.tokenizer
        token = tok.mask_token_id if baseline == "mask" else tok.pad_token_id
        if token is None:
            raise InputError(f"{lm.spec.key}'s tokenizer has no {baseline} token: choose another baseline.")
        ids = torch.full(embeds.shape[:2], token, dtype=torch.long, device=embeds.device)
        with torch.no_grad():
            other = lm.embed(ids).float()
    return torch.where(keep, embeds, other)


def _scored_words(record: Analysis) -> np.ndarray:
    """Indices of the words that have tokens (a cut or a lone mask leaves some without)."""
    return np.unique(record.word_ids[record.word_ids >= 0])


def _result(method: str, subj: Subject, target: Target, token_scores: torch.Tensor, value: float,
            baseline_value: float | None = None, options: tuple = ()) -> Attribution:
    record = subj.record
    scores = token_scores.detach().float().cpu().numpy()
    words = _scored_words(record)
    return Attribution(method, target, record.tokens, scores, tuple(record.words[w].text for w in words),
                       words, sum_to_words(scores, record.word_ids, words), float(value),
                       None if baseline_value is None else float(baseline_value), options)


def _check_model(lm: LoadedModel) -> None:
    if lm.dtype != torch.float32:
        raise InputError(FLOAT_ONLY)


METHODS = {IG: integrated_gradients, GRAD_X_INPUT: gradient_x_input, OCCLUSION: occlusion}


def attribute(lm, subj: Subject, target: Target, method: str, **options) -> Attribution:
    """Attribution `method` (one of METHODS) with its options. On a classroom server's model the
    server runs it: the gradients need the weights, and only the scores come back."""
    if method not in METHODS:
        raise InputError(f"Unknown attribution method {method!r}: choose one of {', '.join(METHODS)}.")
    if isinstance(lm, RemoteBackend):
        asked = {"input": subj.enc.to_json(), "method": method, "target": asdict(target), "options": options}
        return _from_wire(*lm.call("explain", asked))
    return METHODS[method](lm, subj, target, **options)


_ARRAYS = ("token_scores", "word_index", "word_scores")


def explain_on_server(lm, subj: Subject, asked: dict) -> tuple[dict, dict]:
    """What `attribute` asked of a server: (JSON, arrays) of the result."""
    result = METHODS[asked["method"]](lm, subj, Target(**asked["target"]), **asked["options"])
    meta = {k: v for k, v in asdict(result).items() if k not in _ARRAYS}
    return meta, {k: getattr(result, k) for k in _ARRAYS}


def _from_wire(meta: dict, arrays: dict) -> Attribution:
    return Attribution(
        **{**meta, "target": Target(**meta["target"]), "tokens": tuple(meta["tokens"]), "words": tuple(meta["words"]),
           "options": tuple(tuple(o) for o in meta["options"])},
        **{k: arrays[k].numpy() for k in _ARRAYS},
    )


register(IG, "Integrated gradients", "each word's share of the prediction, integrated from a baseline input",
         [EXPLAINABLE], integrated_gradients, baseline=None, steps=DEFAULT_STEPS)
register(GRAD_X_INPUT, "Gradient × input", "the prediction's gradient at each word embedding, times the embedding",
         [EXPLAINABLE], gradient_x_input)
register(OCCLUSION, "Word occlusion", "how the prediction changes when a word is removed", [EXPLAINABLE], occlusion)
