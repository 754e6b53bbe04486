"""Cold start to the first analysis on the embedded defaults, and the cost of a second session.

Each measurement runs in a fresh `python -c` process:
  1. import + get_model + analyze_text for both defaults, with an empty CTXLENS_CACHE
     (SmolLM2 is converted from GGUF to safetensors once),
  2. the same with the now converted cache: the difference is the one-time conversion cost,
  3. two AppTest runs of app/Home.py in one process: the first loads and analyses, the second
     (a new session) reuses the loaded models and the cached analysis.
Peak resident memory is the child's ru_maxrss with both defaults loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from common import ROOT, device_line

from ctxlens.models.catalog import DEFAULT_KEYS

TEXT = "The bank of the river was muddy after the storm."

COLD = f"""
import json, resource, time
t0 = time.perf_counter()
from ctxlens.models.registry import analyze_text, get_model
out = {{"import": time.perf_counter() - t0}}
for key in {DEFAULT_KEYS!r}:
    t = time.perf_counter(); get_model(key); out["load " + key] = time.perf_counter() - t
    t = time.perf_counter(); analyze_text(key, {TEXT!r}); out["analyse " + key] = time.perf_counter() - t
out["total"] = time.perf_counter() - t0
out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT", json.dumps(out))
"""

SESSIONS = f"""
import json, sys, time
sys.path.insert(0, {str(ROOT / "app")!r})
from streamlit.testing.v1 import AppTest
out = {{}}
for name in ("first", "second"):
    at = AppTest.from_file({str(ROOT / "app" / "Home.py")!r}, default_timeout=600)
    at.session_state["ctx_models"] = list({DEFAULT_KEYS!r})
    t = time.perf_counter(); at.run(); out[name] = time.perf_counter() - t
    assert not at.exception and not at.error, (at.exception, at.error)
    assert sum("token" in df.value.columns for df in at.dataframe) == 2
print("RESULT", json.dumps(out))
"""


def child(code: str, cache: str) -> dict:
    env = {**os.environ, "CTXLENS_CACHE": cache, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "lib")}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise RuntimeError(f"child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def show(label: str, r: dict) -> None:
    parts = " · ".join(f"{k} {v:.2f} s" for k, v in r.items() if k not in ("total", "peak_mb"))
    print(f"{label}: {r['total']:.2f} s to both first analyses ({parts}); peak RSS {r['peak_mb']:,.0f} MB",
          flush=True)


def main() -> None:
    print(device_line())
    with tempfile.TemporaryDirectory(prefix="ctxlens-cache-") as cache:
        empty = child(COLD, cache)
        warm = child(COLD, cache)
        sessions = child(SESSIONS, cache)
    show("cold start, empty cache (GGUF conversion)", empty)
    show("cold start, converted cache             ", warm)
    smol = "load " + DEFAULT_KEYS[1]
    print(f"one-time GGUF conversion of {DEFAULT_KEYS[1]}: {empty[smol] - warm[smol]:.2f} s "
          f"(load {empty[smol]:.2f} s with conversion / {warm[smol]:.2f} s without = "
          f"{empty[smol] / warm[smol]:.1f}x); whole cold start {empty['total']:.2f} s / "
          f"{warm['total']:.2f} s = {empty['total'] / warm['total']:.1f}x")
    first, second = sessions["first"], sessions["second"]
    print(f"Home.py in AppTest: first session {first:.2f} s (loads the models) / second session "
          f"{second:.2f} s (reuses them) = {first / second:.1f}x")
    print(f"peak resident memory with both defaults loaded (converted cache): {warm['peak_mb']:,.0f} MB")


if __name__ == "__main__":
    main()
