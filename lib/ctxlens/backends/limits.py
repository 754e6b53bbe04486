"""The limits that keep one request from taking the server down (environment overrides)."""

from __future__ import annotations

import os

MAX_TOKENS_ENV = "CTXLENS_MAX_TOKENS"
MEMORY_ENV = "CTXLENS_MEMORY_MB"
DEFAULT_MAX_TOKENS = 512  # long-context models too: a 8k-token record is gigabytes of attention
DEFAULT_MEMORY_MB = 2048  # computed activations and results; fits beside the models on a 16 GB laptop


def _positive_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be a whole number (got {raw!r})") from None
    if value < 1:
        raise ValueError(f"{name} must be at least 1 (got {value})")
    return value


def interactive_limit() -> int:
    """The most tokens an interactive view analyses (`CTXLENS_MAX_TOKENS`, default 512)."""
    return _positive_int(MAX_TOKENS_ENV, DEFAULT_MAX_TOKENS)


def memory_budget_bytes() -> int:
    """The byte budget of the one cache of activations and results (`CTXLENS_MEMORY_MB`)."""
    return _positive_int(MEMORY_ENV, DEFAULT_MEMORY_MB) * 2**20
