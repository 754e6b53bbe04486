"""Embedding extraction for 200 sentences: one batched pass vs one sentence at a time.

Target: batched >= 5x faster. Also prints peak memory with the embedded defaults loaded.
"""

from __future__ import annotations

import resource

from common import device_line, timed_side_by_side

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
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory with the embedded defaults loaded: {peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()
