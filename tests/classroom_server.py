"""`ctxlens serve` in a subprocess on 127.0.0.1, for tests and benchmarks: start, wait until
ready, stop (SIGTERM: Ray Serve and the local Ray it started shut down), start again; or
`with ClassroomServer(models) as server:` for one run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from browser import ROOT, free_port

READY_TIMEOUT_S = 240  # a local Ray and three models on 2 cores take about a minute


class ClassroomServer:
    def __init__(self, models: list[str], port: int | None = None, env: dict | None = None):
        self.models, self.port = models, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "CTXLENS_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self) -> "ClassroomServer":
        self.log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"ctxlens-serve-{self.port}.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ctxlens.cli", "serve", "--models", ",".join(self.models),
             "--port", str(self.port)],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ctxlens serve exited with {self.process.returncode}; see {self.log.name}")
            if self.ready():
                return self
            time.sleep(1)
        self.stop()
        raise TimeoutError(f"ctxlens serve was not ready in {READY_TIMEOUT_S} s; see {self.log.name}")

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            return json.loads(response.read())

    def ready(self) -> bool:
        try:
            return bool(self.get("/readyz")["ready"])
        except OSError:
            return False

    def __enter__(self) -> "ClassroomServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """SIGTERM, then the whole process group if it lingers (Ray's own processes too)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.log.close()
