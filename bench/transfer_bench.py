"""Bytes the Attention page's first view moves from the device to the CPU, vs the old eager record.

For MiniLM, SmolLM2 and a random BERT-base, at 512 tokens: the Attention page runs under
Streamlit's AppTest (the model already loaded, then a new 512-token sentence is typed, as a
student would), and the record the page analysed is read back from the one cache
(`ctxlens.cache.CACHE`): its `acts.bytes_moved` counts every array that crossed to the CPU
for that view (head statistics, the picked layer's and head's heatmaps, mean over heads and
rollout, the bertviz head / model / neuron views as the page builds them at 512 tokens).

The old eager record moved every layer's attention and every hidden state as float32 numpy
when it was made, plus the head's output (top-k at every position and its few logits):
    L x H x T^2 x 4 + (L + 1) x T x D x 4 + head bytes.
Target: new / old <= 10 %. Also prints which parts of the page moved what.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter

from common import ROOT, device_line, finish_gpu_work, text_of_exact_tokens

from ctxlens.cache import CACHE
from ctxlens.models.catalog import CATALOG
from ctxlens.models.device import pick_device
from ctxlens.models.registry import get_model
from ctxlens.record import Activations, Analysis

N_TOKENS = 512
TARGET = 0.10
PAGE = "pages/1_Attention.py"

# Innermost known function on the stack when an array crosses: what the page used it for.
PARTS = {
    "head_statistics": "head statistics [L, H]",
    "mean_over_heads": "mean over heads [T, T] (float64)",
    "rollout": "rollout to the picked layer [T, T] (float64)",
    "head_view_html": "bertviz head view",
    "model_view_html": "bertviz model view",
    "neuron_view_html": "bertviz neuron view",
    "_read_head": "head output",
    "show_model": "heatmaps of the picked layer / head",
}
moved: Counter = Counter()


def _part() -> str:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name in PARTS:
            return PARTS[frame.f_code.co_name]
        frame = frame.f_back
    return "other"


def _counting(original):
    def wrapper(self, t):
        out = original(self, t)
        moved[_part()] += out.nbytes
        return out

    return wrapper


Activations.to_numpy = _counting(Activations.to_numpy)
Activations.to_numpy_exact = _counting(Activations.to_numpy_exact)


def eager_bytes(record: Analysis) -> tuple[int, int]:
    """What the old record moved when it was made: attention, hidden states (float32)."""
    L, H, T = record.n_layers, record.n_heads, record.n_tokens
    width = record.acts.tensor("resid", 0).shape[-1]
    return L * H * T * T * 4, (L + 1) * T * width * 4


def first_view(name: str, label: str, device: str) -> dict:
    from streamlit.testing.v1 import AppTest

    lm = get_model(name, device)
    text = text_of_exact_tokens(lm.tokenizer, N_TOKENS, prefix=label.split()[0].lower())
    at = AppTest.from_file(str(ROOT / "app" / "Home.py"), default_timeout=900)
    at.session_state["ctx_models"] = [name]
    at.session_state["ctx_extra_models"] = [] if name in CATALOG else [name]
    at.switch_page(PAGE).run()  # the default sentence: the page and the model warmed up
    assert not at.exception, at.exception
    moved.clear()
    finish_gpu_work()
    start = time.perf_counter()
    at.text_area(key="w_text").set_value(text).run()
    finish_gpu_work()
    seconds = time.perf_counter() - start
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    records = [v for v, _ in list(CACHE._items.values())
               if isinstance(v, Analysis) and v.text == text and v.model_key == lm.spec.key]
    assert len(records) == 1, f"expected the page's one record, found {len(records)}"
    record = records[0]
    assert record.n_tokens == N_TOKENS, record.n_tokens
    new = record.acts.bytes_moved
    parts = dict(moved)
    attention, hidden = eager_bytes(record)
    head = record.head.nbytes  # read after bytes_moved: the Attention page does not use it
    return {"label": label, "new": new, "parts": parts, "attention": attention, "hidden": hidden,
            "head": head, "seconds": seconds, "layers": record.n_layers, "heads": record.n_heads,
            "layer": record.n_layers // 2}


def mb(n: int) -> str:
    return f"{n / 2**20:8.1f} MB"


def main() -> None:
    from forward_bench import random_bert_base

    sys.path.insert(0, str(ROOT / "app"))  # the pages import app/widgets.py
    device = pick_device()
    print(device_line())
    print(f"Attention page, first view of a new {N_TOKENS}-token sentence (AppTest); bytes moved to the CPU")
    with tempfile.TemporaryDirectory() as folder:
        runs = [("all-MiniLM-L6-v2", "MiniLM"), ("SmolLM2-135M-Instruct", "SmolLM2"),
                (random_bert_base(folder), "BERT-base (random)")]
        results = [first_view(name, label, device) for name, label in runs]
    for r in results:
        old = r["attention"] + r["hidden"] + r["head"]
        ratio = r["new"] / old
        print(f"{r['label']:20} {r['layers']} layers x {r['heads']} heads, default layer {r['layer']}, "
              f"page rerun {r['seconds']:.1f} s")
        print(f"  old eager record:  {mb(old)} (attention {mb(r['attention']).strip()} + hidden states "
              f"{mb(r['hidden']).strip()} + head {mb(r['head']).strip()})")
        print(f"  page's first view: {mb(r['new'])} = {ratio:6.1%} of old  (target <= {TARGET:.0%})"
              f"  {'ok' if ratio <= TARGET else 'MISSED'}")
        for part, n in sorted(r["parts"].items(), key=lambda kv: -kv[1]):
            print(f"    {part:45} {mb(n)}")
        if sum(r["parts"].values()) != r["new"]:
            print(f"    (counted by part {mb(sum(r['parts'].values()))}: another record moved bytes too)")


if __name__ == "__main__":
    main()
