"""Run every benchmark script in bench/ (`make bench`) and record the figures.

Each script runs in its own process (so peak-memory figures are its own), its output shown
as it comes and written, with the device's name, into docs/PERFORMANCE.md between markers of
that kind of device: a CPU run replaces the CPU section, a CUDA run the GPU one.

    python bench/run_all.py [--no-write] [SCRIPT_NAME ...]

Naming scripts reruns only those and replaces only their blocks.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
from pathlib import Path

from common import ROOT

from ctxlens.models.device import describe_device, pick_device

HERE = Path(__file__).resolve().parent
DOC = ROOT / "docs" / "PERFORMANCE.md"
NOISE = re.compile(  # progress bars, warnings, Ray's own logs (timestamped, or an actor's "(... pid=N)")
    r"^(Loading weights|Writing model shards|Converting and de-quantizing|\[transformers\])|warning|warn\(|ScriptRunContext"
    r"|^\[?\d{4}-\d\d-\d\d[ T]\d\d:\d\d|^\(.*? pid=\d+|^(INFO|DEBUG) \d{4}-",
    re.IGNORECASE,
)


def run_script(script: Path) -> str:
    """The script's output (progress bars and warnings left out), echoed while it runs."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(script)], cwd=HERE, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    kept = []
    for line in proc.stdout:
        line = line.split("\r")[-1].rstrip()
        if line and not NOISE.search(line):
            print(line, flush=True)
            kept.append(line)
    if proc.wait():
        raise SystemExit(f"{script.name} failed (exit {proc.returncode})")
    return "\n".join(kept)


def section(kind: str, device: str, outputs: dict[str, str]) -> str:
    today = datetime.date.today().isoformat()
    parts = [f"<!-- bench:{kind} -->", f"## Figures on {device}", "",
             f"Written by `make bench` on {today}; each block is one script's output, all from one run.", ""]
    for name, text in outputs.items():
        parts += [f"### `bench/{name}.py`", "", "```", text, "```", ""]
    return "\n".join(parts + [f"<!-- /bench:{kind} -->"])


def write_section(kind: str, block: str) -> None:
    doc = DOC.read_text(encoding="utf-8")
    pattern = re.compile(rf"<!-- bench:{kind} -->.*?<!-- /bench:{kind} -->", re.DOTALL)
    doc = pattern.sub(lambda _: block, doc) if pattern.search(doc) else doc.rstrip() + "\n\n" + block
    DOC.write_text(doc.rstrip() + "\n", encoding="utf-8")


def write_block(kind: str, name: str, text: str) -> None:
    """Replace (or add) one script's block inside the section of this kind of device."""
    doc = DOC.read_text(encoding="utf-8")
    found = re.search(rf"<!-- bench:{kind} -->.*?<!-- /bench:{kind} -->", doc, re.DOTALL)
    if found is None:
        raise SystemExit(f"{DOC.name} has no {kind} section yet: run every script once (`make bench`).")
    block = f"### `bench/{name}.py`\n\n```\n{text}\n```\n"
    old = re.compile(rf"### `bench/{re.escape(name)}\.py`\n\n```\n.*?\n```\n", re.DOTALL)
    body = found.group(0)
    if old.search(body):
        body = old.sub(lambda _: block, body)
    else:
        body = body.replace(f"<!-- /bench:{kind} -->", f"{block}\n<!-- /bench:{kind} -->")
    DOC.write_text(doc[:found.start()] + body + doc[found.end():], encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="run only these scripts (e.g. forward_bench)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/PERFORMANCE.md")
    args = parser.parse_args()
    scripts = [s for s in sorted(HERE.glob("*_bench.py")) if not args.names or s.stem in args.names]
    device = pick_device()
    outputs = {}
    for script in scripts:
        print(f"\n== {script.stem} ==", flush=True)
        outputs[script.stem] = run_script(script)
    if args.no_write:
        return
    kind = "gpu" if device == "cuda" else device
    if args.names:  # a partial run replaces only its scripts' blocks, keeping the others' figures
        for name, text in outputs.items():
            write_block(kind, name, text)
    else:
        write_section(kind, section(kind, describe_device(device), outputs))
    print(f"\nwritten to {DOC.relative_to(ROOT)} (section {kind})")


if __name__ == "__main__":
    main()
