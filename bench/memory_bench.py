"""Resident memory after many distinct 512-token inputs: does the one byte-bounded cache hold?

Both embedded defaults are loaded, then distinct texts (each over 512 tokens, so the
interactive limit cuts every one to exactly 512) go through `registry.analyze_text`, as the
pages send them; for each record the head's output and one attention layer are read, as the
pages do. CTXLENS_MEMORY_MB is set to 512 for the run (--budget-mb), so the cache must evict.

Baseline: "models" is this process's RSS with both models loaded and warmed up and nothing
cached: after loading, one short analysis per model (safetensors weights are memory-mapped
and only count in RSS once a forward has touched them; the first forward also starts torch's
thread pool), then `CACHE.clear()`. The RSS right after loading is printed too, and so are the
models' own parameter bytes (`lm.memory_bytes`).
Target: RSS after the inputs <= (models + budget) x 1.25. On a CUDA GPU the records live in
GPU memory, which RSS does not see: the same check is then printed for torch's allocated GPU
memory (baseline: allocated with the models loaded and warmed up, nothing cached).

By default MiniLM reads all --inputs texts and SmolLM2 every --causal-every'th one (a
512-token SmolLM2 forward takes over 2 s on a 2-core CPU; `--causal-every 1` sends it every
text, about 15 minutes here).

    python bench/memory_bench.py [--inputs 300] [--causal-every 4] [--budget-mb 512]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import time

from common import WORDS, device_line, peak_rss_bytes, rss_bytes

N_TOKENS = 512
SLACK = 0.25
EXTRA = ["river", "money", "loan", "storm", "boat", "fish", "north", "paper", "music", "garden",
         "😀", "北京", "naïve", "café", "42", "(", ")", ",", ".", "?"]


def distinct_text(i: int, rng: random.Random) -> str:
    """About 700 words (over 512 tokens for both tokenizers), different from every other i."""
    words = [rng.choice(WORDS + EXTRA) for _ in range(700)]
    return f"Input {i}: " + " ".join(words)


def mb(n: float) -> str:
    return f"{n / 2**20:,.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=300)
    parser.add_argument("--causal-every", type=int, default=4, help="SmolLM2 reads every n-th input")
    parser.add_argument("--budget-mb", type=int, default=512)
    args = parser.parse_args()
    os.environ["CTXLENS_MEMORY_MB"] = str(args.budget_mb)  # read at every store

    import torch

    from ctxlens.cache import CACHE
    from ctxlens.models.catalog import DEFAULT_KEYS
    from ctxlens.models.registry import analyze_text, get_model

    print(device_line())
    models = [get_model(key) for key in DEFAULT_KEYS]
    loaded = rss_bytes()
    for key in DEFAULT_KEYS:  # touch every weight once; nothing of it stays cached
        analyze_text(key, "The bank of the river was muddy after the storm.").head  # noqa: B018
    CACHE.clear()
    gc.collect()
    base = rss_bytes()
    gpu = torch.cuda.is_available() and models[0].device.startswith("cuda")
    gpu_base = torch.cuda.memory_allocated() if gpu else 0
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    own = sum(lm.memory_bytes for lm in models)
    budget = CACHE.budget
    print(f"RSS right after loading {' + '.join(DEFAULT_KEYS)}: {mb(loaded)}; after one short analysis each, "
          f"cache emptied (the baseline): {mb(base)}; the models' own parameters: {mb(own)}")
    print(f"cache budget (CTXLENS_MEMORY_MB): {mb(budget)}; one 512-token record: "
          + ", ".join(f"{lm.spec.key} ~{mb(lm.estimate_bytes(lm.encode(['x ' * 600])))}" for lm in models))

    rng = random.Random(0)
    counts = {key: 0 for key in DEFAULT_KEYS}
    samples, start = [], time.perf_counter()
    for i in range(args.inputs):
        text = distinct_text(i, rng)
        for j, key in enumerate(DEFAULT_KEYS):
            if j == 1 and i % args.causal_every:
                continue
            record = analyze_text(key, text)
            assert record.n_tokens == N_TOKENS and record.truncated, (key, record.n_tokens)
            record.head  # noqa: B018 (what the Home / Next-token pages read)
            record.attention(record.n_layers // 2)  # one layer, as the Attention page's heatmap
            counts[key] += 1
            del record
        if (i + 1) % 50 == 0 or i + 1 == args.inputs:
            samples.append((i + 1, rss_bytes()))
            print(f"  after {i + 1:4} inputs: RSS {mb(samples[-1][1])}"
                  + (f", GPU allocated {mb(torch.cuda.memory_allocated())}" if gpu else "") + f", cache {mb(CACHE.bytes)} in "
                  f"{len(CACHE)} entries, {time.perf_counter() - start:5.0f} s", flush=True)
    gc.collect()
    end, peak = rss_bytes(), peak_rss_bytes()
    limit = (base + budget) * (1 + SLACK)
    print("inputs analysed: " + ", ".join(f"{key} {n}" for key, n in counts.items())
          + f" (distinct texts, each cut to {N_TOKENS} tokens)")
    print(f"RSS with the models loaded, warmed up, nothing cached (baseline): {mb(base)}")
    print(f"RSS after the inputs:                                            {mb(end)}  (+{mb(end - base)}; peak RSS of the process {mb(peak)})")
    print(f"models' own bytes (lm.memory_bytes):                             {mb(own)}")
    print(f"budget (CTXLENS_MEMORY_MB):                                      {mb(budget)}")
    print(f"CACHE.bytes {mb(CACHE.bytes)} ({CACHE.bytes:,} B), len(CACHE) {len(CACHE)}")
    print(f"RSS after the inputs <= (baseline + budget) x {1 + SLACK:.2f} = {mb(limit)}: "
          f"{'yes' if end <= limit else 'NO'}  ({end / (base + budget):.2f}x of baseline + budget; "
          f"against the models' own bytes + budget: {end / (own + budget):.2f}x)")
    if gpu:
        now, top = torch.cuda.memory_allocated(), torch.cuda.max_memory_allocated()
        gpu_limit = (gpu_base + budget) * (1 + SLACK)
        print(f"GPU memory allocated: {mb(gpu_base)} with the models (baseline), {mb(now)} after the inputs, "
              f"peak {mb(top)}; after <= (baseline + budget) x {1 + SLACK:.2f} = {mb(gpu_limit)}: "
              f"{'yes' if now <= gpu_limit else 'NO'}")


if __name__ == "__main__":
    main()
