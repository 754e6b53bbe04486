"""The remote backend: a model behind the classroom server (`ctxlens serve`), same protocol.

With `CTXLENS_SERVER` set, `models.registry.get_model` hands out a `RemoteBackend` instead of
loading weights. Its records are lazy like local ones, but their activations live on the
server: the eager facts of a record (tokens, offsets, words) come back from one batched
`analyze` call, and each activation, or only the slice a view asks for, is fetched when a
view first needs it (`RemoteActivations`). The server keeps its records in its own cache and
recomputes one it has evicted, or lost in a restart, so a record held here never goes stale.

Attribution runs on the server whole (`methods.attribution.attribute`: its gradients need the
weights). What drives the weights from this process (knock-outs, generation, QA windows,
classifiers) raises CapabilityMissing with that reason. The tokenizer is shipped once from the server, so views that read it work as they do locally.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, fields
from functools import cached_property

import numpy as np
import torch

from ..analysis.words import split_words
from ..errors import CapabilityMissing, CtxlensError, InputError, ModelUnavailable, ServerUnavailable
from ..models.catalog import ModelSpec
from ..record import LAYERED, RESID, Activations, Analysis, Family, HeadOutput, Word
from ..validate import clean_text
from . import wire
from .limits import interactive_limit

SERVER_ENV = "CTXLENS_SERVER"
TIMEOUT_S = float(os.environ.get("CTXLENS_SERVER_TIMEOUT", "120"))  # a cold batch of long inputs
ERRORS = {"InputError": InputError, "CapabilityMissing": CapabilityMissing}
# What a view reaches for on a local model that only the server's process can do.
LOCAL_ONLY = frozenset({"model", "heads", "embed", "forward", "batch_inputs", "ablating", "recording_layers"})
EAGER_ARRAYS = ("token_ids", "offsets", "word_ids", "special_mask", "segment_ids")


def server_url() -> str | None:
    """The classroom server's base URL, when the app should use one."""
    url = os.environ.get(SERVER_ENV, "").strip().rstrip("/")
    return url or None


class RemoteUnsupported(CapabilityMissing, AttributeError):
    """A local-only part of a backend asked of a remote one (an AttributeError too, so
    `getattr(lm, name, default)` still answers the default)."""


# --- HTTP -------------------------------------------------------------------------------------


class Client:
    """The server's HTTP API: JSON for small answers, the wire format for records."""

    def __init__(self, url: str, timeout: float = TIMEOUT_S):
        self.url, self.timeout = url, timeout

    def get_json(self, path: str, **params):
        return json.loads(self._call(path, params))

    def post(self, path: str, body: bytes, **params) -> tuple[dict, dict]:
        return wire.unpack(self._call(path, params, body))

    def _call(self, path: str, params: dict, body: bytes | None = None) -> bytes:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        request = urllib.request.Request(f"{self.url}{path}{query}", data=body,
                                         headers={"Content-Type": wire.MEDIA_TYPE} if body else {})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            raise _server_error(self.url, exc) from None
        except (urllib.error.URLError, OSError) as exc:  # refused, reset, timed out
            raise ServerUnavailable(self.url, str(getattr(exc, "reason", exc))) from None


def _server_error(url: str, exc: urllib.error.HTTPError) -> CtxlensError:
    """The server's own message, as the error class it was raised as there."""
    try:
        answer = json.loads(exc.read())
    except ValueError:
        answer = {}
    message = answer.get("message") or f"HTTP {exc.code}"
    if exc.code == 503 or answer.get("error") == "ServerUnavailable":
        return ServerUnavailable(url, message)
    return ERRORS.get(answer.get("error"), CtxlensError)(message)


# --- inputs and records ---------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteInput:
    """A text to analyse on the server; the server tokenises it again (it owns the record)."""

    text: str
    text_pair: str | None
    max_tokens: int
    n_tokens: int  # what a request's token budget counts (the tokenizer's count, or words)

    @property
    def length(self) -> int:
        return self.n_tokens

    def to_json(self) -> dict:
        return {"text": self.text, "pair": self.text_pair, "max_tokens": self.max_tokens}


def eager_part(record: Analysis, prefix: str) -> tuple[dict, dict]:
    """What a record carries eagerly, as (JSON, arrays) for the wire (server side)."""
    meta = {
        "model_key": record.model_key, "family": record.family.value, "text": record.text,
        "text_pair": record.text_pair, "tokens": list(record.tokens), "words": [list(w) for w in record.words],
        "truncated": record.truncated, "n_tokens_full": record.n_tokens_full, "max_tokens": record.max_tokens,
        "precision": record.precision, "layers": record.n_layers, "head": record.head_reader is not None,
    }
    return meta, {f"{prefix}{name}": getattr(record, name) for name in EAGER_ARRAYS}


