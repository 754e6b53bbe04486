"""Where models run: CUDA, then Apple MPS, then CPU; `CTXLENS_DEVICE` overrides."""

from __future__ import annotations

import os

import torch

DEVICE_ENV = "CTXLENS_DEVICE"


def available_devices() -> list[str]:
    devices = ["cpu"]
    if torch.backends.mps.is_available():
        devices.insert(0, "mps")
    if torch.cuda.is_available():
        devices.insert(0, "cuda")
    return devices


def pick_device(override: str | None = None) -> str:
    """The explicit choice, else the environment variable, else the best available."""
    choice = (override or os.environ.get(DEVICE_ENV, "") or "auto").strip().lower()
    if choice == "auto":
        return available_devices()[0]
    if choice.split(":")[0] not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {choice!r}: use auto, cpu, cuda or mps")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("CUDA was asked for but no CUDA GPU is available")
    if choice == "mps" and not torch.backends.mps.is_available():
        raise ValueError("MPS was asked for but Apple's Metal backend is not available")
    return choice


DTYPE_ENV = "CTXLENS_DTYPE"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
FIT_FRACTION = 0.8  # float32 weights above this share of the GPU's memory leave too little for work


def requested_dtype(override: str | None = None) -> str:
    """The explicit choice, else `CTXLENS_DTYPE`, else "auto" (float32 where it fits)."""
    choice = (override or os.environ.get(DTYPE_ENV, "") or "auto").strip().lower()
    if choice not in ("auto", "half", *DTYPES):
        raise ValueError(f"unknown precision {choice!r}: use auto, float32, bfloat16, float16 or half")
    return choice


def pick_dtype(device: str, override: str | None = None, float32_bytes: int = 0) -> torch.dtype:
    """float32 on every device, so a GPU page shows the numbers a CPU page shows; half
    precision only when asked for, or on a GPU whose memory float32 weights would not fit."""
    choice = requested_dtype(override)
    if choice in DTYPES:
        return DTYPES[choice]
    half = _half_for(device)
    if choice == "half":
        return half
    if device.startswith("cuda") and float32_bytes > FIT_FRACTION * _cuda_memory(device):
        return half
    return torch.float32


def _half_for(device: str) -> torch.dtype:
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16 if device != "cpu" else torch.bfloat16


def _cuda_memory(device: str) -> int:
    return torch.cuda.get_device_properties(torch.device(device)).total_memory


def describe_device(device: str) -> str:
    if device.startswith("cuda"):
        return f"CUDA GPU: {torch.cuda.get_device_name(torch.device(device))}"
    if device == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"
