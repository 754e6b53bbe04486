"""Thirty sessions each analysing their own sentence at once: in the app's process against
through `ctxlens serve` (Ray Serve on 127.0.0.1), each against one request alone in the same run.

A request is what a page's first view asks of one model: the record of a distinct sentence,
its last layer's hidden states and its head's top tokens. In process, the thirty run in
threads sharing one loaded model (the app's sessions do): nothing batches them. Through the
server they arrive together and `@serve.batch` runs them in shared forwards; the server
reports the batch sizes it ran. Models: the embedded defaults (MiniLM, SmolLM2).
"""

from __future__ import annotations

import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from common import ROOT, device_line

from ctxlens.backends.remote import connect
from ctxlens.cache import CACHE
from ctxlens.models.catalog import DEFAULT_KEYS
from ctxlens.models.registry import get_model

sys.path.insert(0, str(ROOT / "tests"))
from classroom_server import ClassroomServer  # noqa: E402

SESSIONS, ALONE = 30, 5
SUBJECTS = ["teacher", "student", "river", "bank", "robot", "garden", "train", "library", "storm", "painter"]


def sentence(i: int, run: str) -> str:
    return f"In {run} run {i}, the {SUBJECTS[i % 10]} near the old {SUBJECTS[(3 * i + 1) % 10]} saw {i % 7} birds."


def request(lm, text: str) -> float:
    start = time.perf_counter()
    record = lm.analyze([text])[0]
    record.hidden(-1)
    record.head  # noqa: B018 - the head's top tokens, as a page's first view reads them
    return time.perf_counter() - start


def measure(lm, run: str) -> dict:
    """One request alone (median of ALONE), then SESSIONS at once (distinct sentences)."""
    alone = statistics.median(request(lm, sentence(i, f"{run}-alone")) for i in range(ALONE))
    start = time.perf_counter()
    with ThreadPoolExecutor(SESSIONS) as pool:
        times = sorted(pool.map(lambda i: request(lm, sentence(i, run)), range(SESSIONS)))
    wall = time.perf_counter() - start
    p95 = times[int(0.95 * (SESSIONS - 1) + 0.5)]
    return {"alone": alone, "p50": statistics.median(times), "p95": p95, "wall": wall,
            "throughput": SESSIONS / wall}


def line(name: str, m: dict) -> str:
    return (f"{name:34} one alone {m['alone'] * 1e3:7.0f} ms · 30 at once: p50 {m['p50'] * 1e3:7.0f} ms, "
            f"p95 {m['p95'] * 1e3:7.0f} ms ({m['p95'] / m['alone']:5.1f}x alone), "
            f"{m['throughput']:5.1f} requests/s")


def main() -> None:
    print(device_line())
    with ClassroomServer(list(DEFAULT_KEYS)) as server:
        for key in DEFAULT_KEYS:
            local, remote = get_model(key), connect(key, server.url)
            for lm in (local, remote):
                request(lm, sentence(0, "warm-up"))
            CACHE.clear()
            here, served = measure(local, f"{key}-local"), measure(remote, f"{key}-served")
            sizes = server.get("/v1/stats")[key]["batch_sizes"]
            print(line(f"{key}, in process", here))
            print(line(f"{key}, through ctxlens serve", served))
            print(f"{key}: throughput served / in process {served['throughput'] / here['throughput']:.2f}x; "
                  f"p95 served / in process {served['p95'] / here['p95']:.2f}x; server batch sizes "
                  + ", ".join(f"{n}x{size}" for size, n in sorted(sizes.items(), key=lambda kv: int(kv[0]))))


if __name__ == "__main__":
    main()
