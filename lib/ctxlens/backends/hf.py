"""The Hugging Face backend: the only code that runs a transformers model on text.

Each text is tokenised alone (offsets, words, truncation are per text), then all are padded
on the right into one batch. Right padding with an attention mask never changes the real
positions of an encoder or a causal decoder, so a batched record equals a one-at-a-time one.
The forward's outputs stay on the model's device inside each record's `Activations`.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..analysis.tokens import display_tokens
from ..analysis.words import align_tokens_to_words, split_words
from ..errors import CapabilityMissing
from ..models import catalog as cat
from ..models.catalog import ModelSpec
from ..record import (
    ATTN, CLASS_LOGITS, END_LOGITS, KEY, LOGITS, NO_HEAD, NSP_LOGITS, QUERY, RESID, START_LOGITS,
    Activations, Analysis, Family, HeadOutput,
)
from ..validate import clean_text
from . import architectures as arch
from .capture import capturing_queries_keys, repeat_groups
from .limits import interactive_limit

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

    @property
    def length(self) -> int:
        return len(self.input_ids)

    @property
    def n_tokens(self) -> int:
        """The tokens the model reads (what a request's token budget counts)."""
        return len(self.input_ids)


@dataclass
class LoadedModel:
    """A Hugging Face model ready to read text: the HF implementation of the Backend protocol."""

    spec: ModelSpec
    model: torch.nn.Module
    tokenizer: object
    device: str
    dtype: torch.dtype
    max_tokens: int  # the longest input the model itself accepts
    folder: Path

    @property
    def memory_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.model.parameters())

    @property
    def precision(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    @property
    def head_names(self) -> frozenset[str]:
        """The outputs of the head class loaded (`hf_loading._head_class` picks it)."""
        spec = self.spec
        if spec.can(cat.QA_SPANS):
            return frozenset({START_LOGITS, END_LOGITS})
        names = set()
        if spec.can(cat.MLM) or spec.can(cat.NEXT_TOKEN):
            names.add(LOGITS)
        if spec.can(cat.NSP):
            names.add(NSP_LOGITS)
        if not names and (spec.can(cat.SEQ_CLASS) or spec.can(cat.TOKEN_CLASS)):
            names.add(CLASS_LOGITS)
        return frozenset(names)

    @property
    def names(self) -> frozenset[str]:
        """Every activation this model can produce."""
        return frozenset({RESID, ATTN, QUERY, KEY}) | self.head_names

    @property
    def default_names(self) -> frozenset[str]:
        """What one interactive forward keeps: it costs the same as a bare forward."""
        return frozenset({RESID, ATTN}) | self.head_names

    # --- the Backend protocol --------------------------------------------------------------

    def encode(self, texts: list[str], pairs: list[str | None] | None = None,
               max_tokens: int | None = None) -> list[Encoded]:
        """Clean and tokenise each text once, cut to `max_tokens` (default: the interactive
        limit) and never past the model's own limit."""
        pairs = pairs or [None] * len(texts)
        limit = min(max_tokens or interactive_limit(), self.max_tokens)
        return [_encode(self, t, p, limit) for t, p in zip(texts, pairs)]

    def run(self, encoded: list[Encoded], names, grad: bool = False) -> list[dict]:
        """One forward over the batch; per text, {(name, layer): tensor} on the device.

        grad: build the autograd graph (attribution); otherwise inference mode.
        """
        batch = self.forward(self.batch_inputs(encoded), names, grad)
        return [_row(batch, row, e.length, len(encoded) > 1) for row, e in enumerate(encoded)]

    def forward(self, inputs: dict, names, grad: bool = False) -> dict:
        """One forward over `batch_inputs` (or the same with `inputs_embeds` in place of
        `input_ids`); {(name, layer): [B, ...] tensor} on the device, rows padded on the right."""
        names = frozenset(names) | {RESID}
        want_head = bool(names & self.head_names)
        network = self.model if want_head else self.model.base_model
        capture = capturing_queries_keys() if names & {QUERY, KEY} else nullcontext(None)
        with (torch.enable_grad() if grad else torch.inference_mode()), capture as qk:
            out = network(**inputs, output_hidden_states=True, output_attentions=ATTN in names, return_dict=True)
        return self._outputs(out, qk, names)

    def heads(self, inputs: dict, grad: bool = False, at: int | None = None) -> dict[str, torch.Tensor]:
        """The trained heads' batched outputs {name: [B, ...]} for `inputs` (see `forward`).

        at: a vocabulary head's logits at that token only, [B, 1, V]. A masked or causal LM
        head over every position of a 64-token input costs as much as MiniLM's encoder (and
        its backward as much again); attribution and ablation read one position.
        """
        if at is not None and self.head_names == {LOGITS}:
            last = self.model.config.num_hidden_layers
            hidden = self.forward(inputs, {RESID}, grad)[(RESID, last)][:, at:at + 1]
            try:
                with torch.enable_grad() if grad else torch.inference_mode():
                    return {LOGITS: self.unembed(hidden, last)}
            except CapabilityMissing:  # no row for this architecture: the whole head
                pass
        batch = self.forward(inputs, self.head_names, grad)
        return {name: t for (name, _), t in batch.items() if name in self.head_names}

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The word embeddings of `input_ids` (what `inputs_embeds` replaces: no positions or
        segments), on the device."""
        return self.model.get_input_embeddings()(input_ids)

    def ablating(self, keep_heads: torch.Tensor | None = None, keep_mlps: torch.Tensor | None = None,
                 replay: list | None = None):
        """A context in which this thread's forwards knock out, per batch row, the heads
        (`keep_heads` [B, L, H], 0 = knocked out) and the MLPs (`keep_mlps` [B, L]); with
        `replay` (from `recording_layers`) the layers before the first knockout are not recomputed."""
        return arch.ablating(self.model, keep_heads, keep_mlps, replay)

    def recording_layers(self):
        """A context yielding a list that fills with each layer's output during this thread's
        forwards (of one input: what `ablating(replay=...)` takes)."""
        return arch.recording_layers(self.model)

    def batch_inputs(self, encoded: list[Encoded]) -> dict:
        """The model's keyword inputs for `encoded`, padded on the right, on the device."""
        width = max(e.length for e in encoded)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        types = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, e in enumerate(encoded):
            ids[row, : e.length] = torch.tensor(e.input_ids)
            mask[row, : e.length] = 1
            if e.token_type_ids is not None:
                types[row, : e.length] = torch.tensor(e.token_type_ids)
        inputs = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}
        if encoded[0].token_type_ids is not None:
            inputs["token_type_ids"] = types.to(self.device)
        return inputs

    def unembed(self, hidden: torch.Tensor, layer: int) -> torch.Tensor:
        """The model's own head applied to a hidden state of `layer` (the logit lens).

        Hugging Face's last hidden state already went through the final norm, so a causal
        model's norm is applied to the earlier layers only: the top layer's lens is the
        model's own prediction.
        """
        if self.spec.family is Family.CAUSAL_LM:
            norm, head = arch.final_norm(self.model), self.model.get_output_embeddings()
            if norm is None or head is None:
                raise CapabilityMissing(self._no_lens("final norm"))
            return head(hidden if layer == self.model.config.num_hidden_layers else norm(hidden))
        head = arch.mlm_head(self.model)
        if head is None:
            raise CapabilityMissing(self._no_lens("MLM head"))
        return head(hidden)

    def records(self, encoded: list[Encoded], names=None) -> list[Analysis]:
        """One record per encoded text from one forward over all of them."""
        names = frozenset(names or self.default_names)
        rows = self.run(encoded, names)
        return [self._record(e, tensors) for e, tensors in zip(encoded, rows)]

    def analyze(self, texts, pairs=None, max_tokens=None, names=None) -> list[Analysis]:
        return self.records(self.encode(texts, pairs, max_tokens), names)

    def estimate_bytes(self, encoded: list[Encoded], names=None) -> int:
        """What the records of `encoded` will hold, before running the forward."""
        names = frozenset(names or self.default_names) | {RESID}
        config, size = self.model.config, torch.finfo(self.dtype).bits // 8
        layers, heads = config.num_hidden_layers, config.num_attention_heads
        width, vocab = config.hidden_size, config.vocab_size
        total = 0
        for t in (e.length for e in encoded):
            total += (layers + 1) * t * width
            total += layers * heads * t * t if ATTN in names else 0
            total += t * vocab if LOGITS in names else 0
            total += 2 * t * width * layers if names & {QUERY, KEY} else 0
        return total * size

    # --- internals -------------------------------------------------------------------------

    def _no_lens(self, part: str) -> str:
        kind = getattr(self.model.config, "model_type", "?")
        return (f"The logit lens does not know the {part} of '{self.spec.key}' (model type {kind!r}); "
                "add a row for it in backends/architectures.py.")

    def _outputs(self, out, qk, names) -> dict:
        """The forward's outputs by (name, layer), whole batch."""
        tensors = {(RESID, i): h for i, h in enumerate(out.hidden_states)}
        if ATTN in names and getattr(out, "attentions", None):
            tensors.update({(ATTN, i): a for i, a in enumerate(out.attentions)})
        if qk is not None:
            for i, (q, k, scaling) in enumerate(qk):
                # Scaled so that softmax(q·kᵀ/√d + mask) is the attention, whatever the model's
                # own scaling (bertviz divides by √d); the factor is exactly 1 for most models.
                factor = scaling * q.shape[-1] ** 0.5
                tensors[(QUERY, i)] = q * factor if factor != 1.0 else q
                tensors[(KEY, i)] = repeat_groups(k, q.shape[1])
        if LOGITS in names and LOGITS in self.head_names:
            logits = getattr(out, "prediction_logits", None)
            tensors[(LOGITS, None)] = out.logits if logits is None else logits
        if NSP_LOGITS in names and getattr(out, "seq_relationship_logits", None) is not None:
            tensors[(NSP_LOGITS, None)] = out.seq_relationship_logits
        if START_LOGITS in names and START_LOGITS in self.head_names:
            tensors[(START_LOGITS, None)] = out.start_logits
            tensors[(END_LOGITS, None)] = out.end_logits
        if CLASS_LOGITS in names and CLASS_LOGITS in self.head_names:
            tensors[(CLASS_LOGITS, None)] = out.logits
        return tensors

    def _record(self, enc: Encoded, tensors: dict) -> Analysis:
        words = _words_read(enc)
        raw = self.tokenizer.convert_ids_to_tokens(enc.input_ids)
        acts = Activations(tensors, compute=lambda missing: self.run([enc], missing)[0], available=self.names)
        return Analysis(
            model_key=self.spec.key, family=self.spec.family, text=enc.text, text_pair=enc.text_pair,
            tokens=display_tokens(raw, self.tokenizer, enc.special_mask),
            token_ids=np.array(enc.input_ids, dtype=np.int64), offsets=enc.offsets,
            word_ids=align_tokens_to_words(enc.offsets, enc.special_mask, enc.segment_ids, words),
            special_mask=enc.special_mask, segment_ids=enc.segment_ids, words=tuple(words), acts=acts,
            truncated=enc.n_tokens_full > enc.length, n_tokens_full=enc.n_tokens_full,
            max_tokens=enc.max_tokens, precision=self.precision,
            head_reader=self._read_head if self.head_names else None,
        )

    def _read_head(self, record: Analysis) -> HeadOutput:
        """The head's small results, computed on the device; only they cross to the CPU."""
        acts, spec = record.acts, self.spec
        if START_LOGITS in self.head_names:
            return HeadOutput(kind="qa", start_logits=acts.numpy(START_LOGITS), end_logits=acts.numpy(END_LOGITS))
        if LOGITS not in self.head_names:
            return NO_HEAD
        logits = acts.tensor(LOGITS).float()
        if spec.family is Family.CAUSAL_LM:
            logprobs = torch.log_softmax(logits, dim=-1)
            ids = torch.as_tensor(record.token_ids[1:], device=logits.device)
            token_logprobs = np.full(record.n_tokens, np.nan, dtype=np.float32)
            token_logprobs[1:] = acts.to_numpy(logprobs[:-1].gather(1, ids[:, None])[:, 0])
            return HeadOutput(
                kind="next-token", **_top_k(acts, logprobs, normalised=True),
                positions=np.array([record.n_tokens - 1]), logits=acts.to_numpy(logits[-1:]),
                token_logprobs=token_logprobs,
            )
        positions = np.flatnonzero(record.token_ids == self.tokenizer.mask_token_id)
        return HeadOutput(
            kind="mlm", **_top_k(acts, logits), positions=positions,
            logits=acts.to_numpy(logits[torch.as_tensor(positions, device=logits.device)]),
            nsp_logits=acts.numpy(NSP_LOGITS) if acts.has(NSP_LOGITS) else None,
        )