class RemoteActivations(Activations):
    """Activations fetched from the server on first use: a whole name (every layer, in one
    request), one layer of it, or one slice of one layer (not kept: a view's slices differ)."""

    def __init__(self, fetch, n_layers: int, available):
        super().__init__(available=available)
        self._fetch, self._n_layers = fetch, n_layers

    def _layer_count(self, name: str) -> int:
        return self._n_layers + 1 if name == RESID else self._n_layers

    def _keys(self, name: str) -> list[tuple[str, int | None]]:
        return [(name, i) for i in range(self._layer_count(name))] if name in LAYERED else [(name, None)]

    def ensure(self, *names: str) -> None:
        with self._lock:
            unknown = set(names) - self.available
            if unknown:
                raise KeyError(f"this record has no {', '.join(sorted(unknown))}")
            missing = [k for n in names for k in self._keys(n) if k not in self._tensors]
            if missing:
                self._tensors.update(zip(missing, self._fetch(missing)))
        if missing:
            self._grew()

    def tensor(self, name: str, layer: int | None = None) -> torch.Tensor:
        with self._lock:
            if (name, layer) not in self._tensors:
                if name not in self.available:
                    raise KeyError(f"this record has no {name}")
                self._tensors[(name, layer)] = self._fetch([(name, layer)])[0]
                grew = True
            else:
                grew = False
        if grew:
            self._grew()
        return self._tensors[(name, layer)]

    def count(self, name: str) -> int:
        return self._layer_count(name) if name in LAYERED else 1

    def numpy(self, name: str, layer: int | None = None, index=()) -> np.ndarray:
        with self._lock:
            local = (name, layer) in self._tensors
        parts = wire.index_to_json(index)
        if local or index == () or parts is None:
            return super().numpy(name, layer, index)
        return self.to_numpy(self._fetch([(name, layer)], [parts])[0])


# --- the backend ----------------------------------------------------------------------------


class RemoteBackend:
    """One model of the classroom server behind the Backend protocol."""

    def __init__(self, name: str, client: Client, info: dict):
        self.name, self.client = name, client
        self.spec = _spec(info["spec"])
        self.device = f"{info['device']} on {client.url}"
        self.max_tokens = int(info["max_tokens"])
        self.precision = info["precision"]
        self.names = frozenset(info["names"])
        self.default_names = frozenset(info["default_names"])
        self.memory_bytes = int(info["memory_bytes"])
        self._bytes_per_token = info["bytes_per_token"]  # [linear, quadratic] coefficients
        self._has_tokenizer = bool(info["tokenizer"])

    def __getattr__(self, name: str):
        if name in LOCAL_ONLY:
            raise self._local_only()
        raise AttributeError(name)

    def _local_only(self) -> RemoteUnsupported:
        return RemoteUnsupported(
            f"This view needs {self.spec.key}'s weights in the app's own process; with {SERVER_ENV} "
            "set the model runs on the classroom server, which answers activations and attribution only. Run "
            "the app without the server for this view."
        )

    @property
    def dtype(self) -> torch.dtype:
        return getattr(torch, self.precision)

    @cached_property
    def tokenizer(self):
        """The server's tokenizer, shipped once and loaded here (token counts, display)."""
        if not self._has_tokenizer:
            raise RemoteUnsupported(f"{self.spec.key} has no sub-word tokenizer.")
        from .hf_loading import read_tokenizer

        _, files = self.call("tokenizer", {})
        folder = tempfile.mkdtemp(prefix="ctxlens-tokenizer-")
        for filename, data in files.items():
            with open(os.path.join(folder, os.path.basename(filename)), "wb") as out:
                out.write(data.numpy().tobytes())
        return read_tokenizer(folder)

    def encode(self, texts: list[str], pairs: list[str | None] | None = None,
               max_tokens: int | None = None) -> list[RemoteInput]:
        """Checked here (the same messages as a local model), tokenised on the server."""
        pairs = pairs or [None] * len(texts)
        limit = min(max_tokens or interactive_limit(), self.max_tokens)
        out = []
        for text, pair in zip(texts, pairs):
            text = clean_text(text)
            pair = clean_text(pair, "second sentence") if pair is not None else None
            out.append(RemoteInput(text, pair, limit, min(self._count(text, pair), limit)))
        return out

    def _count(self, text: str, pair: str | None) -> int:
        if self._has_tokenizer:
            return len(self.tokenizer(text, pair)["input_ids"])
        return len(split_words(text)) + (len(split_words(pair)) if pair else 0)

    def records(self, encoded: list[RemoteInput], names=None) -> list[Analysis]:
        """One `analyze` call for all of them (the server batches them with other sessions')."""
        if not encoded:
            return []
        meta, arrays = self.call("analyze", {"inputs": [e.to_json() for e in encoded]})
        return [self._record(e, m, arrays, f"{i}.") for i, (e, m) in enumerate(zip(encoded, meta["records"]))]

    def analyze(self, texts, pairs=None, max_tokens=None, names=None) -> list[Analysis]:
        return self.records(self.encode(texts, pairs, max_tokens), names)

    def run(self, encoded: list[RemoteInput], names, grad: bool = False) -> list[dict]:
        if grad:  # a backward needs the weights in this process
            raise self._local_only()
        out = []
        for record in self.records(encoded):
            record.acts.ensure(*names)
            out.append(dict(record.acts._tensors))
        return out

    def estimate_bytes(self, encoded: list[RemoteInput], names=None) -> int:
        """What the records would hold here if every default activation were fetched."""
        linear, quadratic = self._bytes_per_token
        return int(sum(linear * e.length + quadratic * e.length**2 for e in encoded))

    def call(self, operation: str, meta: dict, tensors: dict | None = None) -> tuple[dict, dict]:
        """One of the server's operations on this model (serve.OPERATIONS), e.g. a method it
        runs whole (attribution: its gradients need the weights)."""
        return self.client.post(f"/v1/{operation}", wire.pack(meta, tensors), model=self.name)

    def unembed(self, hidden: torch.Tensor, layer: int) -> torch.Tensor:
        _, tensors = self.call("unembed", {"layer": layer}, {"hidden": hidden})
        return tensors["logits"].to(hidden.device)

    # --- internals ------------------------------------------------------------------------

    def _record(self, enc: RemoteInput, meta: dict, arrays: dict, prefix: str) -> Analysis:
        def fetch(items, slices=None):
            return self._fetch(enc, items, slices)

        acts = RemoteActivations(fetch, meta["layers"], self.names)
        eager = {name: arrays[prefix + name].numpy() for name in EAGER_ARRAYS}
        return Analysis(
            model_key=meta["model_key"], family=Family(meta["family"]), text=meta["text"],
            text_pair=meta["text_pair"], tokens=tuple(meta["tokens"]),
            words=tuple(Word(*w) for w in meta["words"]), acts=acts, truncated=meta["truncated"],
            n_tokens_full=meta["n_tokens_full"], max_tokens=meta["max_tokens"], precision=meta["precision"],
            head_reader=(lambda record: self._head(enc)) if meta["head"] else None, **eager,
        )

    def _fetch(self, enc: RemoteInput, items, slices=None) -> list[torch.Tensor]:
        asked = [{"name": n, "layer": layer, "index": s}
                 for (n, layer), s in zip(items, slices or [None] * len(items))]
        _, tensors = self.call("fetch", {"input": enc.to_json(), "items": asked})
        return [tensors[str(i)] for i in range(len(items))]

    def _head(self, enc: RemoteInput) -> HeadOutput:
        meta, tensors = self.call("fetch", {"input": enc.to_json(), "head": True})
        return HeadOutput(kind=meta["kind"], **{k: v.numpy() for k, v in tensors.items()})


