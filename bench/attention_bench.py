"""Cost of the Attention page's computations at 64 / 256 / 512 tokens on the embedded MiniLM.

Prints, per input length: head statistics and rollout as the page computes them (on the
record's device, `methods.attention`; each timed on a fresh record, as they are memoised per
record), the bertviz HTML builds (head view of one layer, model view of every layer and head)
with their sizes, and the plotly grid of one layer as JSON; then the 256/64 and 512/64 ratios. Attention is [L, H, T, T], so most
costs should grow about T²: ×16 at 256 and ×64 at 512.

Then the whole Attention page (Streamlit's AppTest, the model already loaded) after a student
types a new sentence of each length: analysis, statistics, bertviz HTML and figures.

    python bench/attention_bench.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time

from common import ROOT, best_time, text_of_tokens

from ctxlens.methods.attention import head_statistics, rollout
from ctxlens.figures.attention import layer_heads_grid
from ctxlens.figures.bertviz_html import head_view_html, model_view_html, svg_line_count
from ctxlens.backends.hf import analyze
from ctxlens.models.registry import analyze_text, get_model

MODEL = "all-MiniLM-L6-v2"
LENGTHS = (64, 256, 512)
TEXT = " ".join(["The bank of the river was muddy after the storm, so we walked to the town."] * 60)


def measure(n_tokens: int, repeat: int) -> dict[str, float]:
    record = analyze_text(MODEL, TEXT, max_tokens=n_tokens)
    assert record.n_tokens == n_tokens, (record.n_tokens, n_tokens)
    att = record.attentions
    row: dict[str, float] = {}
    fresh = lambda: analyze(get_model(MODEL), record.text, max_tokens=n_tokens)  # noqa: E731 - no memo yet
    row["statistics s"] = _on_fresh(fresh, head_statistics, repeat)
    row["rollout s"] = _on_fresh(fresh, lambda r: rollout(r, r.n_layers - 1), repeat)
    row["head view s"], head = best_time(lambda: head_view_html(record, layer=0, layers=[0]), repeat)
    row["head view MB"] = len(head.encode()) / 1e6
    row["model view s"], model = best_time(lambda: model_view_html(record), repeat)
    row["model view MB"] = len(model.encode()) / 1e6
    row["grid fig s"], grid = best_time(lambda: layer_heads_grid(att[0], record.tokens).to_json(), repeat)
    row["grid fig MB"] = len(grid.encode()) / 1e6
    row["head view lines"] = svg_line_count(record, "head")
    row["model view lines"] = svg_line_count(record, "model")
    return row


def _on_fresh(make_record, compute, repeat: int) -> float:
    """Best time of `compute` over `repeat` records it has not seen (it memoises per record)."""
    records = [make_record() for _ in range(repeat)]
    it = iter(records)
    seconds, _ = best_time(lambda: compute(next(it)), repeat)
    return seconds


def page_seconds(n_tokens: int) -> float:
    """One rerun of the Attention page after a new sentence of `n_tokens` tokens is typed."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app" / "Home.py"), default_timeout=600)
    at.session_state["ctx_models"] = [MODEL]
    at.switch_page("pages/1_Attention.py").run()
    # A fresh sentence per length (a word count in it), so no cached analysis or view is hit.
    text = f"{n_tokens} " + text_of_tokens(get_model(MODEL).tokenizer, n_tokens - 1)
    start = time.perf_counter()
    at.text_area(key="w_text").set_value(text).run()
    seconds = time.perf_counter() - start
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    analyze_text(MODEL, "warm up")  # load the model outside the timings
    rows = {n: measure(n, args.repeat) for n in LENGTHS}
    names = list(rows[LENGTHS[0]])
    width = max(map(len, names)) + 2
    print(f"{MODEL}: {rows[64]['head view lines'] // 64**2} heads, best of {args.repeat}")
    print("".ljust(width) + "".join(f"{n:>12}" for n in LENGTHS) + f"{'256/64':>10}{'512/64':>10}")
    for name in names:
        values = [rows[n][name] for n in LENGTHS]
        cells = "".join(f"{v:>12,.0f}" if "lines" in name else f"{v:>12.4f}" for v in values)
        ratios = "".join(f"{v / values[0]:>10.1f}" for v in values[1:])
        print(name.ljust(width) + cells + ratios)
    sys.path.insert(0, str(ROOT / "app"))  # the pages import app/widgets.py
    pages = [page_seconds(n) for n in LENGTHS]
    print("page rerun s".ljust(width) + "".join(f"{v:>12.4f}" for v in pages)
          + "".join(f"{v / pages[0]:>10.1f}" for v in pages[1:]))


if __name__ == "__main__":
    main()
