"""Models loaded once per process and shared by every browser session (thread-safe),
and analyses cached by model, text and options."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from ..errors import ModelUnavailable
from ..record import Analysis, Family
from .catalog import ModelSpec
from .device import pick_device
from .loading import LoadedModel, Progress, can_convert, hub_offline, load_hf, resolve_local, spec_for

_models: dict[tuple[str, str], object] = {}
_key_locks: dict[tuple[str, str], threading.Lock] = {}
_registry_lock = threading.Lock()


def get_model(name: str, device: str | None = None, progress: Progress | None = None):
    """The loaded model for a catalog key, hub id or folder; loads it on first use only."""
    spec = spec_for(name)
    device = pick_device(device)
    key = (spec.key, device)
    with _registry_lock:
        if key in _models:
            return _models[key]
        lock = _key_locks.setdefault(key, threading.Lock())
    with lock:  # one loader per model; other sessions wait for it instead of loading twice
        if key not in _models:
            _models[key] = _load(spec, device, progress)
        return _models[key]


def _load(spec: ModelSpec, device: str, progress: Progress | None):
    if spec.family is Family.ELMO:
        from .elmo_loading import load_elmo

        return load_elmo(spec, device, progress)
    return load_hf(spec, device, progress)


def loaded_models() -> list:
    with _registry_lock:
        return list(_models.values())


@dataclass(frozen=True)
class ModelStatus:
    key: str
    state: str  # "ready" | "on disk" | "needs download" | "unavailable"
    detail: str


def model_status(spec: ModelSpec, device: str | None = None) -> ModelStatus:
    """Whether a model is in memory, on disk, downloadable, or unavailable (and why)."""
    device = pick_device(device)
    loaded = _models.get((spec.key, device))
    if loaded is not None:
        mb = getattr(loaded, "memory_bytes", 0) / 2**20
        return ModelStatus(spec.key, "ready", f"loaded on {device}, {mb:,.0f} MB")
    if spec.family is Family.ELMO:
        from .elmo_loading import elmo_local_files

        if elmo_local_files(spec) is not None:
            return ModelStatus(spec.key, "on disk", "weights in the local cache")
    elif resolve_local(spec.source) is not None or can_convert(spec.source):
        return ModelStatus(spec.key, "on disk", "installed; loads on first use")
    if spec.embedded:
        return ModelStatus(spec.key, "unavailable", "its package is not installed")
    if hub_offline():
        return ModelStatus(spec.key, "unavailable", "needs a download, and HF_HUB_OFFLINE is set")
    size = f"about {spec.size_mb} MB" if spec.size_mb else "size unknown"
    return ModelStatus(spec.key, "needs download", size)


class AnalysisCache:
    """A bounded LRU of analysis records keyed by (model, device, texts, options)."""

    def __init__(self, max_items: int = 256):
        self.max_items = max_items
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, key, compute):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = compute()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
        return value


_cache = AnalysisCache()


def analyze_text(
    name: str, text: str, text_pair: str | None = None, *,
    device: str | None = None, max_tokens: int | None = None, progress: Progress | None = None,
) -> Analysis:
    """Load (once) and analyse (once per distinct input): the entry point views use."""
    lm = get_model(name, device, progress)
    key = (lm.spec.key, lm.device, text, text_pair, max_tokens)
    return _cache.get_or_compute(key, lambda: run_analysis(lm, [text], [text_pair], max_tokens)[0])


def analyze_texts(
    name: str, texts: list[str], *, device: str | None = None, max_tokens: int | None = None,
    progress: Progress | None = None, hidden_only: bool = False,
) -> list[Analysis]:
    """Many sentences in one batched pass (not cached: used for sentence collections).

    hidden_only: records without attentions and head output (for embedding views).
    """
    lm = get_model(name, device, progress)
    return analyze_in_batches(lm, texts, max_tokens=max_tokens, hidden_only=hidden_only)


def analyze_in_batches(
    lm, texts: list[str], *, batch_size: int = 32, max_tokens: int | None = None,
    hidden_only: bool = False, progress: Progress | None = None,
) -> list[Analysis]:
    """Batches of similar length (little padding to compute), results in the input order.

    HF texts are tokenised once up front and sorted by token count; ELMo's by characters.
    """
    if isinstance(lm, LoadedModel):
        from .hf import analyze_encoded, encode_texts

        encoded = encode_texts(lm, texts, None, max_tokens)
        lengths = [len(e.input_ids) for e in encoded]

        def run(chunk):
            return analyze_encoded(lm, [encoded[i] for i in chunk], hidden_only)
    else:
        lengths = [len(t) for t in texts]

        def run(chunk):
            return lm.analyze_batch([texts[i] for i in chunk], None, max_tokens)
    order = sorted(range(len(texts)), key=lengths.__getitem__)
    records: list[Analysis | None] = [None] * len(texts)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        for i, record in zip(chunk, run(chunk)):
            records[i] = record
        if progress:
            progress(min(1.0, (start + len(chunk)) / len(order)), f"Analysed {start + len(chunk)} of {len(order)}")
    return records


def run_analysis(lm, texts, pairs, max_tokens, hidden_only: bool = False) -> list[Analysis]:
    if isinstance(lm, LoadedModel):
        from .hf import analyze_batch

        return analyze_batch(lm, texts, pairs, max_tokens, hidden_only)
    return lm.analyze_batch(texts, pairs, max_tokens)  # ELMo: hidden states are all it has


def forget_model(name: str) -> None:
    """Drop a loaded model (tests, or freeing memory from the UI)."""
    with _registry_lock:
        for key in [k for k in _models if k[0] == name]:
            del _models[key]


__all__ = [
    "ModelUnavailable", "get_model", "model_status", "analyze_text", "analyze_texts",
    "loaded_models", "forget_model",
]
