"""The Hugging Face adapter: one forward pass → one `Analysis` per text.

Each text is tokenised alone (offsets, words, truncation are per text), then all are padded
on the right into one batch. Right padding with an attention mask never changes the real
positions of an encoder or a causal decoder, so a batched record equals a one-at-a-time one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..analysis.tokens import display_tokens
from ..analysis.words import align_tokens_to_words, split_words
from ..record import Analysis, Family, HeadOutput
from ..validate import clean_text
from . import catalog as cat
from .loading import LoadedModel

TOP_K = 10


@dataclass
class Encoded:
    text: str
    text_pair: str | None
    input_ids: list[int]
    token_type_ids: list[int] | None
    offsets: np.ndarray
    special_mask: np.ndarray
    segment_ids: np.ndarray
    n_tokens_full: int
    max_tokens: int


def analyze(lm: LoadedModel, text: str, text_pair: str | None = None, max_tokens: int | None = None) -> Analysis:
    return analyze_batch(lm, [text], [text_pair], max_tokens)[0]


def analyze_batch(
    lm: LoadedModel,
    texts: list[str],
    text_pairs: list[str | None] | None = None,
    max_tokens: int | None = None,
    hidden_only: bool = False,
) -> list[Analysis]:
    """Analyse many texts in one forward pass; each record equals its one-at-a-time twin.

    hidden_only: skip attentions and the head (embedding extraction needs neither, and the
    vocabulary softmax at every position costs more than the encoder on small models).
    """
    return analyze_encoded(lm, encode_texts(lm, texts, text_pairs, max_tokens), hidden_only)


def encode_texts(
    lm: LoadedModel, texts: list[str], text_pairs: list[str | None] | None = None,
    max_tokens: int | None = None,
) -> list[Encoded]:
    """Clean and tokenise each text once (callers may sort by length before the forward)."""
    pairs = text_pairs or [None] * len(texts)
    limit = min(max_tokens or lm.max_tokens, lm.max_tokens)
    return [_encode(lm, t, p, limit) for t, p in zip(texts, pairs)]


def analyze_encoded(lm: LoadedModel, encoded: list[Encoded], hidden_only: bool = False) -> list[Analysis]:
    """One forward pass over already encoded texts, one record each."""
    outputs = _forward(lm, encoded, hidden_only)
    return [_record(lm, enc, outputs, row, hidden_only) for row, enc in enumerate(encoded)]


def _encode(lm: LoadedModel, text: str, text_pair: str | None, limit: int) -> Encoded:
    text = clean_text(text)
    text_pair = clean_text(text_pair, "second sentence") if text_pair is not None else None
    enc = _tokenize(lm.tokenizer, text, text_pair, None)
    n_full = len(enc["input_ids"])
    if n_full > limit:  # rare: only over-long inputs pay for a second, truncating pass
        enc = _tokenize(lm.tokenizer, text, text_pair, limit)
    ids = enc["input_ids"]
    typed_specials = set(lm.tokenizer.all_special_ids)  # e.g. a [MASK] or [SEP] in the text
    special = np.array([m or i in typed_specials for i, m in zip(ids, enc["special_tokens_mask"])], dtype=bool)
    return Encoded(
        text=text, text_pair=text_pair, input_ids=ids,
        token_type_ids=enc.get("token_type_ids"),
        offsets=np.array(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2),
        special_mask=special, segment_ids=_segments(enc, len(ids)),
        n_tokens_full=n_full, max_tokens=limit,
    )


def _tokenize(tok, text: str, text_pair: str | None, limit: int | None):
    truncation = False if limit is None else "longest_first" if text_pair else True
    return tok(
        text, text_pair, truncation=truncation, max_length=limit,
        return_offsets_mapping=True, return_special_tokens_mask=True,
    )


def _segments(enc, n: int) -> np.ndarray:
    """0 for the first text, 1 for the second; special tokens take their neighbour's segment."""
    if enc.get("token_type_ids") is not None:
        return np.array(enc["token_type_ids"], dtype=np.int64)
    out = np.zeros(n, dtype=np.int64)
    current = 0
    for i, s in enumerate(enc.sequence_ids()):
        current = s if s is not None else current
        out[i] = current
    return out