def _row(batch: dict, row: int, n: int, batched: bool) -> dict:
    """One text's slices of the batch outputs (its `n` real tokens); copies when batched, so
    a cached record never keeps the whole batch alive."""
    own = (lambda t: t.clone()) if batched else (lambda t: t)
    out = {}
    for (name, layer), t in batch.items():
        t = t[row]
        if name == ATTN:
            t = t[:, :n, :n]
        elif name in (QUERY, KEY):
            t = t[:, :n]
        elif name != NSP_LOGITS and not (name == CLASS_LOGITS and t.dim() == 1):
            t = t[:n]  # [T, ...]: hidden states, logits, span logits, token classes
        out[(name, layer)] = own(t)
    return out


def _top_k(acts: Activations, scores: torch.Tensor, k: int = TOP_K, normalised: bool = False) -> dict:
    """Top-k ids and probabilities; `normalised` scores are log-probabilities already, which
    spares a second softmax over the whole vocabulary at every position."""
    k = min(k, scores.shape[-1])
    top = (scores if normalised else torch.softmax(scores, dim=-1)).topk(k, dim=-1)
    probs = top.values.exp() if normalised else top.values
    return {"top_ids": acts.to_numpy(top.indices), "top_probs": acts.to_numpy(probs)}


def analyze(lm: LoadedModel, text: str, text_pair: str | None = None, max_tokens: int | None = None,
            names=None) -> Analysis:
    """One text (or pair), not cached: library code that needs a fresh forward."""
    return lm.analyze([text], [text_pair], max_tokens, names)[0]


