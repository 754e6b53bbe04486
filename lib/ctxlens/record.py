"""The analysis record: the small facts of one input, eager, and its activations, lazy.

Tokens, offsets, words and segments are plain numpy, filled in when the record is made.
Activations (hidden states, attention, logits, queries and keys) are torch tensors kept on
the device that computed them, indexed by name and layer (see `Activations`). A view asks for
one name and a slice; only that crosses to the CPU, as float32 numpy. A name the forward did
not produce is computed on first request by the backend that made the record.

Token-level arrays have one row per token of the (possibly truncated) input, special tokens
included. ELMo records have one token per word and no attention.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

import numpy as np
import torch

# Activation names. Layered names hold one tensor per layer; the others one tensor.
RESID = "resid"  # [T, D] per layer; layer 0 is the embedding output (hidden_states[0])
ATTN = "attn"  # [H, T, T] per layer: attention probabilities, rows sum to 1
QUERY = "q"  # [H, T, d] per layer: queries, rotary applied, scaled so softmax(q·kᵀ/√d + mask) = attn
KEY = "k"  # [H, T, d] per layer: keys, repeated per query group (grouped-query attention)
LOGITS = "logits"  # [T, V]: the model's own head over the vocabulary
START_LOGITS, END_LOGITS = "start_logits", "end_logits"  # [T]: extractive QA
NSP_LOGITS = "nsp_logits"  # [2]: BERT's next-sentence head (IsNext, NotNext)
CLASS_LOGITS = "class_logits"  # [C] (sentence classifier) or [T, C] (token classifier)
LAYERED = frozenset({RESID, ATTN, QUERY, KEY})


class Family(str, Enum):
    MASKED_LM = "masked-lm"  # BERT-style encoder; MLM, NSP, QA and classifier heads are capabilities
    CAUSAL_LM = "causal-lm"  # GPT-style decoder
    ELMO = "elmo"  # bidirectional LSTM LM over characters

    @property
    def label(self) -> str:
        return {
            "masked-lm": "BERT-style encoder",
            "causal-lm": "GPT-style causal LM",
            "elmo": "ELMo biLM",
        }[self.value]


class Word(NamedTuple):
    """A word of the shared segmentation (see analysis.words.split_words). A named tuple:
    a record builds one per word of every input, and a tuple is several times quicker to
    make than a frozen dataclass."""

    text: str
    start: int  # character offsets into the text of its segment
    end: int
    segment: int = 0  # 0: first text, 1: second text of a pair


Compute = Callable[[frozenset[str]], dict]  # missing names -> {(name, layer): tensor}


class Activations:
    """Named activations of one input, on the device that computed them.

    Keys are (name, layer) for layered names and (name, None) for the others. `compute`
    (given by the backend) runs the forward that produces missing names; `available` says
    which names the backend can produce at all. Every crossing to the CPU is counted in
    `bytes_moved`, which the benchmarks read.
    """

    def __init__(self, tensors: dict | None = None, compute: Compute | None = None,
                 available: Iterable[str] = ()):
        self._tensors: dict[tuple[str, int | None], torch.Tensor] = dict(tensors or {})
        self._compute = compute
        self.available = frozenset(available) | {name for name, _ in self._tensors}
        self._memo: dict = {}
        self._lock = threading.RLock()
        self.bytes_moved = 0
        self.on_grow: Callable[[], None] | None = None  # the cache that holds it re-weighs it

    @classmethod
    def from_arrays(cls, hidden_states, attentions=None, **others) -> "Activations":
        """Activations of hand-made or precomputed arrays ([L+1, T, D], [L, H, T, T], ...)."""
        tensors = {(RESID, i): torch.as_tensor(np.asarray(h)) for i, h in enumerate(hidden_states)}
        if attentions is not None:
            tensors.update({(ATTN, i): torch.as_tensor(np.asarray(a)) for i, a in enumerate(attentions)})
        tensors.update({(k, None): torch.as_tensor(np.asarray(v)) for k, v in others.items() if v is not None})
        return cls(tensors)

    def has(self, name: str) -> bool:
        return name in self.available

    def computed(self, name: str) -> bool:
        return any(n == name for n, _ in self._tensors)

    def ensure(self, *names: str) -> None:
        """Run the forward for the names not yet computed (one forward for all of them)."""
        with self._lock:
            missing = frozenset(n for n in names if not self.computed(n))
            if not missing:
                return
            unknown = missing - self.available
            if unknown or self._compute is None:
                raise KeyError(f"this record has no {', '.join(sorted(unknown or missing))}")
            self._tensors.update(self._compute(missing))
        self._grew()

    def tensor(self, name: str, layer: int | None = None) -> torch.Tensor:
        """The activation where it lives (no copy): for computations that stay on the device."""
        self.ensure(name)
        return self._tensors[(name, layer)]

    def layers(self, name: str) -> list[torch.Tensor]:
        self.ensure(name)
        found = sorted((layer, t) for (n, layer), t in self._tensors.items() if n == name)
        return [t for _, t in found]

    def count(self, name: str) -> int:
        return len(self.layers(name))

    def numpy(self, name: str, layer: int | None = None, index=()) -> np.ndarray:
        """One slice of one activation, as float32 numpy: the only way data leaves the device."""
        return self.to_numpy(self.tensor(name, layer)[index])

    def stack(self, name: str) -> np.ndarray:
        """Every layer of a layered name, [L, ...], in one transfer."""
        return self.to_numpy(torch.stack(self.layers(name)))

    def to_numpy(self, t: torch.Tensor) -> np.ndarray:
        out = t.detach().to("cpu", torch.float32).numpy() if t.is_floating_point() else t.detach().cpu().numpy()
        self.bytes_moved += out.nbytes
        return out

    def to_numpy_exact(self, t: torch.Tensor) -> np.ndarray:
        """Like to_numpy, keeping float64 (statistics computed in double precision)."""
        out = t.detach().cpu().numpy()
        self.bytes_moved += out.nbytes
        return out

    def memo(self, key, compute: Callable):
        """A small derived result (statistics, top-k), computed once per record."""
        with self._lock:
            if key in self._memo:
                return self._memo[key]
            value = self._memo[key] = compute()
        self._grew()
        return value

    def _grew(self) -> None:
        if self.on_grow is not None:
            self.on_grow()

    @property
    def nbytes(self) -> int:
        tensors = sum(t.numel() * t.element_size() for t in self._tensors.values())
        return tensors + sum(getattr(v, "nbytes", 0) for v in self._memo.values())


@dataclass(frozen=True)
class HeadOutput:
    """What the family's head predicts, reduced to what views use.

    top_ids/top_probs: the k most probable vocabulary items at every position (MLM: the
    filler for that position; causal: the next token after it). logits: full-vocabulary
    logits at `positions` only (MLM: the mask tokens; causal: the last token).
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

    @property
    def nbytes(self) -> int:
        return sum(getattr(v, "nbytes", 0) for v in vars(self).values())


