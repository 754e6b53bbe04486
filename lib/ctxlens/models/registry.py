"""Models loaded once per process and shared by every browser session (thread-safe), and
analyses kept in the one byte-bounded cache (`ctxlens.cache`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ..backends.limits import memory_budget_bytes
from ..backends.remote import connect, served_info, served_models, server_url
from ..cache import CACHE
from ..errors import InputError, ModelUnavailable, ServerUnavailable
from ..record import RESID, Analysis, Family
from .catalog import ModelSpec
from .device import pick_device, requested_dtype
from .loading import Progress, can_convert, hub_offline, load_hf, resolve_local, spec_for

_models: dict[tuple[str, str, str], object] = {}
_key_locks: dict[tuple[str, str, str], threading.Lock] = {}
_registry_lock = threading.Lock()


def get_model(name: str, device: str | None = None, progress: Progress | None = None,
              dtype: str | None = None):
    """The loaded backend for a catalog key, hub id or folder; loads it on first use only.
    With CTXLENS_SERVER set: the classroom server's model behind the same protocol."""
    if (url := server_url()) is not None:
        return _remote(name, url)
    spec = spec_for(name)
    device = pick_device(device)
    key = (spec.key, device, requested_dtype(dtype))
    with _registry_lock:
        if key in _models:
            return _models[key]
        lock = _key_locks.setdefault(key, threading.Lock())
    with lock:  # one loader per model; other sessions wait for it instead of loading twice
        if key not in _models:
            _models[key] = _load(spec, device, progress, key[2])
        return _models[key]


def _remote(name: str, url: str):
    """A remote backend, kept once it connected (a failure is not kept: the next call retries).
    Connecting asks the server, so it happens outside the registry's lock: a slow or absent
    server must not hold up every other model's `get_model`."""
    key = (name, f"remote:{url}", "")
    with _registry_lock:
        if key in _models:
            return _models[key]
    backend = connect(name, url)
    with _registry_lock:
        return _models.setdefault(key, backend)


def _load(spec: ModelSpec, device: str, progress: Progress | None, dtype: str):
    if spec.family is Family.ELMO:
        from .elmo_loading import load_elmo

        return load_elmo(spec, device, progress)
    return load_hf(spec, device, progress, dtype)


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
    if (url := server_url()) is not None:
        return _served_status(spec, url)
    device = pick_device(device)
    loaded = next((m for (k, d, _), m in list(_models.items()) if k == spec.key and d == device), None)
    if loaded is not None:
        mb = getattr(loaded, "memory_bytes", 0) / 2**20
        return ModelStatus(spec.key, "ready", f"loaded on {device} in {loaded.precision}, {mb:,.0f} MB")
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


def _served_status(spec: ModelSpec, url: str) -> ModelStatus:
    try:
        models = served_models(url)
    except ServerUnavailable as exc:
        return ModelStatus(spec.key, "unavailable", exc.cause)
    info = served_info(models, spec.key)
    if info is None:
        return ModelStatus(spec.key, "unavailable", f"not served by {url}")
    return ModelStatus(spec.key, "ready", f"served by {url} on {info['device']} in {info['precision']}")


def check_budget(lm, encoded, names=None) -> int:
    """Refuse, before the forward, a request whose records would not fit the memory budget;
    else return their estimated bytes."""
    need, budget = lm.estimate_bytes(encoded, names), memory_budget_bytes()
    if need > budget:
        raise InputError(
            f"{lm.spec.key}: this input would need about {need / 2**20:,.0f} MB of activations, more "
            f"than the memory budget of {budget / 2**20:,.0f} MB (CTXLENS_MEMORY_MB). Shorten the text."
        )
    return need


def analyze_text(
    name: str, text: str, text_pair: str | None = None, *,
    device: str | None = None, max_tokens: int | None = None, progress: Progress | None = None,
    dtype: str | None = None,
) -> Analysis:
    """Load (once) and analyse (once per distinct input): the entry point views use.

    The input is cut to the interactive limit (CTXLENS_MAX_TOKENS) unless `max_tokens` says
    otherwise; the record says what was cut.
    """
    lm = get_model(name, device, progress, dtype)
    key = ("analysis", lm.spec.key, lm.device, lm.precision, text, text_pair, max_tokens)

    def compute():
        encoded = lm.encode([text], [text_pair], max_tokens)
        with CACHE.reserve(check_budget(lm, encoded)):  # evict before the forward, not after
            record = lm.records(encoded)[0]
        record.acts.on_grow = lambda: CACHE.reweigh(key)
        return record

    return CACHE.get_or_compute(key, compute)


def analyze_texts(
    name: str, texts: list[str], *, device: str | None = None, max_tokens: int | None = None,
    progress: Progress | None = None, hidden_only: bool = False, dtype: str | None = None,
) -> list[Analysis]:
    """Many sentences in batched passes (not cached: used for sentence collections).

    hidden_only: keep only the hidden states (embedding views); other names are computed
    again on request.
    """
    lm = get_model(name, device, progress, dtype)
    return analyze_in_batches(lm, texts, max_tokens=max_tokens, hidden_only=hidden_only)


def analyze_in_batches(
    lm, texts: list[str], *, batch_size: int = 32, max_tokens: int | None = None,
    hidden_only: bool = False, progress: Progress | None = None,
) -> list[Analysis]:
    """Batches of similar length (little padding to compute), results in the input order.

    Texts are encoded once up front and sorted by length before the forwards.
    """
    encoded = lm.encode(texts, None, max_tokens)
    names = frozenset({RESID}) if hidden_only else None
    order = sorted(range(len(texts)), key=lambda i: encoded[i].length)
    records: list[Analysis | None] = [None] * len(texts)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        for i, record in zip(chunk, lm.records([encoded[i] for i in chunk], names)):
            records[i] = record
        if progress:
            progress(min(1.0, (start + len(chunk)) / len(order)), f"Analysed {start + len(chunk)} of {len(order)}")
    return records


def run_analysis(lm, texts, pairs, max_tokens, hidden_only: bool = False) -> list[Analysis]:
    """Not cached, one batch: library code and benchmarks that need a fresh forward."""
    return lm.analyze(texts, pairs, max_tokens, frozenset({RESID}) if hidden_only else None)


def forget_model(name: str) -> None:
    """Drop a loaded model (tests, or freeing memory from the UI)."""
    with _registry_lock:
        for key in [k for k in _models if k[0] == name]:
            del _models[key]


__all__ = [
    "ModelUnavailable", "get_model", "model_status", "analyze_text", "analyze_texts",
    "loaded_models", "forget_model",
]
