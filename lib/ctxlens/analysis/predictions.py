"""What the models predict: masked-token fillers, next tokens, logit lens, generation,
few-shot prompting, and fine-tuned classification heads.

Every function takes a `LoadedModel` (or an `Analysis` record it produced) and returns
plain dataclasses of Python values and numpy arrays, so views and figures need no torch.
Probabilities are always the model's own softmax over its full vocabulary; restrictions
(whole words, sampling filters) never renormalise silently unless documented.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..errors import CapabilityMissing, InputError
from ..models import catalog as cat
from ..backends.hf import analyze
from ..backends.hf import LoadedModel
from ..record import RESID, Analysis, Family
from ..validate import clean_text
from .tokens import decode_byte_level, display_tokens, is_byte_level
from .words import split_words

MASK_PLACEHOLDER = "[MASK]"  # what people type, whatever the model's own mask token is
_PRESETS_FILE = Path(__file__).resolve().parent.parent / "data" / "few_shot_presets.json"


# --- shared helpers ------------------------------------------------------------------------


def require(lm: LoadedModel, capability: str) -> None:
    """CapabilityMissing naming the catalog models that have `capability`, unless lm has it."""
    if lm.spec.can(capability):
        return
    label = cat.CAPABILITY_LABELS[capability]
    have = [k for k, s in cat.CATALOG.items() if s.can(capability) and not s.test_model]
    where = (
        "Models that have one: " + ", ".join(have) + "."
        if have
        else "No catalog model has one: load a checkpoint fine-tuned with that head."
    )
    raise CapabilityMissing(f"'{lm.spec.key}' has no trained head for {label}. {where}")


@dataclass(frozen=True)
class Filler:
    """One candidate: a token (or a whole word of several pieces) and its probability."""

    text: str  # display form: "##ing" / "␣Paris" for single tokens, plain text for words
    token_ids: tuple[int, ...]
    prob: float


def _display(lm_or_tok, ids: Sequence[int]) -> tuple[str, ...]:
    tok = getattr(lm_or_tok, "tokenizer", lm_or_tok)
    ids = [int(i) for i in ids]
    raw = tok.convert_ids_to_tokens(ids)
    special = np.isin(ids, tok.all_special_ids)
    return display_tokens([r if r is not None else "" for r in raw], tok, special)


def _fillers(lm: LoadedModel, probs: torch.Tensor, top_k: int) -> tuple[Filler, ...]:
    top = probs.topk(min(top_k, probs.shape[-1]))
    ids = top.indices.tolist()
    names = _display(lm, ids)
    return tuple(Filler(n, (i,), float(p)) for n, i, p in zip(names, ids, top.values.tolist()))


def _check_top_k(top_k: int) -> None:
    if not isinstance(top_k, int) or top_k < 1:
        raise InputError(f"top_k must be a positive whole number (got {top_k!r}).")


def _model_inputs(lm: LoadedModel, ids: torch.Tensor, segments: np.ndarray | None = None) -> dict:
    """Keyword inputs for a batch of unpadded id rows [B, T] of equal length."""
    inputs = {"input_ids": ids.to(lm.device), "attention_mask": torch.ones_like(ids).to(lm.device)}
    if "token_type_ids" in getattr(lm.tokenizer, "model_input_names", ()):
        types = torch.zeros_like(ids) if segments is None else torch.as_tensor(segments).expand_as(ids)
        inputs["token_type_ids"] = types.to(lm.device)
    return inputs


def _vocab_logits(lm: LoadedModel, ids: torch.Tensor, segments: np.ndarray | None = None) -> torch.Tensor:
    """Full-vocabulary logits [B, T, V] (float32) from the model's LM head."""
    with torch.inference_mode():
        out = lm.model(**_model_inputs(lm, ids, segments), return_dict=True)
    logits = getattr(out, "prediction_logits", None)
    return (out.logits if logits is None else logits).float()


# --- masked LM: fill-mask -------------------------------------------------------------------


@dataclass(frozen=True)
class MaskSlot:
    """One [MASK] (or, in whole-word mode, a run of adjacent [MASK]s standing for one word)."""

    positions: tuple[int, ...]  # token indices in the record
    span: tuple[int, int]  # character offsets of the typed placeholder(s) in the typed text
    fillers: tuple[Filler, ...]


