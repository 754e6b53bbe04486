"""One server, one classroom: 30 students at once against one alone, on one server, in one run.

A real Streamlit server on 127.0.0.1 (tests/browser.py) with the embedded default models.
A student follows a link to Home, then one to Attention, with the models and a text in the
query; each page load is a new session, a websocket client speaking Streamlit's protocol as
a browser tab does. Two scenarios:
  (a) a lesson link: 30 students open the same link at once;
  (b) a class typing: 30 students at once, each with their own sentence.
Before each, on the same server (models loaded by a warm-up), students alone open new
sentences one after another: "single" is their median seconds per page. Printed per page:
p50, p95, max and p95 / single (the target for (a): <= 2x); page loads per second; errors.
Every result (token tables, every figure's data) must equal what a student gets from a
separate server that computed it alone. (AppTest in threads is not an option: it swaps a
process-global Runtime on every run.) Bounded: a timeout per message and per load phase.

    python bench/load_bench.py [--server URL]

Without --server: the scenarios with the models in the app, then again with the models behind a
`ctxlens serve` started here on 127.0.0.1. --server URL: only a run with CTXLENS_SERVER=URL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from classroom_server import ClassroomServer  # noqa: E402

STUDENTS = 30
SINGLES = 3  # students alone before each scenario, each on a new sentence
MESSAGE_TIMEOUT = 300  # seconds without a message from the server
DEADLINE = 600  # seconds, each load phase
PAGES = {"home": "", "attention": "Attention"}  # name: Streamlit's page name
LESSON = "The animal didn't cross the street because it was too tired."  # Home's attention lesson
NOUNS = ("bank", "bat", "spring", "plant", "bark", "match", "crane", "seal", "pitch", "light")
ADJECTIVES = ("muddy", "quiet", "broken", "green", "old")


def own_sentence(i: int) -> str:
    """Student i's sentence: every one distinct, all about as long as the lesson's."""
    return f"Student {i + 1} thinks the {NOUNS[i % len(NOUNS)]} by the river looked {ADJECTIVES[i % len(ADJECTIVES)]} today."


async def page_load(url: str, page: str, text: str) -> tuple[float, list]:
    """A new session opening `page` on `text` and the default models: seconds to the end of
    its run, and what to compare (token tables and every figure's data; an exception or an
    error box raises)."""
    start = time.perf_counter()
    async with websockets.connect(url.replace("http", "ws", 1) + "/_stcore/stream",
                                  subprotocols=["streamlit"], max_size=None) as ws:
        msg = BackMsg()
        msg.rerun_script.query_string = urlencode([("model", m) for m in DEFAULT_KEYS] + [("text", text)])
        msg.rerun_script.page_name = page
        await ws.send(msg.SerializeToString())
        elements: dict[tuple, object] = {}  # by delta path: a later element replaces an earlier one
        while True:
            fwd = ForwardMsg()
            fwd.ParseFromString(await asyncio.wait_for(ws.recv(), MESSAGE_TIMEOUT))
            kind = fwd.WhichOneof("type")
            if kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                elements[tuple(fwd.metadata.delta_path)] = fwd.delta.new_element
            elif kind == "script_finished" and fwd.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                break
    seconds = time.perf_counter() - start
    kept = []
    for el in elements.values():
        which = el.WhichOneof("type")
        if which == "exception":
            raise RuntimeError(f"{el.exception.type}: {el.exception.message}"[:300])
        if which == "alert" and el.alert.format == Alert.ERROR:
            raise RuntimeError(el.alert.body[:300])
        if which == "dataframe":
            table = pa.ipc.open_stream(el.dataframe.arrow_data.data).read_pandas()
            if "token" in table:  # not the model status table (which models are loaded)
                kept.append(table.to_dict("list"))
        if which == "plotly_chart":
            kept.append(json.loads(el.plotly_chart.spec)["data"])
    return seconds, kept


async def student(url: str, text: str) -> dict[str, tuple[float, list]]:
    """One student following a link: Home, then Attention (each a new session, as a click
    on a link opens one)."""
    return {name: await page_load(url, page, text) for name, page in PAGES.items()}


def alone(url: str, texts) -> tuple[dict[str, float], dict[str, dict[str, list]]]:
    """Students one after another: the median seconds per page, and {text: {page: result}}."""
    runs = {text: asyncio.run(student(url, text)) for text in texts}
    return ({name: statistics.median(run[name][0] for run in runs.values()) for name in PAGES},
            {text: {name: run[name][1] for name in PAGES} for text, run in runs.items()})


@contextlib.contextmanager
def warm_server(env: dict):
    """A fresh server (empty analysis cache) with the models loaded by a first student."""
    with streamlit_server(env) as url:
        alone(url, ["Warm-up: load both models."])
        yield url


async def at_once(url: str, texts: list[str], reference: dict) -> tuple[dict, list[str], float]:
    """One student per text, all at once: seconds per page load, errors, seconds in all."""
    latencies: dict[str, list[float]] = {name: [] for name in PAGES}
    errors: list[str] = []

    async def one(i: int, text: str) -> None:
        try:
            run = await student(url, text)
        except Exception as exc:  # counted, not raised: the others go on
            errors.append(f"student {i}: {type(exc).__name__}: {exc}")
            return
        for name, (seconds, kept) in run.items():
            latencies[name].append(seconds)
            if kept != reference[text][name]:
                errors.append(f"student {i} {name}: differs from the reference")

    start = time.perf_counter()
    tasks = [asyncio.create_task(one(i, t)) for i, t in enumerate(texts)]
    _, pending = await asyncio.wait(tasks, timeout=DEADLINE)
    for task in pending:
        task.cancel()
    if pending:
        errors.append(f"{len(pending)} students cancelled at the {DEADLINE} s deadline")
    return latencies, errors, time.perf_counter() - start


def p95(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(0.95 * len(values)))]


SCENARIOS = {  # name: (what, the texts of the students at once, those of the students alone)
    "a": ("30 students open one lesson link at once", [LESSON] * STUDENTS,
          [own_sentence(STUDENTS + i) for i in range(SINGLES)]),
    "b": ("30 students at once, each with their own sentence", [own_sentence(i) for i in range(STUDENTS)],
          [own_sentence(STUDENTS + SINGLES + i) for i in range(SINGLES)]),
}


def run(server: str | None) -> dict:
    """Both scenarios on a fresh app server (models in it, or behind `server`); the references
    come from another app server, one student at a time."""
    env = {"CTXLENS_SERVER": server} if server else {}
    with warm_server(env) as url:  # the references: one student at a time, nothing shared
        _, reference = alone(url, dict.fromkeys(t for _, texts, _ in SCENARIOS.values() for t in texts))
    results = {}
    with warm_server(env) as url:
        for name, (_, texts, singles) in SCENARIOS.items():
            results[name] = (alone(url, singles)[0], *asyncio.run(at_once(url, texts, reference)))
    return results


def report(results: dict, where: str) -> list[str]:
    """Print the side-by-side block; return the errors."""
    print(f"real server on 127.0.0.1, Home then Attention on {' + '.join(DEFAULT_KEYS)}, each page load a new "
          f"websocket session; models {where}")
    print(f"single: {SINGLES} students alone just before, a new sentence each (median); seconds per page load")
    for name, (what, *_) in SCENARIOS.items():
        print(f"({name}) {what}")
    print(f"{'':10}" + f"{'single    p50    p95    max  p95/single':>46}" * len(results))
    for page in PAGES:
        cells = []
        for name, (single, latencies, _, _) in results.items():
            values = sorted(latencies[page]) or [float("nan")]
            cells.append(f"({name}) {single[page]:6.2f} {statistics.median(values):6.2f} {p95(values):6.2f} "
                         f"{values[-1]:6.2f} {p95(values) / single[page]:10.1f}x")
        print(f"{page:10}" + "".join(f"{cell:>46}" for cell in cells))
    for name, (_, latencies, errors, elapsed) in results.items():
        loads = sum(map(len, latencies.values()))
        print(f"({name}) {loads} page loads in {elapsed:.1f} s: {loads / elapsed:.2f} page loads/s; "
              f"errors: {len(errors)}")
    single, latencies = results["a"][:2]
    met = all(latencies[p] and p95(latencies[p]) <= 2 * single[p] for p in PAGES)
    print(f"(a) p95 <= 2x single on every page: {'yes' if met else 'no'}")
    errors = [f"({name}) {e}" for name, result in results.items() for e in result[2]]
    for line in errors[:10]:
        print("  " + line)
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", metavar="URL", help="only the run with CTXLENS_SERVER=URL")
    args = parser.parse_args()
    print(device_line())
    if args.server:
        errors = report(run(args.server), f"behind CTXLENS_SERVER={args.server}")
    else:  # side by side: the models in the app, then behind a ctxlens serve started here
        errors = report(run(None), "in the app")
        with ClassroomServer(list(DEFAULT_KEYS)) as server:
            errors += report(run(server.url), "behind ctxlens serve (Ray Serve on the same machine)")
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
