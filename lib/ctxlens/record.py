"""The analysis record: everything the views need from one forward pass.

Arrays are float32 / int numpy, never torch tensors, so views and tests need no model.
Token-level arrays have one row per token of the (possibly truncated) input, special
tokens included. ELMo records have one token per word and no attentions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np


class Family(str, Enum):
    MASKED_LM = "masked-lm"  # BERT-style encoder (may or may not have trained MLM/NSP heads)
    CAUSAL_LM = "causal-lm"  # GPT-style decoder
    QA = "extractive-qa"  # encoder with a span (start/end) head
    ELMO = "elmo"  # bidirectional LSTM LM over characters

    @property
    def label(self) -> str:
        return {
            "masked-lm": "BERT-style encoder",
            "causal-lm": "GPT-style causal LM",
            "extractive-qa": "Extractive QA",
            "elmo": "ELMo biLM",
        }[self.value]


@dataclass(frozen=True)
class Word:
    """A word of the shared segmentation (see analysis.words.split_words)."""

    text: str
    start: int  # character offsets into the text of its segment
    end: int
    segment: int = 0  # 0: first text, 1: second text of a pair


@dataclass(frozen=True)
class HeadOutput:
    """What the family's head predicts, reduced to what views use.

    top_ids/top_probs: the k most probable vocabulary items at every position (MLM: the
    filler for that position; causal: the next token after it). logits: full-vocabulary
    logits at `positions` only (MLM: the mask tokens; causal: the last token), because
    [tokens, vocab] for every position would cost tens of MB per analysis.
    """

    kind: str  # "mlm" | "next-token" | "qa" | "none"
    top_ids: np.ndarray | None = None  # [T, k] int
    top_probs: np.ndarray | None = None  # [T, k] float32
    positions: np.ndarray | None = None  # [P] int
    logits: np.ndarray | None = None  # [P, V] float32
    token_logprobs: np.ndarray | None = None  # causal: [T] log p(token_t | tokens_<t); NaN at t=0
    start_logits: np.ndarray | None = None  # QA: [T]
    end_logits: np.ndarray | None = None  # QA: [T]
    nsp_logits: np.ndarray | None = None  # BERT pre-training head: [2] (IsNext, NotNext)


@dataclass(frozen=True, eq=False)
class Analysis:
    model_key: str
    family: Family
    text: str
    text_pair: str | None
    tokens: tuple[str, ...]  # display form: "##ing" kept, byte-level "Ġ" shown as "␣"
    token_ids: np.ndarray  # [T] int
    offsets: np.ndarray  # [T, 2] char offsets into the token's segment text; (0, 0) for specials
    word_ids: np.ndarray  # [T] int index into `words`, -1 for special tokens
    special_mask: np.ndarray  # [T] bool
    segment_ids: np.ndarray  # [T] int (0 / 1)
    words: tuple[Word, ...]
    hidden_states: np.ndarray  # [layers + 1, T, dim] float32
    attentions: np.ndarray | None  # [layers, heads, T, T] float32, None for ELMo
    head: HeadOutput = field(default_factory=lambda: HeadOutput(kind="none"))
    truncated: bool = False
    n_tokens_full: int = 0  # token count before truncation
    max_tokens: int = 0  # the limit that was applied

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @property
    def n_layers(self) -> int:
        """Number of layers above the embedding layer."""
        return self.hidden_states.shape[0] - 1

    @property
    def n_heads(self) -> int:
        return 0 if self.attentions is None else self.attentions.shape[1]

    def relative_depth(self) -> np.ndarray:
        """Depth of each hidden-state layer in [0, 1], to compare models of different depth."""
        return np.linspace(0.0, 1.0, self.hidden_states.shape[0])

    def segment_text(self, segment: int) -> str:
        return self.text if segment == 0 else (self.text_pair or "")

    def word_tokens(self, word_index: int) -> np.ndarray:
        """Indices of the tokens whose characters overlap word `word_index`."""
        return word_token_indices(self, word_index)


def word_token_indices(record: Analysis, word_index: int) -> np.ndarray:
    word = record.words[word_index]
    starts, ends = record.offsets[:, 0], record.offsets[:, 1]
    hit = (
        ~record.special_mask
        & (record.segment_ids == word.segment)
        & (starts < word.end)
        & (ends > word.start)
    )
    return np.flatnonzero(hit)