def _spec(data: dict) -> ModelSpec:
    values = {f.name: data[f.name] for f in fields(ModelSpec) if f.name in data}
    return ModelSpec(**{**values, "family": Family(values["family"]), "capabilities": frozenset(values["capabilities"])})


def spec_json(spec: ModelSpec) -> dict:
    """The spec as JSON (server side; `_spec` reads it back)."""
    values = {f.name: getattr(spec, f.name) for f in fields(ModelSpec)}
    return {**values, "family": spec.family.value, "capabilities": sorted(spec.capabilities)}


# --- what the server serves (asked once per session rerun: kept a few seconds) ----------------

_served: dict[str, tuple[float, dict | ServerUnavailable]] = {}
_served_lock = threading.Lock()
SERVED_TTL_S = 3.0


def served_models(url: str) -> dict:
    """{name: info} of the models the server serves; raises ServerUnavailable when it is down."""
    with _served_lock:
        at, answer = _served.get(url, (0.0, None))
    if answer is None or time.monotonic() - at > SERVED_TTL_S:
        try:
            answer = {m["name"]: m for m in Client(url, timeout=5).get_json("/v1/models")["models"]}
        except ServerUnavailable as exc:
            answer = exc
        with _served_lock:
            _served[url] = (time.monotonic(), answer)
    if isinstance(answer, ServerUnavailable):
        raise answer
    return answer


def served_info(models: dict, name: str) -> dict | None:
    """The info of model `name` among `served_models`: by the name it is served as, or its key."""
    return models.get(name) or next((m for m in models.values() if m["spec"]["key"] == name), None)


def connect(name: str, url: str) -> RemoteBackend:
    """The remote backend of model `name` (a catalog key, hub id or folder the server serves)."""
    models = served_models(url)
    info = served_info(models, name)
    if info is None:
        raise ModelUnavailable(name, f"the model server at {url} does not serve it",
                               f"It serves: {', '.join(models) or 'nothing'}.")
    return RemoteBackend(info["name"], Client(url), info)
