"""The ELMo backend: our biLM (models/elmo.py) behind the Backend protocol.

ELMo has hidden states only ("resid": the character-CNN token layer, then each LSTM layer),
one token per word. Its records are small, so they are made on the CPU as numpy-backed
tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..analysis.words import split_words
from ..errors import CapabilityMissing
from ..models.catalog import ModelSpec
from ..models.elmo import DEFAULT_MAX_WORDS, ElmoBiLM, analyze_elmo_batch
from ..record import RESID, Analysis
from ..validate import clean_text
from .limits import interactive_limit


@dataclass(frozen=True)
class ElmoInput:
    text: str
    text_pair: str | None
    max_tokens: int

    @property
    def length(self) -> int:
        return len(self.text) + len(self.text_pair or "")  # sorts batches; words are not known yet

    @property
    def n_tokens(self) -> int:
        """The words the model reads, at most `max_tokens` (what a request's token budget counts)."""
        words = len(split_words(self.text)) + (len(split_words(self.text_pair)) if self.text_pair else 0)
        return min(words, self.max_tokens)


@dataclass
class LoadedElmo:
    spec: ModelSpec
    model: ElmoBiLM
    device: str
    max_tokens: int = DEFAULT_MAX_WORDS
    precision: str = "float32"
    names: frozenset = frozenset({RESID})
    default_names: frozenset = frozenset({RESID})

    @property
    def memory_bytes(self) -> int:
        return self.model.memory_bytes

    def encode(self, texts, pairs=None, max_tokens=None) -> list[ElmoInput]:
        limit = min(max_tokens or interactive_limit(), self.max_tokens)
        pairs = pairs or [None] * len(texts)
        return [ElmoInput(clean_text(t), clean_text(p, "second sentence") if p else None, limit)
                for t, p in zip(texts, pairs)]

    def records(self, encoded: list[ElmoInput], names=None) -> list[Analysis]:
        if not encoded:
            return []
        return analyze_elmo_batch(self.model, [e.text for e in encoded], self.spec.key,
                                  [e.text_pair for e in encoded], encoded[0].max_tokens)

    def analyze(self, texts, pairs=None, max_tokens=None, names=None) -> list[Analysis]:
        return self.records(self.encode(texts, pairs, max_tokens), names)

    def run(self, encoded, names, grad: bool = False) -> list[dict]:
        return [dict(r.acts._tensors) for r in self.records(encoded, names)]

    def estimate_bytes(self, encoded, names=None) -> int:
        per_word = (self.model.n_layers + 1) * self.model.output_dim * 4
        return sum(len((e.text + " " + (e.text_pair or "")).split()) * per_word for e in encoded)

    def unembed(self, hidden: torch.Tensor, layer: int) -> torch.Tensor:
        raise CapabilityMissing(f"{self.spec.key}: ELMo's softmax over words is not part of the published weights.")