NO_HEAD = HeadOutput(kind="none")


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
    acts: Activations
    truncated: bool = False
    n_tokens_full: int = 0  # token count before truncation
    max_tokens: int = 0  # the limit that was applied
    precision: str = "float32"  # the dtype the model computed in
    # Reads the head's small results off the logits (given by the backend; none for ELMo).
    head_reader: Callable[["Analysis"], HeadOutput] | None = field(default=None, repr=False)

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @property
    def n_layers(self) -> int:
        """Number of layers above the embedding layer."""
        return self.acts.count(RESID) - 1

    @property
    def n_heads(self) -> int:
        if not self.acts.has(ATTN):
            return 0
        return int(self.acts.tensor(ATTN, 0).shape[0])

    @property
    def has_attention(self) -> bool:
        return self.acts.has(ATTN)

    @property
    def hidden_states(self) -> np.ndarray:
        """[layers + 1, T, dim] float32: every layer, moved to the CPU once and kept (vector
        views read it many times; it is small beside the attention)."""
        return self.acts.memo("hidden_states", lambda: self.acts.stack(RESID))

    def hidden(self, layer: int) -> np.ndarray:
        """[T, dim] float32: one layer's hidden states (negative layers count from the top)."""
        return self.acts.numpy(RESID, range(self.n_layers + 1)[layer])

    @property
    def attentions(self) -> np.ndarray | None:
        """[layers, heads, T, T] float32, or None: every layer crosses (use `attention(layer)`)."""
        return self.acts.stack(ATTN) if self.has_attention else None

    def attention(self, layer: int, head=slice(None)) -> np.ndarray:
        """[H, T, T] (or [T, T] for one head) float32: one layer's attention."""
        return self.acts.numpy(ATTN, layer, head)

    @property
    def head(self) -> HeadOutput:
        if self.head_reader is None:
            return NO_HEAD
        return self.acts.memo("head", lambda: self.head_reader(self))

    def relative_depth(self) -> np.ndarray:
        """Depth of each hidden-state layer in [0, 1], to compare models of different depth."""
        return np.linspace(0.0, 1.0, self.n_layers + 1)

    def segment_text(self, segment: int) -> str:
        return self.text if segment == 0 else (self.text_pair or "")

    def word_tokens(self, word_index: int) -> np.ndarray:
        """Indices of the tokens whose characters overlap word `word_index`."""
        return word_token_indices(self, word_index)

    @property
    def nbytes(self) -> int:
        """What this record holds (its activations on their device and its small results)."""
        eager = self.token_ids.nbytes + self.offsets.nbytes + self.word_ids.nbytes
        return self.acts.nbytes + eager + len(self.text) + len(self.text_pair or "")


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