def _words_read(enc: Encoded) -> list:
    """The words of the text (and pair) that the kept tokens reach: a 100,000-character paste
    cut to 512 tokens keeps ~500 words, not 20,000 that no view can show."""
    words = split_words(enc.text, 0) + (split_words(enc.text_pair, 1) if enc.text_pair else [])
    if enc.n_tokens_full == enc.length:
        return words
    real = ~enc.special_mask
    ends = {s: int(enc.offsets[real & (enc.segment_ids == s), 1].max(initial=0)) for s in (0, 1)}
    return [w for w in words if w.start < ends[w.segment]]


def _encode(lm: LoadedModel, text: str, text_pair: str | None, limit: int) -> Encoded:
    text = clean_text(text)
    text_pair = clean_text(text_pair, "second sentence") if text_pair is not None else None
    enc = _tokenize(lm.tokenizer, text, text_pair, None)
    n_full = len(enc["input_ids"])
    if n_full > limit:  # rare: only over-long inputs pay for a second, truncating pass
        enc = _tokenize(lm.tokenizer, text, text_pair, limit)
    ids = enc["input_ids"]
    # A [MASK] or [SEP] typed in the text is special; [UNK] is not: it stands for a real word
    # the vocabulary lacks (süß, an emoji), which keeps its place and its vector in every view.
    typed_specials = [i for i in lm.tokenizer.all_special_ids if i != lm.tokenizer.unk_token_id]
    special = np.array(enc["special_tokens_mask"], dtype=bool) | np.isin(ids, typed_specials)
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