@dataclass(frozen=True)
class FillMaskResult:
    text: str  # the typed text (control characters removed)
    model_text: str  # what the model read: placeholders replaced by its own mask token
    record: Analysis
    slots: tuple[MaskSlot, ...]
    whole_word: bool
    # (typed_start, typed_end, model_start, model_end) of every replaced placeholder
    replacements: tuple[tuple[int, int, int, int], ...] = ()

    def typed_offset(self, model_offset: int) -> int:
        """A character offset in `model_text` mapped back to the typed text."""
        shift = 0
        for t0, t1, m0, m1 in self.replacements:
            if model_offset <= m0:
                break
            if model_offset < m1:  # inside a mask token: snap to the placeholder's end
                return t1
            shift = t1 - m1
        return model_offset + shift

    def typed_token_offsets(self) -> np.ndarray:
        """The record's token offsets [T, 2] in the typed text (specials stay (0, 0))."""
        out = self.record.offsets.copy()
        for t in np.flatnonzero(~self.record.special_mask):
            out[t] = (self.typed_offset(int(out[t, 0])), self.typed_offset(int(out[t, 1])))
        for pos, (t0, t1, _, _) in zip(self.record.head.positions, self.replacements):
            out[pos] = (t0, t1)  # a mask token spans exactly its typed placeholder
        return out


def _placeholder_pattern(mask_token: str) -> re.Pattern:
    # The model's own token (e.g. "<mask>") is accepted too, so pasted RoBERTa examples work.
    return re.compile(re.escape(MASK_PLACEHOLDER) + "|" + re.escape(mask_token), re.IGNORECASE)


def _to_model_text(text: str, mask_token: str) -> tuple[str, list[tuple[int, int, int, int]]]:
    parts, replacements, last, shift = [], [], 0, 0
    for m in _placeholder_pattern(mask_token).finditer(text):
        parts += [text[last : m.start()], mask_token]
        m0 = m.start() + shift
        replacements.append((m.start(), m.end(), m0, m0 + len(mask_token)))
        shift += len(mask_token) - (m.end() - m.start())
        last = m.end()
    parts.append(text[last:])
    return "".join(parts), replacements


def _require_mlm(lm: LoadedModel) -> None:
    require(lm, cat.MLM)
    if lm.spec.family is not Family.MASKED_LM or lm.tokenizer.mask_token is None:
        raise CapabilityMissing(f"'{lm.spec.key}' is not a masked language model with a mask token.")


def fill_mask(lm: LoadedModel, text: str, top_k: int = 5, whole_word: bool = False) -> FillMaskResult:
    """The top-k fillers of every [MASK] in `text` (type [MASK] whatever the model).

    whole_word=False: each mask is one token slot, scored like transformers' fill-mask
    pipeline (softmax over the full vocabulary at that position).
    whole_word=True: a run of adjacent masks with nothing between them ("[MASK][MASK]",
    as `mask_word` writes for a word of two pieces) stands for one word. See `_fill_word`
    for how candidate words are scored.
    """
    _require_mlm(lm)
    _check_top_k(top_k)
    text = clean_text(text)
    model_text, replacements = _to_model_text(text, lm.tokenizer.mask_token)
    if not replacements:
        raise InputError(
            f"No mask in the text: add {MASK_PLACEHOLDER} where a word should be predicted, "
            f"e.g. 'The capital of France is {MASK_PLACEHOLDER}.' (or click a word to mask it)."
        )
    record = analyze(lm, model_text)
    positions = record.head.positions
    if len(positions) < len(replacements) and record.truncated:
        raise InputError(
            f"The {MASK_PLACEHOLDER} at character {replacements[len(positions)][0]} lies beyond "
            f"the model's {record.max_tokens}-token limit: shorten the text before it."
        )
    if len(positions) != len(replacements):
        raise InputError(f"The tokenizer did not read every {MASK_PLACEHOLDER} as one mask token.")
    groups = _mask_groups(replacements) if whole_word else [[i] for i in range(len(positions))]
    slots = []
    for group in groups:
        span = (replacements[group[0]][0], replacements[group[-1]][1])
        pos = tuple(int(positions[i]) for i in group)
        if whole_word:
            spaced = span[0] > 0 and text[span[0] - 1].isspace()
            fillers = _fill_word(lm, record, pos, spaced, top_k)
        else:
            probs = torch.softmax(torch.from_numpy(record.head.logits[group[0]]).float(), -1)
            fillers = _fillers(lm, probs, top_k)
        slots.append(MaskSlot(pos, span, fillers))
    return FillMaskResult(text, model_text, record, tuple(slots), whole_word, tuple(replacements))


