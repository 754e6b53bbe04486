"""Run every benchmark script in bench/ in turn (`make bench`)."""

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

for script in sorted(HERE.glob("*_bench.py")):
    print(f"\n== {script.stem} ==", flush=True)
    runpy.run_path(str(script), run_name="__main__")
