"""Real-browser helpers: a Streamlit server on a free loopback port, and Debian's Chromium."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]
LOCAL_HOSTS = {"localhost", "127.0.0.1", "[::1]", "::1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(env_extra: dict | None = None, timeout: float = 90):
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "lib"), **(env_extra or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "Home.py"),
         "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(proc.stdout.read().decode(errors="replace"))
                time.sleep(0.5)
        else:
            raise TimeoutError("streamlit did not start")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def browser_page():
    """A Chromium page that records non-local requests, page errors and console errors."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.foreign_requests, page.page_errors, page.console_errors = [], [], []

        def on_request(request):
            parsed = urlparse(request.url)
            if parsed.scheme in ("http", "https", "ws", "wss") and parsed.hostname not in LOCAL_HOSTS:
                page.foreign_requests.append(request.url)

        page.on("request", on_request)
        page.on("pageerror", lambda err: page.page_errors.append(str(err)))
        page.on("console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text))
        try:
            yield page
        finally:
            browser.close()


_STATE = "[data-test-script-state]"
# "initial" comes before the first run; "rerunRequested" and "stopRequested" before the next.
_IDLE = ("(() => { const s = document.querySelector('" + _STATE + "');"
         " return s && ['notRunning', 'compilationError']"
         ".includes(s.getAttribute('data-test-script-state')); })()")
# Records every change of the script state from now on, so a rerun that starts and ends
# between two polls is still seen.
_ARM = f"""() => {{
  window.__ctxRuns = 0;
  const seen = () => {{
    const s = document.querySelector('{_STATE}');
    if (s && s.getAttribute('data-test-script-state') === 'running') window.__ctxRuns += 1;
  }};
  new MutationObserver(seen).observe(document.body,
    {{subtree: true, childList: true, attributes: true, attributeFilter: ['data-test-script-state']}});
}}"""


def wait_for_idle(page, timeout: float = 240_000) -> None:
    page.wait_for_function(_IDLE, timeout=timeout)


def rerun(page, action, timeout: float = 240_000, start_within: float = 20_000) -> None:
    """Do `action` (type, click), then wait until the rerun it causes has started and ended:
    until then the page still shows the previous input's output. A rerun too short to be
    rendered as running is given up on after `start_within` ms."""
    page.evaluate(_ARM)
    action()
    try:
        page.wait_for_function("window.__ctxRuns > 0", timeout=start_within)
    except Exception:  # noqa: BLE001 - playwright's TimeoutError; the rerun may have been too quick to see
        pass
    wait_for_idle(page, timeout)


def type_sentence(page, text: str, label: str = "Sentence", timeout: float = 240_000) -> None:
    """Fill the text box `label`, submit it with Ctrl+Enter and wait for the rerun."""
    box = page.get_by_label(label, exact=True)
    box.wait_for(timeout=120_000)
    box.fill(text)
    rerun(page, lambda: box.press("Control+Enter"), timeout)
