"""The limits that keep one request from taking the server down (environment overrides)."""

from __future__ import annotations

import os

MAX_TOKENS_ENV = "CTXLENS_MAX_TOKENS"
MEMORY_ENV = "CTXLENS_MEMORY_MB"
REQUEST_TOKENS_ENV = "CTXLENS_REQUEST_TOKENS"
DEFAULT_MAX_TOKENS = 512  # long-context models too: a 8k-token record is gigabytes of attention
# A classroom's list (60 sentences of ~20 tokens: 1,320 with the special tokens) passes
# whole; a long QA context is read in 2 windows of 512 tokens (3 windows took 3.9x the time
# of one 512-token input here: attention grows faster than the tokens); a 100,000-character
# paste into any page stays within 3x of a 512-token input (docs/PERFORMANCE.md, paste_bench).
DEFAULT_REQUEST_TOKENS = 1400
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


def request_token_budget() -> int:
    """The most tokens one request reads in all (`CTXLENS_REQUEST_TOKENS`, default 1,400): the
    sum over a sentence list's sentences, or over the windows of a QA context. Each input is
    still cut to `interactive_limit()` on its own."""
    return _positive_int(REQUEST_TOKENS_ENV, DEFAULT_REQUEST_TOKENS)


def memory_budget_bytes() -> int:
    """The byte budget of the one cache of activations and results (`CTXLENS_MEMORY_MB`)."""
    return _positive_int(MEMORY_ENV, DEFAULT_MEMORY_MB) * 2**20
