"""What the classroom server does for one model, in plain Python: `serve.py` wraps it in a Ray
Serve deployment (batching, HTTP), so the logic here needs no Ray to read or to change.

Records are kept in the process's one cache (`ctxlens.cache`), keyed by the request, so the
sessions of a classroom share them and a later `fetch` finds the record its `analyze` made.
`records` computes what is missing in one batched forward; the deployment feeds it the
requests of every session that arrived together.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import torch

from .backends import wire
from .backends.remote import eager_part, spec_json
from .cache import CACHE
from .errors import CtxlensError, InputError
from .models.registry import check_budget, get_model
from .record import Analysis

BATCH_SIZE = 32


class ModelService:
    def __init__(self, name: str, device: str | None = None, dtype: str | None = None):
        self.name = name
        self.lm = get_model(name, device, dtype=dtype)
        self.batch_sizes: Counter = Counter()  # forward batch size -> how many ran

    # --- small answers (JSON) ---------------------------------------------------------------

    def info(self) -> dict:
        lm = self.lm
        one, two = (lm.estimate_bytes([_Sized(n)]) for n in (1, 2))  # a·t + b·t²: solve for a, b
        quadratic = (two - 2 * one) / 2
        return {
            "name": self.name, "spec": spec_json(lm.spec), "device": lm.device, "precision": lm.precision,
            "max_tokens": lm.max_tokens, "names": sorted(lm.names), "default_names": sorted(lm.default_names),
            "memory_bytes": lm.memory_bytes, "bytes_per_token": [one - quadratic, quadratic],
            "tokenizer": getattr(lm, "tokenizer", None) is not None,
        }

    def stats(self) -> dict:
        return {"batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())}}

    # --- records ----------------------------------------------------------------------------

    def _key(self, request: dict) -> tuple:
        return ("served", self.name, request["text"], request.get("pair"), request["max_tokens"])

    def cached(self, request: dict) -> Analysis | None:
        """The record of `request` if the cache holds it (no forward)."""
        return CACHE.peek(self._key(request))

    def records(self, requests: list[dict]) -> list[Analysis | CtxlensError]:
        """A record per request: cached ones as they are, the rest from batched forwards (one
        per BATCH_SIZE inputs of similar length); a request that cannot be analysed gets its
        error in its place, and the others go on."""
        out: list = [None] * len(requests)
        todo: dict[tuple, list[int]] = {}  # identical requests are computed once
        for i, request in enumerate(requests):
            record = self.cached(request)
            if record is not None:
                out[i] = record
            else:
                todo.setdefault(self._key(request), []).append(i)
        encoded = {}
        for key, where in todo.items():
            try:
                encoded[key] = self.lm.encode([key[2]], [key[3]], key[4])[0]
                check_budget(self.lm, [encoded[key]])
            except CtxlensError as exc:
                encoded.pop(key, None)
                for i in where:
                    out[i] = exc
        keys = sorted(encoded, key=lambda k: (encoded[k].max_tokens, encoded[k].length))
        for start in range(0, len(keys), BATCH_SIZE):
            chunk = keys[start : start + BATCH_SIZE]
            for key, record in zip(chunk, self._forward([encoded[k] for k in chunk])):
                record = CACHE.get_or_compute(key, lambda record=record: record)
                record.acts.on_grow = lambda key=key: CACHE.reweigh(key)
                for i in todo[key]:
                    out[i] = record
        return out

    def _forward(self, encoded: list) -> list[Analysis]:
        """One forward per run of equal `max_tokens` (ELMo reads one limit per batch)."""
        self.batch_sizes[len(encoded)] += 1
        need = self.lm.estimate_bytes(encoded)
        with CACHE.reserve(need):
            out = []
            for limit in sorted({e.max_tokens for e in encoded}):
                out += self.lm.records([e for e in encoded if e.max_tokens == limit])
            return out

    # --- replies (wire format) ----------------------------------------------------------------

    @staticmethod
    def analyze_reply(records: list[Analysis]) -> bytes:
        metas, arrays = [], {}
        for i, record in enumerate(records):
            meta, more = eager_part(record, f"{i}.")
            metas.append(meta)
            arrays.update(more)
        return wire.pack({"records": metas}, arrays)

    @staticmethod
    def fetch_reply(record: Analysis, request: dict) -> bytes:
        """The activations (or slices) a view asked for, or the head's small results."""
        if request.get("head"):
            head = record.head
            arrays = {k: v for k, v in vars(head).items() if k != "kind" and v is not None}
            return wire.pack({"kind": head.kind}, arrays)
        tensors = {}
        for i, item in enumerate(request["items"]):
            name, layer = item["name"], item["layer"]
            if name not in record.acts.available:
                raise InputError(f"{record.model_key} has no activation {name!r}")
            t = record.acts.tensor(name, layer)
            if item.get("index") is not None:
                t = t[wire.index_from_json(item["index"])]
            tensors[str(i)] = t
        return wire.pack({}, tensors)

    def unembed_reply(self, body: bytes) -> bytes:
        meta, tensors = wire.unpack(body)
        with torch.inference_mode():
            hidden = tensors["hidden"].to(self.lm.device)
            return wire.pack({}, {"logits": self.lm.unembed(hidden, int(meta["layer"]))})

    def explain_reply(self, body: bytes) -> bytes:
        """An attribution method run here (methods/attribution.py's `attribute` asks)."""
        from .methods.attribution import Subject, explain_on_server

        asked, _ = wire.unpack(body)
        request = asked["input"]
        record = self.records([request])[0]
        if isinstance(record, Exception):
            raise record
        enc = self.lm.encode([request["text"]], [request.get("pair")], request["max_tokens"])[0]
        return wire.pack(*explain_on_server(self.lm, Subject(enc, record), asked))

    def tokenizer_reply(self) -> bytes:
        """The tokenizer's files, so that a client tokenises as the server does."""
        tokenizer = getattr(self.lm, "tokenizer", None)
        if tokenizer is None:
            return wire.pack({})
        with tempfile.TemporaryDirectory() as folder:
            tokenizer.save_pretrained(folder)
            files = {p.name: torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8)
                     for p in Path(folder).iterdir() if p.is_file() and p.stat().st_size}
        return wire.pack({}, files)


class _Sized:
    """A stand-in input of `length` tokens for `estimate_bytes`."""

    def __init__(self, length: int):
        self.length = length
        self.text, self.text_pair, self.max_tokens = "x " * length, None, length

