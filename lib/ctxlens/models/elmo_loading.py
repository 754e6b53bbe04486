"""ELMo in the registry: find (tiny package copy, cache, download) and load a biLM."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .catalog import ModelSpec
from .device import pick_device
from .elmo import DEFAULT_MAX_WORDS, ElmoBiLM, analyze_elmo_batch
from .elmo_catalog import TINY_ELMO_KEY, cached_elmo_paths, download_elmo, elmo_entry, tiny_elmo_paths
from .loading import Progress, cache_root
from ..validate import clean_text


def _elmo_cache() -> Path:
    return cache_root() / "elmo"


def elmo_local_files(spec: ModelSpec) -> tuple[Path, Path] | None:
    if spec.key == TINY_ELMO_KEY:
        return tiny_elmo_paths()
    return cached_elmo_paths(elmo_entry(spec.key), _elmo_cache())


@dataclass
class LoadedElmo:
    """Same surface as a LoadedModel where the registry and pages need it."""

    spec: ModelSpec
    model: ElmoBiLM
    device: str
    max_tokens: int = DEFAULT_MAX_WORDS

    @property
    def memory_bytes(self) -> int:
        return self.model.memory_bytes

    def analyze_batch(self, texts, pairs=None, max_tokens=None):
        limit = min(max_tokens or self.max_tokens, self.max_tokens)
        texts = [clean_text(t) for t in texts]  # the same cleaning as the other families
        pairs = [clean_text(p, "second sentence") if p else None for p in (pairs or [None] * len(texts))]
        return analyze_elmo_batch(self.model, texts, self.spec.key, pairs, limit)


def load_elmo(spec: ModelSpec, device: str | None = None, progress: Progress | None = None) -> LoadedElmo:
    device = pick_device(device)
    paths = elmo_local_files(spec)
    if paths is None:
        def by_bytes(done: int, total: int) -> None:
            if progress and total:
                progress(min(1.0, done / total), f"Downloading {spec.key}")

        paths = download_elmo(elmo_entry(spec.key), _elmo_cache(), by_bytes)
    model = ElmoBiLM.from_files(*paths, device=device, name=spec.key)
    return LoadedElmo(spec, model, device)