def _mask_groups(replacements) -> list[list[int]]:
    """Indices of placeholders grouped into runs that touch (no character between them)."""
    groups: list[list[int]] = []
    for i, (start, _, _, _) in enumerate(replacements):
        if groups and replacements[groups[-1][-1]][1] == start:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


@lru_cache(maxsize=8)
def _piece_classes(tokenizer, vocab_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Over the vocabulary: (starts a word after a space, starts a word with no space before
    it, continues a word). Only pieces with a letter or digit count; specials never do.

    WordPiece marks continuations ("##ing"); byte-level BPE and SentencePiece mark the
    opposite, a word that follows a space ("Ġcat", "▁cat"); the other pieces continue.
    """
    raw = tokenizer.convert_ids_to_tokens(list(range(min(vocab_size, len(tokenizer)))))
    raw += [None] * (vocab_size - len(raw))
    special = set(tokenizer.all_special_ids)
    backend = tokenizer.backend_tokenizer.model
    wordpiece = type(backend).__name__ == "WordPiece"
    prefix = getattr(backend, "continuing_subword_prefix", None) if wordpiece else None
    byte_level = is_byte_level(tokenizer)
    spaced, bare, cont = (np.zeros(vocab_size, dtype=bool) for _ in range(3))
    for i, piece in enumerate(raw):
        if piece is None or i in special:
            continue
        if prefix is not None:  # WordPiece: no space marker, a word start is any non-"##" piece
            is_cont = piece.startswith(prefix)
            body = piece[len(prefix):] if is_cont else piece
            wordy = any(ch.isalnum() for ch in body)
            cont[i] = wordy and is_cont
            spaced[i] = bare[i] = wordy and not is_cont
            continue
        text = decode_byte_level(piece) if byte_level else piece.replace("▁", " ")
        wordy = any(ch.isalnum() for ch in text)
        spaced[i] = wordy and text.startswith(" ") and text[1:2].isalnum()
        bare[i] = cont[i] = wordy and not text[:1].isspace()
    return spaced, bare, cont


def _fill_word(lm: LoadedModel, record: Analysis, positions, spaced: bool, top_k: int) -> tuple[Filler, ...]:
    """Whole words for a run of n masks, by beam search filling the pieces left to right.

    Step j re-runs the model with pieces 1..j-1 written in and reads piece j's
    distribution; the first piece must start a word (after a space when the typed text has
    one), the others must continue it. A word's probability is the product of its pieces'
    step probabilities, each from the full softmax (not renormalised over allowed pieces),
    so it is the chance that the model, writing left to right, writes exactly this word.
    MLMs define no joint distribution over several masks; this chain is one honest reading
    of it, and the number of masks tells the model how many pieces the word has.
    """
    spaced_ok, bare_ok, cont_ok = _piece_classes(lm.tokenizer, record.head.logits.shape[-1])
    first_ok = torch.from_numpy(spaced_ok if spaced else bare_ok)  # equal for WordPiece
    cont_ok = torch.from_numpy(cont_ok)
    ids = torch.as_tensor(record.token_ids)[None]
    beams: list[tuple[tuple[int, ...], float]] = [((), 0.0)]
    for step, pos in enumerate(positions):
        if not beams:  # no vocabulary piece may come next: no whole word fits
            break
        batch = ids.repeat(len(beams), 1)
        for row, (pieces, _) in enumerate(beams):
            batch[row, list(positions[:step])] = torch.tensor(pieces, dtype=torch.long)
        logp = torch.log_softmax(_vocab_logits(lm, batch, record.segment_ids)[:, pos], -1).cpu()
        logp[:, ~(first_ok if step == 0 else cont_ok)] = -math.inf
        total = logp + torch.tensor([s for _, s in beams])[:, None]
        top = total.flatten().topk(min(top_k, total.numel()))
        vocab = total.shape[1]
        beams = [
            (beams[i // vocab][0] + (i % vocab,), s)
            for i, s in zip(top.indices.tolist(), top.values.tolist())
            if s > -math.inf
        ]
    return tuple(
        Filler(lm.tokenizer.decode(list(pieces)).strip(), pieces, math.exp(score)) for pieces, score in beams
    )


def mask_word(text: str, word_index: int, lm: LoadedModel | None = None) -> str:
    """`text` with word `word_index` (shared segmentation) replaced by [MASK].

    With a model, the word becomes as many adjacent [MASK]s as the model has pieces for it
    in this text, so fill_mask(..., whole_word=True) predicts the whole word.
    """
    text = clean_text(text)
    words = split_words(text)
    if not 0 <= word_index < len(words):
        raise InputError(f"There is no word {word_index}: the text has {len(words)} words.")
    word = words[word_index]
    n = 1 if lm is None else _pieces_of(lm, text, word.start, word.end)
    return text[: word.start] + MASK_PLACEHOLDER * n + text[word.end :]


def _pieces_of(lm: LoadedModel, text: str, start: int, end: int) -> int:
    enc = lm.tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    n = sum(1 for a, b in enc["offset_mapping"] if a < end and b > start)
    return max(n, 1)


# --- masked LM: logit lens ------------------------------------------------------------------


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
        final_tokens=_display(lm, final.tolist()),
        final_rank=rank,
        final_prob=final_prob,
        top_ids=top_ids,
        top_tokens=tuple(_display(lm, row) for row in top_ids),
        top_prob=top_prob,
    )


def mlm_logit_lens(lm: LoadedModel, record: Analysis, positions: Sequence[int] | None = None) -> LogitLens:
    """The MLM head on every layer at the mask positions (or `positions`).

    BERT-style encoders have no final layer norm outside the head, so the last layer's lens
    equals the model's own prediction.
    """
    _require_mlm(lm)
    positions = record.head.positions if positions is None else np.asarray(positions)
    if positions is None or len(positions) == 0:
        raise InputError(f"The text has no mask: add {MASK_PLACEHOLDER} to see the logit lens.")
    return _lens(lm, record, positions)


# --- masked LM: BERT's corruption recipe ----------------------------------------------------

MASK, RANDOM, KEEP = "mask", "random", "keep"


@dataclass(frozen=True)
class CorruptedToken:
    position: int  # token index (special tokens included)
    action: str  # MASK (80%), RANDOM (10%) or KEEP (10%)
    original_id: int
    original: str
    shown_id: int  # what the model reads at this position
    shown: str
    predictions: tuple[Filler, ...] | None = None  # the model's top fillers, when it has a head
    recovered: bool | None = None  # its top filler is the original token


@dataclass(frozen=True)
class Corruption:
    """One draw of BERT's pre-training corruption; the loss is computed at `positions` only."""

    text: str
    seed: int
    rate: float
    original_ids: np.ndarray
    original_tokens: tuple[str, ...]
    corrupted_ids: np.ndarray
    corrupted_tokens: tuple[str, ...]
    items: tuple[CorruptedToken, ...]

    @property
    def positions(self) -> np.ndarray:
        return np.array([c.position for c in self.items], dtype=np.int64)


@lru_cache(maxsize=8)
def _replacement_ids(tokenizer) -> np.ndarray:
    return np.setdiff1d(np.arange(len(tokenizer)), tokenizer.all_special_ids)


def corruption_demo(lm_or_tokenizer, text: str, seed: int, rate: float = 0.15, top_k: int = 5) -> Corruption:
    """BERT's recipe: choose round(rate × n) of the n non-special tokens (at least one) with a
    seeded numpy Generator; each chosen token becomes [MASK] with p 0.8, a random
    non-special vocabulary token with p 0.1, or stays as it is with p 0.1. The model must
    predict the original at every chosen position, changed or not, so it cannot learn
    to trust only the [MASK]s. With a model that has an MLM head, its predictions are added.
    """
    lm = lm_or_tokenizer if isinstance(lm_or_tokenizer, LoadedModel) else None
    tok = lm.tokenizer if lm else lm_or_tokenizer
    if tok.mask_token_id is None:
        raise CapabilityMissing("This tokenizer has no mask token: the recipe is for BERT-style models.")
    if not 0 < rate <= 1:
        raise InputError(f"The corruption rate must be in (0, 1] (got {rate}).")
    text = clean_text(text)
    limit = lm.max_tokens if lm else min(int(getattr(tok, "model_max_length", 512)), 512)
    enc = tok(text, truncation=True, max_length=limit, return_special_tokens_mask=True)
    original = np.array(enc["input_ids"], dtype=np.int64)
    candidates = np.flatnonzero(~np.array(enc["special_tokens_mask"], dtype=bool))
    if candidates.size == 0:
        raise InputError("The text has no tokens to corrupt.")
    rng = np.random.default_rng(seed)
    n = max(1, min(candidates.size, round(rate * candidates.size)))
    chosen = np.sort(rng.choice(candidates, size=n, replace=False))
    corrupted, actions = original.copy(), []
    replacement_ids = _replacement_ids(tok)
    for pos in chosen:
        u = rng.random()
        action = MASK if u < 0.8 else RANDOM if u < 0.9 else KEEP
        if action == MASK:
            corrupted[pos] = tok.mask_token_id
        elif action == RANDOM:
            corrupted[pos] = rng.choice(replacement_ids)
        actions.append(action)
    predictions = _corruption_predictions(lm, corrupted, chosen, top_k)
    orig_tokens, shown_tokens = _display(tok, original), _display(tok, corrupted)
    items = tuple(
        CorruptedToken(
            int(p), a, int(original[p]), orig_tokens[p], int(corrupted[p]), shown_tokens[p],
            predictions[i] if predictions else None,
            predictions[i][0].token_ids[0] == int(original[p]) if predictions else None,
        )
        for i, (p, a) in enumerate(zip(chosen, actions))
    )
    return Corruption(text, seed, rate, original, orig_tokens, corrupted, shown_tokens, items)


def _corruption_predictions(lm, corrupted: np.ndarray, positions: np.ndarray, top_k: int):
    if lm is None or lm.spec.family is not Family.MASKED_LM or not lm.spec.can(cat.MLM):
        return None
    logits = _vocab_logits(lm, torch.from_numpy(corrupted)[None])[0, positions].cpu()
    return [_fillers(lm, torch.softmax(row, -1), top_k) for row in logits]


# --- masked LM: next-sentence prediction ----------------------------------------------------


@dataclass(frozen=True)
class NspResult:
    p_is_next: float  # P(B follows A) from the pre-training head
    tokens: tuple[str, ...]  # the layout: [CLS] A [SEP] B [SEP]
    segment_ids: np.ndarray  # 0 for [CLS], A and its [SEP]; 1 for B and the last [SEP]
    record: Analysis


def nsp_score(lm: LoadedModel, a: str, b: str) -> NspResult:
    require(lm, cat.NSP)
    record = analyze(lm, a, b)
    logits = torch.from_numpy(record.head.nsp_logits).float()
    p = float(torch.softmax(logits, -1)[0])  # index 0 is IsNext in BERT's head
    return NspResult(p, record.tokens, record.segment_ids, record)


# --- causal LM: next token, surprisal, generation -------------------------------------------


@dataclass(frozen=True)
class NextTokens:
    record: Analysis
    candidates: tuple[Filler, ...]  # the most probable next tokens after the whole text


def next_tokens(lm: LoadedModel, text: str, top_k: int = 10) -> NextTokens:
    require(lm, cat.NEXT_TOKEN)
    _check_top_k(top_k)
    record = analyze(lm, text)
    probs = torch.softmax(torch.from_numpy(record.head.logits[-1]).float(), -1)
    return NextTokens(record, _fillers(lm, probs, top_k))


@dataclass(frozen=True)
class Surprisal:
    """How surprised the model is by each token: −log2 p(token | tokens before it)."""

    tokens: tuple[str, ...]
    bits: np.ndarray  # [T]; NaN for the first token, which has no context to be predicted from
    total_bits: float
    n_scored: int

    @property
    def mean_bits(self) -> float:
        return self.total_bits / self.n_scored if self.n_scored else float("nan")

    @property
    def perplexity(self) -> float:
        return 2.0**self.mean_bits


def surprisal(record: Analysis) -> Surprisal:
    if record.head.token_logprobs is None:
        raise CapabilityMissing("Surprisal needs a causal LM's next-token predictions.")
    bits = -record.head.token_logprobs.astype(np.float64) / math.log(2)
    scored = np.isfinite(bits)
    return Surprisal(record.tokens, bits, float(bits[scored].sum()), int(scored.sum()))


def sampling_probs(
    logits: torch.Tensor | np.ndarray, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> torch.Tensor:
    """The distribution the sampler draws from: temperature, then top-k, then top-p (nucleus:
    the fewest most probable tokens whose mass reaches top_p), renormalised. Temperature 0
    is greedy: all mass on the arg-max."""
    logits = torch.as_tensor(logits).float().cpu().flatten()
    if temperature < 0 or not 0 < top_p <= 1 or top_k < 0:
        raise InputError("Use temperature ≥ 0, top_k ≥ 0 (0 = off) and 0 < top_p ≤ 1.")
    if temperature == 0:
        out = torch.zeros_like(logits)
        out[logits.argmax()] = 1.0
        return out
    logits = logits / temperature
    if top_k:
        kth = logits.topk(min(top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p < 1:
        order = logits.argsort(descending=True)
        p = torch.softmax(logits[order], -1)
        drop = (p.cumsum(0) - p) >= top_p  # mass before this token already reached top_p
        logits[order[drop]] = -math.inf
    return torch.softmax(logits, -1)


def generate_stream(
    lm: LoadedModel, prompt: str, max_new_tokens: int = 40, temperature: float = 0.7,
    top_k: int = 50, top_p: float = 0.95, seed: int = 0,
) -> Iterator[str]:
    """Yield the continuation of `prompt` piece by piece as it is sampled.

    One forward pass per token with the KV cache (past_key_values); sampling runs on the
    CPU with a seeded torch.Generator, so the same seed gives the same text on any device
    (up to the device's arithmetic). Stops at max_new_tokens, an end-of-sequence token, or
    the model's context limit. Settings are checked here, before the first piece is asked for.
    """
    require(lm, cat.NEXT_TOKEN)
    if max_new_tokens < 1:
        raise InputError("Generate at least one token.")
    sampling_probs(torch.zeros(1), temperature, top_k, top_p)  # validates the settings
    prompt_ids = lm.tokenizer(clean_text(prompt, "prompt"))["input_ids"]
    if len(prompt_ids) >= lm.max_tokens:
        raise InputError(
            f"The prompt has {len(prompt_ids)} tokens; this model reads at most {lm.max_tokens}."
        )
    budget = min(max_new_tokens, lm.max_tokens - len(prompt_ids))
    return _stream(lm, prompt_ids, budget, (temperature, top_k, top_p), int(seed))


def _stream(lm: LoadedModel, prompt_ids: list[int], budget: int, settings: tuple, seed: int) -> Iterator[str]:
    gen = torch.Generator().manual_seed(seed)
    stops = _eos_ids(lm)
    base = lm.tokenizer.decode(prompt_ids, skip_special_tokens=True)
    new_ids: list[int] = []
    emitted = ""
    past, step_input = None, torch.tensor([prompt_ids], device=lm.device)
    for _ in range(budget):
        with torch.inference_mode():
            out = lm.model(input_ids=step_input, past_key_values=past, use_cache=True, return_dict=True)
        past = out.past_key_values
        probs = sampling_probs(out.logits[0, -1], *settings)
        next_id = int(torch.multinomial(probs, 1, generator=gen)) if settings[0] else int(probs.argmax())
        if next_id in stops:
            break
        new_ids.append(next_id)
        text = _continuation(lm.tokenizer, base, prompt_ids, new_ids)
        if not text.endswith("\ufffd"):  # hold back half of a multi-byte character
            yield text[len(emitted):]
            emitted = text
        step_input = torch.tensor([[next_id]], device=lm.device)
    text = _continuation(lm.tokenizer, base, prompt_ids, new_ids)
    if len(text) > len(emitted):
        yield text[len(emitted):]


def _eos_ids(lm: LoadedModel) -> set[int]:
    ids = {lm.tokenizer.eos_token_id}
    configured = getattr(getattr(lm.model, "generation_config", None), "eos_token_id", None)
    ids |= set(configured) if isinstance(configured, (list, tuple)) else {configured}
    return {int(i) for i in ids if i is not None}


def _continuation(tokenizer, base: str, prompt_ids: list[int], new_ids: list[int]) -> str:
    # Decoding with the prompt keeps leading spaces SentencePiece drops at a text's start.
    full = tokenizer.decode(prompt_ids + new_ids, skip_special_tokens=True)
    return full[len(base):] if full.startswith(base) else tokenizer.decode(new_ids, skip_special_tokens=True)


# --- causal LM: logit lens ------------------------------------------------------------------


def causal_logit_lens(lm: LoadedModel, record: Analysis, positions: Sequence[int] | None = None) -> LogitLens:
    """Final norm + LM head on every layer's hidden state, at every position (or `positions`).

    Hugging Face returns the last hidden state after the final norm, so the norm is applied
    to the earlier layers only; the last layer's lens is then the model's own prediction.
    """
    require(lm, cat.NEXT_TOKEN)
    positions = np.arange(record.n_tokens) if positions is None else np.asarray(positions)
    return _lens(lm, record, positions)


# --- causal LM: few-shot lab ----------------------------------------------------------------


@dataclass(frozen=True)
class FewShotPrompt:
    shots: int
    prompt: str
    answer: str  # the expected continuation, with its leading space


def few_shot_presets() -> dict[str, dict]:
    return json.loads(_PRESETS_FILE.read_text(encoding="utf-8"))


def few_shot_prompts(preset: str | dict, shots: Sequence[int] | None = None) -> list[FewShotPrompt]:
    """Prompts with 0, 1, … demonstrations (default: 0, 1 and all of them).

    Layout: the instruction, a blank line, then each demonstration as
    "<input_prefix><input>\\n<output_prefix> <output>" separated by blank lines, then the
    query ending in "<output_prefix>"; the answer follows it after a space.
    """
    p = few_shot_presets()[preset] if isinstance(preset, str) else preset
    demos = p["demonstrations"]
    shots = (0, 1, len(demos)) if shots is None else tuple(shots)
    if any(not 0 <= s <= len(demos) for s in shots):
        raise InputError(f"Shots must be between 0 and {len(demos)} for this preset.")
    return [
        FewShotPrompt(s, _prompt(p, demos[:s]), " " + p["answer"])
        for s in dict.fromkeys(shots)
    ]


def _prompt(p: dict, demos: list) -> str:
    blocks = [p["instruction"]]
    blocks += [f"{p['input_prefix']}{x}\n{p['output_prefix']} {y}" for x, y in demos]
    blocks.append(f"{p['input_prefix']}{p['query']}\n{p['output_prefix']}")
    return "\n\n".join(blocks)


@dataclass(frozen=True)
class AnswerScore:
    prob: float  # product of the answer's token probabilities (teacher forcing)
    tokens: tuple[str, ...]
    token_probs: tuple[float, ...]


def answer_probability(lm: LoadedModel, prompt: str, answer: str) -> AnswerScore:
    """P(answer | prompt): the answer is tokenised on its own (keep its leading space) and
    appended to the prompt's tokens, as the model would generate it; one forward pass
    reads each answer token's probability given the prompt and the answer tokens before it."""
    require(lm, cat.NEXT_TOKEN)
    prompt = clean_text(prompt, "prompt")
    if not answer:
        raise InputError("The answer is empty.")
    p_ids = lm.tokenizer(prompt)["input_ids"]
    a_ids = lm.tokenizer(answer, add_special_tokens=False)["input_ids"]
    if len(p_ids) + len(a_ids) > lm.max_tokens:
        raise InputError(f"Prompt and answer exceed this model's {lm.max_tokens}-token limit.")
    logits = _vocab_logits(lm, torch.tensor([p_ids + a_ids]))[0]
    logp = torch.log_softmax(logits[len(p_ids) - 1 : -1], -1).cpu()
    token_logp = logp.gather(1, torch.tensor(a_ids)[:, None])[:, 0]
    return AnswerScore(
        float(token_logp.sum().exp()), _display(lm, a_ids), tuple(token_logp.exp().tolist())
    )


def few_shot_curve(lm: LoadedModel, preset: str | dict, shots: Sequence[int] | None = None):
    """[(prompt, score)] for each number of shots: how demonstrations change P(answer)."""
    return [(fp, answer_probability(lm, fp.prompt, fp.answer)) for fp in few_shot_prompts(preset, shots)]


# --- fine-tuned task heads ------------------------------------------------------------------


@dataclass(frozen=True)
class SequenceClassification:
    labels: tuple[str, ...]  # config.id2label, in id order
    probs: np.ndarray  # [labels]; softmax, or per-label sigmoid for multi-label heads
    multi_label: bool


def _labels(lm: LoadedModel, n: int) -> tuple[str, ...]:
    id2label = getattr(lm.model.config, "id2label", None) or {}
    return tuple(str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(n))


def _encode(lm: LoadedModel, text: str, text_pair: str | None):
    text = clean_text(text)
    text_pair = clean_text(text_pair, "second sentence") if text_pair is not None else None
    enc = lm.tokenizer(
        text, text_pair, truncation="longest_first" if text_pair else True,
        max_length=lm.max_tokens, return_offsets_mapping=True, return_special_tokens_mask=True,
        return_tensors="pt",
    )
    return text, enc


def _forward_logits(lm: LoadedModel, enc) -> torch.Tensor:
    names = set(getattr(lm.tokenizer, "model_input_names", ())) | {"input_ids", "attention_mask"}
    inputs = {k: v.to(lm.device) for k, v in enc.items() if k in names}
    with torch.inference_mode():
        return lm.model(**inputs, return_dict=True).logits[0].float().cpu()


def classify_sequence(lm: LoadedModel, text: str, text_pair: str | None = None) -> SequenceClassification:
    require(lm, cat.SEQ_CLASS)
    _, enc = _encode(lm, text, text_pair)
    logits = _forward_logits(lm, enc)
    multi = getattr(lm.model.config, "problem_type", None) == "multi_label_classification"
    probs = torch.sigmoid(logits) if multi else torch.softmax(logits, -1)
    return SequenceClassification(_labels(lm, len(logits)), probs.numpy(), multi)


@dataclass(frozen=True)
class TokenClassification:
    words: tuple[str, ...]  # the shared word segmentation
    labels: tuple[str | None, ...]  # per word; None for a word cut off by truncation
    probs: np.ndarray  # [words, labels]; NaN rows for cut-off words
    label_names: tuple[str, ...]


def classify_tokens(lm: LoadedModel, text: str) -> TokenClassification:
    """A label per word, read at the word's first token (the usual NER convention)."""
    require(lm, cat.TOKEN_CLASS)
    text, enc = _encode(lm, text, None)
    probs = torch.softmax(_forward_logits(lm, enc), -1).numpy()
    names = _labels(lm, probs.shape[1])
    offsets = enc["offset_mapping"][0].numpy()
    usable = ~enc["special_tokens_mask"][0].numpy().astype(bool) & (offsets[:, 1] > offsets[:, 0])
    words = split_words(text)
    out = np.full((len(words), len(names)), np.nan, dtype=np.float32)
    labels: list[str | None] = []
    for w, word in enumerate(words):
        hit = np.flatnonzero(usable & (offsets[:, 0] < word.end) & (offsets[:, 1] > word.start))
        if hit.size:
            out[w] = probs[hit[0]]
        labels.append(names[int(out[w].argmax())] if hit.size else None)
    return TokenClassification(tuple(w.text for w in words), tuple(labels), out, names)
