"""A bounded load test: 30 concurrent sessions on the embedded default models.

A real Streamlit server on 127.0.0.1 (tests/browser.py); each session is a websocket client
speaking Streamlit's protocol, as a browser tab does, and runs three interactions: Home,
Attention and Next token, on a text from a small pool (30 sessions over 8 texts: the shared
analysis cache is missed, then hit). Every result (token tables, first attention heatmap,
next-token top-1) must equal the one a single session gets from a separate server.
(AppTest in threads is not an option: it swaps a process-global Runtime on every run.)
Bounded: 3 interactions a session, a timeout per message and one for the whole load phase.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from urllib.parse import urlencode

import pyarrow as pa
import websockets
from common import ROOT, device_line
from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from ctxlens.models.catalog import DEFAULT_KEYS

sys.path.insert(0, str(ROOT / "tests"))
from browser import streamlit_server  # noqa: E402

SESSIONS = 30
MESSAGE_TIMEOUT = 300  # seconds without a message from the server
DEADLINE = 900  # seconds, the whole load phase
TEXTS = [
    "The bank of the river was muddy after the storm.",
    "She went to the bank to deposit her money.",
    "The capital of France is",
    "A bat flew out of the cave at dusk.",
    "He swung the bat and hit the ball over the fence.",
    "Time flies like an arrow; fruit flies like a banana.",
    "The old man the boats.",
    "Colorless green ideas sleep furiously.",
]
# name: (page url name, models, what to keep of the page)
INTERACTIONS = {
    "home": ("", DEFAULT_KEYS, lambda tables, charts: [t.to_dict("list") for t in tables if "token" in t]),
    "attention": ("Attention", DEFAULT_KEYS, lambda tables, charts: charts[0]["data"]),
    "next_token": ("Next_token", DEFAULT_KEYS[1:], lambda tables, charts: charts[0]["data"][0]["customdata"][0]),
}


async def interact(url: str, page: str, models, text: str):
    """One page load in a new session: its dataframes and plotly specs, or an error."""
    query = urlencode([("model", m) for m in models] + [("text", text)])
    async with websockets.connect(url.replace("http", "ws", 1) + "/_stcore/stream",
                                  subprotocols=["streamlit"], max_size=None) as ws:
        msg = BackMsg()
        msg.rerun_script.query_string = query
        msg.rerun_script.page_name = page
        await ws.send(msg.SerializeToString())
        elements: dict[tuple, object] = {}  # by delta path: a later element replaces an earlier one
        while True:
            fwd = ForwardMsg()
            fwd.ParseFromString(await asyncio.wait_for(ws.recv(), MESSAGE_TIMEOUT))
            kind = fwd.WhichOneof("type")
            if kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                elements[tuple(fwd.metadata.delta_path)] = fwd.delta.new_element
            elif kind == "script_finished":
                break
    tables, charts = [], []
    for el in elements.values():
        which = el.WhichOneof("type")
        if which == "exception":
            raise RuntimeError(f"{el.exception.type}: {el.exception.message}"[:300])
        if which == "alert" and el.alert.format == Alert.ERROR:
            raise RuntimeError(el.alert.body[:300])
        if which == "dataframe":
            tables.append(pa.ipc.open_stream(el.dataframe.arrow_data.data).read_pandas())
        if which == "plotly_chart":
            charts.append(json.loads(el.plotly_chart.spec))
    return tables, charts


async def result(url: str, name: str, text: str):
    page, models, keep = INTERACTIONS[name]
    return keep(*await interact(url, page, models, text))


async def load(url: str, reference: dict) -> tuple[dict, list[str]]:
    latencies: dict[str, list[float]] = {name: [] for name in INTERACTIONS}
    errors: list[str] = []

    async def session(i: int) -> None:
        text = TEXTS[i % len(TEXTS)]
        for name in INTERACTIONS:
            start = time.perf_counter()
            try:
                same = await result(url, name, text) == reference[text][name]
                problem = None if same else "differs from the single-session reference"
            except Exception as exc:  # counted, not raised: the other sessions go on
                problem = f"{type(exc).__name__}: {exc}"
            latencies[name].append(time.perf_counter() - start)
            if problem:
                errors.append(f"session {i} {name}: {problem}")

    tasks = [asyncio.create_task(session(i)) for i in range(SESSIONS)]
    done, pending = await asyncio.wait(tasks, timeout=DEADLINE)
    for task in pending:
        task.cancel()
    if pending:
        errors.append(f"{len(pending)} sessions cancelled at the {DEADLINE} s deadline")
    return latencies, errors


def main() -> None:
    print(device_line())
    with streamlit_server() as url:  # references: one session at a time
        reference = {t: {n: asyncio.run(result(url, n, t)) for n in INTERACTIONS} for t in TEXTS}
    with streamlit_server() as url:  # a fresh server: empty analysis cache
        asyncio.run(result(url, "home", "Warm-up: load both models."))
        start = time.perf_counter()
        latencies, errors = asyncio.run(load(url, reference))
        elapsed = time.perf_counter() - start
    print(f"{SESSIONS} concurrent sessions × {len(INTERACTIONS)} page loads over {len(TEXTS)} texts "
          f"in {elapsed:.1f} s (real server on 127.0.0.1, websocket clients)")
    for name, values in latencies.items():
        values = sorted(values)
        p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
        print(f"  {name:11} n={len(values):3}  p50 {statistics.median(values):6.2f} s  "
              f"p95 {p95:6.2f} s  max {values[-1]:6.2f} s")
    print(f"errors: {len(errors)}")
    for line in errors[:10]:
        print("  " + line)
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
