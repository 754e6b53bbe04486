"""Embedding extraction for 200 sentences: one batched pass vs one sentence at a time.

Target: batched >= 5x faster. Batching pays by turning many small matrix products into few
large ones; once those run at the machine's matrix-multiply peak nothing more is to be had.
So the script also measures that peak (a plain large matmul, in the same run) and prints how
close the batched pass gets, and the best ratio any batching could reach here. Also prints
peak memory with the embedded defaults loaded.
"""

from __future__ import annotations

import resource

import torch
from common import best_time, device_line, timed_side_by_side

from ctxlens.analysis.contextuality import load_corpus
from ctxlens.models.catalog import DEFAULT_KEYS
from ctxlens.models.device import pick_device
from ctxlens.models.registry import analyze_in_batches, get_model, run_analysis

N_SENTENCES = 200
BATCH = 32


def batched(lm, sentences):
    analyze_in_batches(lm, sentences, batch_size=BATCH, hidden_only=True)


def one_at_a_time(lm, sentences):
    for sentence in sentences:
        run_analysis(lm, [sentence], None, None, hidden_only=True)


def matmul_flops(lm, sentences) -> float:
    """Floating-point operations of the batched pass's linear layers (2 per multiply-add),
    padding included: batches hold sentences of similar token counts, as analyze_in_batches."""
    weights = sum(m.weight.numel() for m in lm.model.base_model.modules() if isinstance(m, torch.nn.Linear))
    lengths = sorted(len(e.input_ids) for e in lm.encode(sentences))
    padded = sum(max(lengths[i : i + BATCH]) * len(lengths[i : i + BATCH]) for i in range(0, len(lengths), BATCH))
    return 2.0 * weights * padded


def matmul_peak(lm, repeats: int = 10) -> float:
    """FLOP/s of the best of `repeats` large products of the model's own feed-forward shape
    (hidden -> intermediate), device and precision: the ceiling for batching."""
    config = lm.model.config
    a = torch.randn(4096, config.hidden_size, device=lm.device, dtype=lm.dtype)
    b = torch.randn(config.hidden_size, config.intermediate_size, device=lm.device, dtype=lm.dtype)
    seconds, _ = best_time(lambda: a @ b, repeats)
    return 2.0 * a.shape[0] * a.shape[1] * b.shape[1] / seconds


def main() -> None:
    device = pick_device()
    print(device_line())
    sentences = (load_corpus() * 2)[:N_SENTENCES]
    for key in DEFAULT_KEYS:
        lm = get_model(key, device)
        t = timed_side_by_side(
            {"batched": lambda: batched(lm, sentences), "single": lambda: one_at_a_time(lm, sentences)},
            repeats=2, warmup=1,
        )
        print(
            f"{key:25} {N_SENTENCES} sentences: one at a time {t['single']:.2f} s / batched "
            f"{t['batched']:.2f} s = {t['single'] / t['batched']:.1f}x faster  (target >= 5x)",
            flush=True,
        )
        flops, peak = matmul_flops(lm, sentences), matmul_peak(lm)
        print(
            f"{'':25} batched linear layers at {flops / t['batched'] / 1e9:.0f} GFLOP/s = "
            f"{flops / peak / t['batched']:.0%} of this device's {lm.dtype} matmul peak ({peak / 1e9:.0f} "
            f"GFLOP/s); best ratio any batching could reach here: {t['single'] * peak / flops:.1f}x",
            flush=True,
        )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory with the embedded defaults loaded: {peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()
