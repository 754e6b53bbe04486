"""The published English ELMo models (AllenNLP), their download, and the tiny test model.

The real models are an options.json plus a weights .hdf5 each, served from AllenNLP's S3
bucket. The package ships only the tiny test model of the allennlp test fixtures: random
weights with the real architecture, for tests and offline demos, never a language model.
"""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from ..errors import ModelUnavailable

_S3 = "https://s3-us-west-2.amazonaws.com/allennlp/models/elmo"
TINY_ELMO_KEY = "elmo-tiny-test"
TINY_ELMO_LABEL = "ELMo tiny test model (random weights, not a language model)"

Progress = Callable[[int, int], None]  # (done_bytes, total_bytes)


@dataclass(frozen=True)
class ElmoEntry:
    key: str
    name: str  # the published model's name
    options_url: str
    weights_url: str
    size_mb: int  # approximate download size (weights; the options file is tiny)
    layers: int  # biLSTM layers (the record has layers + 1 hidden states)
    dim: int  # output width of every layer: 2 x LSTM projection
    lstm_dim: int  # LSTM cell size
    n_highway: int
    description: str = ""

    @property
    def folder_name(self) -> str:
        return self.key


def _entry(key: str, name: str, size_mb: int, proj: int, cell: int, highway: int, desc: str):
    base = f"{_S3}/{name}/elmo_{name}"
    return ElmoEntry(
        key=key, name=name, options_url=f"{base}_options.json", weights_url=f"{base}_weights.hdf5",
        size_mb=size_mb, layers=2, dim=2 * proj, lstm_dim=cell, n_highway=highway,
        description=desc,
    )


ELMO_MODELS: tuple[ElmoEntry, ...] = (
    _entry("elmo-small", "2x1024_128_2048cnn_1xhighway", 54, 128, 1024, 1,
           "Small ELMo (13.6M parameters, 256-dim layers), 1B Word Benchmark."),
    _entry("elmo-medium", "2x2048_256_2048cnn_1xhighway", 112, 256, 2048, 1,
           "Medium ELMo (28M parameters, 512-dim layers), 1B Word Benchmark."),
    _entry("elmo-original", "2x4096_512_2048cnn_2xhighway", 374, 512, 4096, 2,
           "The original ELMo (93.6M parameters, 1024-dim layers), 1B Word Benchmark."),
    _entry("elmo-original-5.5B", "2x4096_512_2048cnn_2xhighway_5.5B", 374, 512, 4096, 2,
           "The original ELMo architecture trained on 5.5B tokens (Wikipedia + news)."),
)


def elmo_entry(key: str) -> ElmoEntry:
    for entry in ELMO_MODELS:
        if entry.key == key:
            return entry
    raise ModelUnavailable(key, "it is not one of the published ELMo models")


def tiny_elmo_paths() -> tuple[Path, Path]:
    """(options.json, lm_weights.hdf5) of the tiny test model shipped with the package."""
    folder = Path(str(files("ctxlens") / "data" / "elmo_tiny"))
    return folder / "options.json", folder / "lm_weights.hdf5"


def elmo_paths(entry: ElmoEntry, cache_dir: str | Path) -> tuple[Path, Path]:
    """Where the model's two files live in the cache (whether or not they are there yet)."""
    folder = Path(cache_dir) / entry.folder_name
    return tuple(folder / url.rsplit("/", 1)[-1] for url in (entry.options_url, entry.weights_url))


def cached_elmo_paths(entry: ElmoEntry, cache_dir: str | Path) -> tuple[Path, Path] | None:
    paths = elmo_paths(entry, cache_dir)
    return paths if all(p.is_file() for p in paths) else None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def download_elmo(
    entry: ElmoEntry, cache_dir: str | Path, progress: Progress | None = None,
    timeout: float = 30.0,
) -> tuple[Path, Path]:
    """Both files of `entry` in `cache_dir/<key>/`, downloading what is missing.

    `progress(done, total)` counts bytes over both files; `total` grows when the next file's
    size becomes known. Each file is written under a temporary name and renamed when
    complete, so an interrupted download never looks like a model.
    """
    cached = cached_elmo_paths(entry, cache_dir)
    if cached is not None:
        return cached
    if _offline():
        raise ModelUnavailable(
            entry.key, "offline mode (HF_HUB_OFFLINE=1) and its files are not in the cache",
            f"Unset HF_HUB_OFFLINE or put the files in {Path(cache_dir) / entry.folder_name}.",
        )
    paths = elmo_paths(entry, cache_dir)
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    counter = [0, 0]  # done, total over both files
    for url, target in zip((entry.options_url, entry.weights_url), paths):
        if not target.is_file():
            _fetch(entry.key, url, target, counter, progress, timeout)
    return paths


def _fetch(key: str, url: str, target: Path, counter: list[int], progress, timeout) -> None:
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            size = int(response.headers.get("Content-Length") or 0)
            counter[1] += size
            got = 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                got += len(chunk)
                counter[0] += len(chunk)
                if progress:
                    progress(counter[0], max(counter[1], counter[0]))
        if size and got != size:
            raise ModelUnavailable(key, f"the download of {url} was cut off ({got}/{size} bytes)")
        os.replace(partial, target)
    except urllib.error.HTTPError as exc:
        cause = f"download failed: the server answered HTTP {exc.code} for {url}"
        raise ModelUnavailable(key, cause) from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModelUnavailable(
            key, f"no network (cannot download {url}: {reason})",
            "Connect to the internet, or copy the options and weight files into the cache.",
        ) from exc
    finally:
        partial.unlink(missing_ok=True)
