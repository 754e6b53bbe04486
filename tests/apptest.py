"""What the AppTest suites share: opening a page on chosen models, and the checks on it."""

import json

from streamlit.testing.v1 import AppTest


def open_page(path, models, extra=None, **state):
    """Run page `path` with `models` picked (a key or a list); `extra` are the models added in
    the sidebar (default: the picked ones); `state` sets other session keys first."""
    at = AppTest.from_file(path, default_timeout=180)
    models = [models] if isinstance(models, str) else list(models)
    at.session_state["ctx_models"] = models
    at.session_state["ctx_extra_models"] = models if extra is None else list(extra)
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


def open_tab(module: str, timeout: float = 180, **state) -> AppTest:
    """One section of a page on its own (`ui.<module>.render("cpu")`), not yet run; `state`
    sets session keys first. The page that mounts the sections is tested on its own."""
    at = AppTest.from_string(f"from ui import {module}\n{module}.render('cpu')\n", default_timeout=timeout)
    for key, value in state.items():
        at.session_state[key] = value
    return at


def ok(at):
    """No exception and no error box on the page."""
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def charts(at):
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def set_bound(at, key, value):
    """Set a widget bound to the URL, as a click does: AppTest sends the address the previous
    run left, which would otherwise win over the session's value."""
    at.session_state[key] = value
    at.query_params[key] = value
    return at.run()
