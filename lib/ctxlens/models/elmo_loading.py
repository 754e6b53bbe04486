"""ELMo in the registry: find (tiny package copy, cache, download) and load a biLM."""

from __future__ import annotations

from pathlib import Path

from .catalog import ModelSpec
from .device import pick_device
from ..backends.elmo import LoadedElmo
from .elmo import ElmoBiLM
from .elmo_catalog import TINY_ELMO_KEY, cached_elmo_paths, download_elmo, elmo_entry, tiny_elmo_paths
from .loading import Progress, cache_root


def _elmo_cache() -> Path:
    return cache_root() / "elmo"


def elmo_local_files(spec: ModelSpec) -> tuple[Path, Path] | None:
    if spec.key == TINY_ELMO_KEY:
        return tiny_elmo_paths()
    return cached_elmo_paths(elmo_entry(spec.key), _elmo_cache())


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
