"""Shared helpers for the benchmarks: timing, inputs of a given token length, models."""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = (
    "the river bank was muddy after the storm and she walked to the bank to deposit her "
    "money while children played by the water"
).split()


def finish_gpu_work() -> None:
    """Wait for queued CUDA kernels, so a timing covers the work and not just its launch."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def best_time(fn, repeat: int) -> tuple[float, object]:
    """Fastest of `repeat` runs in seconds (the least disturbed by other work), and the result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        finish_gpu_work()
        start = time.perf_counter()
        result = fn()
        finish_gpu_work()
        best = min(best, time.perf_counter() - start)
    return best, result


def timed_side_by_side(fns: dict, repeats: int = 7, warmup: int = 2) -> dict[str, float]:
    """Median seconds of each function, calls interleaved so machine noise hits all alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            finish_gpu_work()
            start = time.perf_counter()
            fn()
            finish_gpu_work()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def text_of_tokens(tokenizer, n_tokens: int, mask: str | None = None) -> str:
    """A natural-looking text whose encoding has about `n_tokens` tokens (specials included)."""
    words: list[str] = []
    while len(tokenizer(" ".join(words))["input_ids"]) < n_tokens:
        words.append(WORDS[len(words) % len(WORDS)])
    if mask:
        words[len(words) // 2] = mask
    return " ".join(words[:-1] if len(words) > 1 else words)


def text_of_exact_tokens(tokenizer, n_tokens: int, prefix: str = "") -> str:
    """A text whose encoding has exactly `n_tokens` tokens (specials included) where the
    tokenizer allows it: `text_of_tokens`'s words, topped up with one-token words ("a")."""
    words = [prefix] if prefix else []
    count = lambda: len(tokenizer(" ".join(words))["input_ids"])  # noqa: E731
    step = 0
    while count() < n_tokens:
        words.append(WORDS[step % len(WORDS)])
        step += 1
    if count() > n_tokens:
        words.pop()
        while count() < n_tokens:
            words.append("a")
    return " ".join(words)


def on_gpu() -> bool:
    from ctxlens.models.device import pick_device

    return pick_device().startswith("cuda")


def rss_bytes() -> int:
    """This process's resident memory now (psutil)."""
    import psutil

    return psutil.Process().memory_info().rss


def peak_rss_bytes() -> int:
    """This process's highest resident memory so far (ru_maxrss, KiB on Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def ratio_line(label: str, a: float, b: float, target: str) -> str:
    return f"{label:58} {a * 1000:9.1f} ms / {b * 1000:9.1f} ms = {a / b:5.2f}x  (target {target})"


def device_line() -> str:
    from ctxlens.models.device import describe_device, pick_device

    return f"device: {describe_device(pick_device())}"
