"""Masked-token prediction: the fillers of every [MASK], one token or a whole word."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..analysis.masking import MASK_PLACEHOLDER, mask_groups, to_model_text
from ..analysis.tokens import decode_byte_level, is_byte_level
from ..analysis.words import split_words
from ..backends.hf import LoadedModel, analyze
from ..errors import CapabilityMissing, InputError
from ..models import catalog as cat
from ..record import Analysis
from ..validate import clean_text
from .common import Filler, check_top_k, require, top_fillers, vocab_logits
from .registry import check, register


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
    unread_masks: int = 0  # masks past the tokens read (the text was cut), not filled

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


def require_mlm(lm: LoadedModel) -> None:
    require(lm, cat.MLM)
    if lm.tokenizer.mask_token is None:
        raise CapabilityMissing(f"'{lm.spec.key}' has an MLM head but its tokenizer has no mask token.")


def fill_mask(lm: LoadedModel, text: str, top_k: int = 5, whole_word: bool = False) -> FillMaskResult:
    """The top-k fillers of every [MASK] in `text` (type [MASK] whatever the model).

    whole_word=False: each mask is one token slot, scored like transformers' fill-mask
    pipeline (softmax over the full vocabulary at that position).
    whole_word=True: a run of adjacent masks with nothing between them ("[MASK][MASK]",
    as `mask_word` writes for a word of two pieces) stands for one word. See `_fill_word`
    for how candidate words are scored.
    """
    check("fill-mask", lm.spec)
    require_mlm(lm)
    check_top_k(top_k)
    text = clean_text(text)
    model_text, replacements = to_model_text(text, lm.tokenizer.mask_token)
    if not replacements:
        raise InputError(
            f"No mask in the text: add {MASK_PLACEHOLDER} where a word should be predicted, "
            f"e.g. 'The capital of France is {MASK_PLACEHOLDER}.' (or click a word to mask it)."
        )
    record = analyze(lm, model_text)
    positions = record.head.positions
    read = len(positions)
    if read < len(replacements) and record.truncated:
        if read == 0:
            raise InputError(
                f"The first {MASK_PLACEHOLDER}, at character {replacements[0][0]}, lies beyond the "
                f"{record.max_tokens} tokens read: shorten the text before it."
            )
    elif read != len(replacements):
        raise InputError(f"The tokenizer did not read every {MASK_PLACEHOLDER} as one mask token.")
    groups = mask_groups(replacements) if whole_word else [[i] for i in range(len(replacements))]
    # Masks past the cut are not filled; nor is a word whose masks the cut splits.
    groups = [g for g in groups if g[-1] < read]
    slots = []
    for group in groups:
        span = (replacements[group[0]][0], replacements[group[-1]][1])
        pos = tuple(int(positions[i]) for i in group)
        if whole_word:
            spaced = span[0] > 0 and text[span[0] - 1].isspace()
            fillers = _fill_word(lm, record, pos, spaced, top_k)
        else:
            probs = torch.softmax(torch.from_numpy(record.head.logits[group[0]]).float(), -1)
            fillers = top_fillers(lm, probs, top_k)
        slots.append(MaskSlot(pos, span, fillers))
    unread = len(replacements) - sum(len(g) for g in groups)
    return FillMaskResult(text, model_text, record, tuple(slots), whole_word, tuple(replacements), unread)


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
        logp = torch.log_softmax(vocab_logits(lm, batch, record.segment_ids)[:, pos], -1).cpu()
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


register("fill-mask", "Fill the [MASK]", "the model's most probable fillers for every [MASK], one token or a whole word",
         [cat.MLM], fill_mask, top_k=5, whole_word=False)