def _forward(lm: LoadedModel, encoded: list[Encoded], hidden_only: bool = False):
    width = max(len(e.input_ids) for e in encoded)
    pad_id = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    types = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, e in enumerate(encoded):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        mask[row, :n] = 1
        if e.token_type_ids is not None:
            types[row, :n] = torch.tensor(e.token_type_ids)
    inputs = {"input_ids": ids.to(lm.device), "attention_mask": mask.to(lm.device)}
    if encoded[0].token_type_ids is not None:
        inputs["token_type_ids"] = types.to(lm.device)
    network = lm.model.base_model if hidden_only else lm.model
    with torch.inference_mode():
        return network(
            **inputs, output_hidden_states=True, output_attentions=not hidden_only, return_dict=True
        )


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def _record(lm: LoadedModel, enc: Encoded, out, row: int, hidden_only: bool = False) -> Analysis:
    n = len(enc.input_ids)
    # Stacked where the tensors live, then one transfer (not one per layer from a GPU).
    hidden = _numpy(torch.stack([h[row, :n] for h in out.hidden_states]))
    attentions = None
    if getattr(out, "attentions", None) is not None and out.attentions[0] is not None:
        attentions = _numpy(torch.stack([a[row, :, :n, :n] for a in out.attentions]))
    words = split_words(enc.text, 0) + (split_words(enc.text_pair, 1) if enc.text_pair else [])
    raw = lm.tokenizer.convert_ids_to_tokens(enc.input_ids)
    return Analysis(
        model_key=lm.spec.key, family=lm.spec.family, text=enc.text, text_pair=enc.text_pair,
        tokens=display_tokens(raw, lm.tokenizer, enc.special_mask),
        token_ids=np.array(enc.input_ids, dtype=np.int64), offsets=enc.offsets,
        word_ids=align_tokens_to_words(enc.offsets, enc.special_mask, enc.segment_ids, words),
        special_mask=enc.special_mask, segment_ids=enc.segment_ids, words=tuple(words),
        hidden_states=hidden, attentions=attentions,
        head=HeadOutput(kind="none") if hidden_only else _head(lm, enc, out, row, n),
        truncated=enc.n_tokens_full > n, n_tokens_full=enc.n_tokens_full, max_tokens=enc.max_tokens,
    )


def _head(lm: LoadedModel, enc: Encoded, out, row: int, n: int) -> HeadOutput:
    spec = lm.spec
    if spec.family is Family.QA and spec.can(cat.QA_SPANS):
        return HeadOutput(
            kind="qa", start_logits=_numpy(out.start_logits[row, :n]),
            end_logits=_numpy(out.end_logits[row, :n]),
        )
    vocab_logits = getattr(out, "prediction_logits", None)
    if vocab_logits is None:
        vocab_logits = getattr(out, "logits", None)
    nsp = getattr(out, "seq_relationship_logits", None)
    if spec.family is Family.MASKED_LM and spec.can(cat.MLM) and vocab_logits is not None:
        logits = vocab_logits[row, :n].float()
        positions = np.flatnonzero(np.array(enc.input_ids) == lm.tokenizer.mask_token_id)
        return HeadOutput(
            kind="mlm", **_top_k(logits), positions=positions,
            logits=_numpy(logits[positions]),
            nsp_logits=_numpy(nsp[row]) if nsp is not None and spec.can(cat.NSP) else None,
        )
    if spec.family is Family.CAUSAL_LM and spec.can(cat.NEXT_TOKEN) and vocab_logits is not None:
        logits = vocab_logits[row, :n].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        ids = torch.tensor(enc.input_ids[1:], device=logits.device)
        token_logprobs = np.full(n, np.nan, dtype=np.float32)
        token_logprobs[1:] = _numpy(logprobs[:-1].gather(1, ids[:, None])[:, 0])
        return HeadOutput(
            kind="next-token", **_top_k(logprobs, normalised=True), positions=np.array([n - 1]),
            logits=_numpy(logits[-1:]), token_logprobs=token_logprobs,
        )
    return HeadOutput(kind="none")


def _top_k(scores: torch.Tensor, k: int = TOP_K, normalised: bool = False) -> dict:
    """Top-k ids and probabilities; `normalised` scores are log-probabilities already, which
    spares a second softmax over the whole vocabulary at every position."""
    k = min(k, scores.shape[-1])
    if normalised:
        top = scores.topk(k, dim=-1)
        return {"top_ids": top.indices.cpu().numpy(), "top_probs": _numpy(top.values.exp())}
    top = torch.softmax(scores, dim=-1).topk(k, dim=-1)
    return {"top_ids": top.indices.cpu().numpy(), "top_probs": _numpy(top.values)}
