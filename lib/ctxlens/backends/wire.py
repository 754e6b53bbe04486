"""The classroom server's wire format: one safetensors blob per message.

Tensors travel as safetensors (raw little-endian bytes in the dtype the model computed in,
no pickle); everything else (texts, tokens, words, options, errors) travels as JSON in the
blob's metadata header. The same format goes both ways, so client and server share these
few functions. Slices of an activation are named by `index_to_json` / `index_from_json`.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from safetensors.torch import load, save

MEDIA_TYPE = "application/x-ctxlens"


def pack(meta: dict, tensors: dict | None = None) -> bytes:
    """`meta` (JSON-able) and named tensors or arrays, as bytes."""
    out = {name: _cpu(t) for name, t in (tensors or {}).items()}
    return save(out, metadata={"meta": json.dumps(meta)})


def unpack(data: bytes) -> tuple[dict, dict[str, torch.Tensor]]:
    """The inverse of `pack`: (meta, tensors on the CPU)."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    meta = json.loads(header.get("__metadata__", {}).get("meta", "{}"))
    return meta, load(data)


def _cpu(t) -> torch.Tensor:
    t = torch.as_tensor(np.ascontiguousarray(t)) if isinstance(t, np.ndarray) else t.detach()
    return t.to("cpu").contiguous()


def index_to_json(index) -> list | None:
    """A view's slice of an activation (ints, slices, integer lists, or a tuple of them), as
    JSON; None when it is not one of those (the caller then fetches the whole tensor)."""
    parts = index if isinstance(index, tuple) else (index,)
    out = []
    for part in parts:
        if isinstance(part, (int, np.integer)) and not isinstance(part, bool):
            out.append({"i": int(part)})
        elif isinstance(part, slice):
            out.append({"s": [_int_or_none(v) for v in (part.start, part.stop, part.step)]})
        elif isinstance(part, (list, np.ndarray)) and np.asarray(part).dtype.kind in "iu":
            out.append({"a": np.asarray(part).ravel().tolist()})
        else:
            return None
    return out


def index_from_json(parts: list) -> tuple:
    out = []
    for part in parts:
        if "i" in part:
            out.append(int(part["i"]))
        elif "s" in part:
            out.append(slice(*part["s"]))
        else:
            out.append(torch.as_tensor(part["a"], dtype=torch.long))
    return tuple(out)


def _int_or_none(v):
    return None if v is None else int(v)
