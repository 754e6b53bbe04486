"""ELMo: the original bidirectional LM (bilm-tf / AllenNLP `_ElmoBiLm`) and its analysis record.

Each sentence is framed by <S> ... </S>, read by a character CNN, then by a stack of
projected LSTMs per direction. Layer 0 is the token vector duplicated to both halves
([tok, tok], as the original), layer k is forward ⊕ backward of LSTM layer k; the boundary
tokens are removed from the output. ELMo reads the shared words (analysis.words) directly,
so it has exactly one token per word.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..analysis.words import split_words
from ..errors import InputError
from ..record import Activations, Analysis, Family, Word
from .elmo_catalog import tiny_elmo_paths
from .elmo_chars import BOS_TOKEN, EOS_TOKEN, words_to_char_tensor
from .elmo_net import (
    CharCNN, ElmoOptions, ProjectedLSTM, read_options, read_weights, reverse_padded,
)

DEFAULT_MAX_WORDS = 512
DEFAULT_CACHE_WORDS = 50_000
CNN_CHUNK_WORDS = 256

__all__ = [
    "ElmoBiLM", "analyze_elmo", "analyze_elmo_batch", "tiny_elmo_paths", "DEFAULT_MAX_WORDS",
]


class ElmoBiLM(nn.Module):
    def __init__(
        self, options: ElmoOptions, weights: dict[str, np.ndarray], device: str = "cpu",
        name: str = "elmo", cache_words: int = DEFAULT_CACHE_WORDS,
    ):
        super().__init__()
        self.options, self.name = options, name
        self.char_cnn = CharCNN(options, weights)
        self.lstms = nn.ModuleList(  # [direction][layer]; direction 0 forward, 1 backward
            nn.ModuleList(ProjectedLSTM(options, weights, d, k) for k in range(options.n_layers))
            for d in (0, 1)
        )
        self.device = torch.device(device)
        self.to(self.device).eval()
        self.cache_words = cache_words
        self._token_cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._state: tuple[torch.Tensor, torch.Tensor] | None = None  # stateful mode only
        self._lock = threading.Lock()  # one model is shared by every browser session

    @classmethod
    def from_files(
        cls, options_path: str | Path, weights_path: str | Path, device: str = "cpu",
        name: str | None = None, cache_words: int = DEFAULT_CACHE_WORDS,
    ) -> "ElmoBiLM":
        """Load options.json + the .hdf5 weights; bad files raise ModelUnavailable(name, cause)."""
        name = name or Path(weights_path).stem
        options = read_options(options_path, name)
        return cls(options, read_weights(weights_path, options, name), device, name, cache_words)

    @property
    def n_layers(self) -> int:
        return self.options.n_layers

    @property
    def output_dim(self) -> int:
        return 2 * self.options.proj_dim

    @property
    def memory_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.parameters())

    def reset_states(self) -> None:
        """Forget the LSTM state carried by stateful calls."""
        with self._lock:
            self._state = None

    def embed_words(self, batch: list[list[str]], stateful: bool = False) -> list[np.ndarray]:
        """One [n_layers + 1, n_words, 2 * proj_dim] float32 array per sentence.

        Stateless (default): every sentence starts from a zero LSTM state. Stateful: batch
        row r starts from the state row r had at the end of the previous stateful call, as
        the original biLM does (the first call starts from zeros).
        """
        if not batch:
            return []
        with self._lock, torch.inference_mode():
            layers, lengths = self._run(batch, stateful)
            return [
                layers[:, r, 1 : n + 1].float().cpu().numpy()  # drop <S> and </S>
                for r, n in enumerate(lengths.tolist())
            ]

    def token_vectors(self, words: list[str]) -> torch.Tensor:
        """[len(words), proj_dim] context-independent vectors (layer 0), via the LRU cache."""
        with self._lock, torch.inference_mode():
            return self._token_vectors(words)

    def differentiable_tokens(self, words: list[str]) -> torch.Tensor:
        """[1, len(words) + 2, proj_dim]: the token vectors of <S> words </S>, as a tensor
        autograd can start from (attribution)."""
        with self._lock, torch.inference_mode():
            vectors = self._token_vectors([BOS_TOKEN, *words, EOS_TOKEN])
        return vectors.clone()[None]  # a clone made outside inference mode is a normal tensor

    def layers_from_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """[L + 1, B, T, 2 * proj_dim] from token vectors [B, T, proj_dim] (<S> and </S>
        included, every row T long), stateless and differentiable."""
        lengths = torch.full((len(tokens),), tokens.shape[1], device=tokens.device)
        h, c = self._initial_state(len(tokens), stateful=False)
        outputs, _, _ = self._bilstm(tokens, lengths, h, c)
        return torch.stack([torch.cat([tokens, tokens], dim=-1), *outputs])

    def _run(self, batch: list[list[str]], stateful: bool):
        sentences = [[BOS_TOKEN, *words, EOS_TOKEN] for words in batch]
        lengths = torch.tensor([len(s) for s in sentences], device=self.device)
        width = int(lengths.max())
        vectors = self._token_vectors([w for s in sentences for w in s])
        tokens = vectors.new_zeros(len(batch), width, vectors.shape[-1])
        mask = torch.arange(width, device=self.device).unsqueeze(0) < lengths.unsqueeze(1)
        tokens[mask] = vectors  # row-major order of the mask matches the flattened words
        h, c = self._initial_state(len(batch), stateful)
        outputs, h, c = self._bilstm(tokens, lengths, h, c)
        if stateful:
            self._keep_state(h, c)
        layer0 = torch.cat([tokens, tokens], dim=-1)
        return torch.stack([layer0, *outputs]), lengths - 2

    def _bilstm(self, tokens, lengths, h, c):
        """Per direction a stack of LSTMs; the backward one reads each row reversed."""
        halves = []
        # New states in lists, not written into h and c: autograd (attribution) forbids in-place.
        new_h = [[None, None] for _ in range(len(h))]
        new_c = [[None, None] for _ in range(len(c))]
        for d, stack in enumerate(self.lstms):
            x = tokens if d == 0 else reverse_padded(tokens, lengths)
            outs = []
            for k, lstm in enumerate(stack):
                out, new_h[k][d], new_c[k][d] = lstm(x, lengths, h[k, d], c[k, d])
                if self.options.skip and k > 0:
                    out = out + x  # residual connection between LSTM layers
                outs.append(out)
                x = out
            halves.append(outs if d == 0 else [reverse_padded(o, lengths) for o in outs])
        h = torch.stack([torch.stack(pair) for pair in new_h])
        c = torch.stack([torch.stack(pair) for pair in new_c])
        return [torch.cat(pair, dim=-1) for pair in zip(*halves)], h, c

    def _initial_state(self, rows: int, stateful: bool):
        o = self.options
        h = torch.zeros(o.n_layers, 2, rows, o.proj_dim, device=self.device)
        c = torch.zeros(o.n_layers, 2, rows, o.cell_dim, device=self.device)
        if stateful and self._state is not None:
            kept = min(rows, self._state[0].shape[2])
            h[:, :, :kept] = self._state[0][:, :, :kept]
            c[:, :, :kept] = self._state[1][:, :, :kept]
        return h, c

    def _keep_state(self, h: torch.Tensor, c: torch.Tensor) -> None:
        # Rows beyond this batch keep what they had (as the original's stateful encoder).
        if self._state is not None and self._state[0].shape[2] > h.shape[2]:
            old_h, old_c = self._state
            h = torch.cat([h, old_h[:, :, h.shape[2] :]], dim=2)
            c = torch.cat([c, old_c[:, :, c.shape[2] :]], dim=2)
        self._state = (h.clone(), c.clone())

    def _token_vectors(self, words: list[str]) -> torch.Tensor:
        # The char CNN is a pure function of the word: compute each unseen word once.
        found: dict[str, torch.Tensor] = {}
        for w in dict.fromkeys(words):
            if w in self._token_cache:
                self._token_cache.move_to_end(w)
                found[w] = self._token_cache[w]
        missing = [w for w in dict.fromkeys(words) if w not in found]
        if missing:
            chars = words_to_char_tensor(missing, self.options.max_chars).to(self.device)
            # Chunks bound the CNN's [words, positions, filters] activations on big models.
            vecs = torch.cat([self.char_cnn(part) for part in chars.split(CNN_CHUNK_WORDS)])
            for w, vec in zip(missing, vecs):
                found[w] = vec
                self._token_cache[w] = vec.clone()  # not a view pinning the whole chunk
            while len(self._token_cache) > self.cache_words:
                self._token_cache.popitem(last=False)
        if not words:
            return torch.zeros(0, self.options.proj_dim, device=self.device)
        return torch.stack([found[w] for w in words])


def analyze_elmo(
    model: ElmoBiLM, text: str, model_key: str, text_pair: str | None = None,
    max_tokens: int = DEFAULT_MAX_WORDS,
) -> Analysis:
    """The analysis record of one text (or pair): one token per word of `split_words`."""
    return analyze_elmo_batch(model, [text], model_key, [text_pair], max_tokens)[0]


def analyze_elmo_batch(
    model: ElmoBiLM, texts: list[str], model_key: str, pairs: list[str | None] | None = None,
    max_tokens: int = DEFAULT_MAX_WORDS, batch_size: int = 32,
) -> list[Analysis]:
    """Records for many texts, run in stateless batches.

    A pair is read as two sentences, each framed by its own <S> ... </S>: ELMo was trained
    on single sentences, and this keeps the first text's backward LM from seeing the
    second text. `max_tokens` caps the words per record (longest segment cut first).
    """
    if max_tokens < 1:
        raise InputError("The word limit must be at least 1.")
    pairs = pairs if pairs is not None else [None] * len(texts)
    if len(pairs) != len(texts):
        raise InputError("Give one second text (or none) per text.")
    plans = [_plan(text, pair or None, max_tokens) for text, pair in zip(texts, pairs)]
    rows = [seg for plan in plans for seg in plan["kept"]]
    layers = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        layers += model.embed_words([[w.text for w in seg] for seg in chunk])
    records, used = [], 0
    for text, pair, plan in zip(texts, pairs, plans):
        n_seg = len(plan["kept"])
        states = layers[used : used + n_seg]
        records.append(_record(model_key, text, pair or None, plan, states, max_tokens))
        used += n_seg
    return records


def _plan(text: str, pair: str | None, max_tokens: int) -> dict:
    """The words of each segment, and the ones kept under the word limit."""
    segments = [split_words(text, 0)] + ([split_words(pair, 1)] if pair is not None else [])
    if not segments[0]:
        raise InputError("The text is empty: type a sentence for ELMo to read.")
    if len(segments) > 1 and not segments[1]:
        raise InputError("The second text has no words: type a sentence or leave it empty.")
    counts = _longest_first([len(s) for s in segments], max_tokens)
    return {"segments": segments, "kept": [s[:n] for s, n in zip(segments, counts)]}


def _longest_first(counts: list[int], cap: int) -> list[int]:
    """Cut words from the longest segment until the total fits `cap` (as HF tokenizers)."""
    counts = list(counts)
    while sum(counts) > cap:
        counts[counts.index(max(counts))] -= 1
    return counts


def _record(model_key, text, pair, plan, layers, max_tokens) -> Analysis:
    segments, kept = plan["segments"], plan["kept"]
    words: tuple[Word, ...] = tuple(w for seg in segments for w in seg)
    tokens = [w for seg in kept for w in seg]
    first_index = np.cumsum([0] + [len(s) for s in segments])  # word index of each segment's start
    word_ids = np.concatenate(
        [first_index[s] + np.arange(len(seg)) for s, seg in enumerate(kept)]
    ).astype(np.int64)
    n = len(tokens)
    return Analysis(
        model_key=model_key,
        family=Family.ELMO,
        text=text,
        text_pair=pair,
        tokens=tuple(w.text for w in tokens),
        token_ids=np.full(n, -1, dtype=np.int64),  # ELMo reads characters: no vocabulary ids
        offsets=np.array([[w.start, w.end] for w in tokens], dtype=np.int64).reshape(n, 2),
        word_ids=word_ids,
        special_mask=np.zeros(n, dtype=bool),
        segment_ids=np.array([w.segment for w in tokens], dtype=np.int64),
        words=words,
        acts=Activations.from_arrays(np.concatenate(layers, axis=1).astype(np.float32, copy=False)),
        truncated=n < len(words),
        n_tokens_full=len(words),
        max_tokens=max_tokens,
    )
