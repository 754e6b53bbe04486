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


def pick_dtype(device: str) -> torch.dtype:
    """Half precision on GPUs (bf16 where supported), float32 on the CPU."""
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


def describe_device(device: str) -> str:
    if device.startswith("cuda"):
        return f"CUDA GPU: {torch.cuda.get_device_name(torch.device(device))}"
    if device == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"
