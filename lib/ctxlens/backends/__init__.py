"""Backends: every model family behind one protocol.

`hf` runs any Hugging Face encoder or decoder (the only code importing transformers),
`elmo` our biLM. Pages, methods and the registry talk to the protocol only.
"""

from __future__ import annotations

from typing import Protocol

import torch

from ..models.catalog import ModelSpec
from ..record import Analysis


class Backend(Protocol):
    spec: ModelSpec
    device: str
    max_tokens: int  # the longest input the model accepts

    @property
    def precision(self) -> str: ...

    @property
    def names(self) -> frozenset[str]:
        """The activation names it can produce (see record.py)."""

    @property
    def default_names(self) -> frozenset[str]:
        """What an interactive forward computes and keeps."""

    @property
    def memory_bytes(self) -> int: ...

    def encode(self, texts: list[str], pairs: list[str | None] | None = None,
               max_tokens: int | None = None) -> list:
        """Cleaned, tokenised, cut inputs; each has `.length` (tokens) for batching."""

    def run(self, encoded: list, names, grad: bool = False) -> list[dict]:
        """One forward; per input, {(name, layer): tensor} on the device."""

    def records(self, encoded: list, names=None) -> list[Analysis]:
        """`run`, wrapped into lazy records."""

    def estimate_bytes(self, encoded: list, names=None) -> int:
        """What the records of `encoded` would hold, known before the forward."""

    def unembed(self, hidden: torch.Tensor, layer: int) -> torch.Tensor:
        """The model's own output head on a hidden state of `layer` (logit lens)."""
