"""Trained task heads read as they were trained: BERT's next-sentence head, and sentence
(pair) and token classifiers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..analysis.words import split_words
from ..backends.hf import LoadedModel, analyze
from ..models import catalog as cat
from ..record import Analysis
from ..validate import clean_text
from .registry import check, register


@dataclass(frozen=True)
class NspResult:
    p_is_next: float  # P(B follows A) from the pre-training head
    tokens: tuple[str, ...]  # the layout: [CLS] A [SEP] B [SEP]
    segment_ids: np.ndarray  # 0 for [CLS], A and its [SEP]; 1 for B and the last [SEP]
    record: Analysis


def nsp_score(lm: LoadedModel, a: str, b: str) -> NspResult:
    check("nsp", lm.spec)
    record = analyze(lm, a, b)
    logits = torch.from_numpy(record.head.nsp_logits).float()
    p = float(torch.softmax(logits, -1)[0])  # index 0 is IsNext in BERT's head
    return NspResult(p, record.tokens, record.segment_ids, record)


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
    check("classify-sequence", lm.spec)
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
    check("classify-tokens", lm.spec)
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


register("nsp", "Next-sentence prediction", "P(B follows A) from BERT's pre-training head", [cat.NSP], nsp_score)
register("classify-sequence", "Sentence classifier", "a fine-tuned head's label probabilities for a sentence (pair)",
         [cat.SEQ_CLASS], classify_sequence)
register("classify-tokens", "Token classifier", "a fine-tuned head's label for every word", [cat.TOKEN_CLASS],
         classify_tokens)
