"""Corpus extraction of 20,000 sentences (MiniLM, last layer, every word): the local engine
(one process) against Ray Data with 1 and with 2 model actors, in rows per second.

On one machine Ray adds its start, its scheduling and the Parquet shards' writes; what it
buys is the path past one machine (`--address`) and one actor per device. The figures show
its cost here, side by side. Needs the optional extra `ray[data]`.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from common import device_line

from ctxlens.analysis.contextuality import load_corpus
from ctxlens.methods.extraction import extract_to_parquet
from ctxlens.models.device import pick_device

N_SENTENCES = 20_000
MODEL, LAYERS, BATCH = "all-MiniLM-L6-v2", "-1", 64


def sentences() -> list[str]:
    corpus = load_corpus()
    return [f"{corpus[i % len(corpus)]} ({i // len(corpus)})" for i in range(N_SENTENCES)]


def main() -> None:
    import ray

    from ctxlens.methods.ray_extraction import extract_with_ray

    device = pick_device()
    print(device_line())
    texts = sentences()
    ray.init(include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = {
            "local engine": lambda: extract_to_parquet(Path(tmp) / "local.parquet", MODEL, texts, layers=LAYERS,
                                                       batch_size=BATCH, device=device),
            **{f"Ray Data, {w} actor{'s' * (w > 1)}": (lambda w=w: extract_with_ray(
                Path(tmp) / f"ray{w}", MODEL, texts, layers=LAYERS, batch_size=BATCH, device=device, workers=w))
               for w in (1, 2)},
        }
        for name, run in runs.items():
            start = time.perf_counter()
            summary = run()
            seconds = time.perf_counter() - start
            rates[name] = summary.rows / seconds
            print(f"{name:22} {summary.rows:>9,} rows in {seconds:6.1f} s: {rates[name]:>8,.0f} rows/s")
    local = rates["local engine"]
    for name, rate in rates.items():
        if name != "local engine":
            print(f"{name} / local engine: {rate / local:.2f}x")
    ray.shutdown()


if __name__ == "__main__":
    main()
