"""Session and URL state: inputs that survive page switches and travel in a shared link."""

from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st

from ctxlens.models import catalog as cat

MODELS_KEY = "ctx_models"  # session keys outside widgets survive page switches
DEVICE_KEY = "ctx_device"
DTYPE_KEY = "ctx_dtype"
EXTRA_KEY = "ctx_extra_models"
LINK_KEY, LINK_TAKEN_KEY = "ctx_link", "ctx_link_taken"  # a link's inputs, and the widgets that took them
SEEN_KEY = "ctx_url_seen"
REFUSED_KEY = "ctx_link_refused"  # {model: why} a link asked for that cannot run here
SHARE_SLOT = "_ctx_share_slot"
# Page controls are bound to the URL by Streamlit itself (`bind=BIND`, the widget's key is the
# parameter's name). The inputs below travel between pages, so this module carries them.
BIND = "query-params"
CARRIED = ("model", "text", "pair", "sentences", "question", "context", "preset", "target", "ex")


def _url_now() -> dict:
    """The URL's carried inputs (a bound control's change is Streamlit's, never a new link)."""
    return {k: st.query_params.get_all(k) for k in st.query_params.keys() if k in CARRIED}


def apply_url() -> None:
    """A URL we did not write ourselves (a shared link, a lesson) sets the inputs it names."""
    url = _url_now()
    if not url or url == st.session_state.get(SEEN_KEY):
        return
    models = [m for m in url.get("model", []) if m.strip()]
    # A model that cannot run here never replaces the session's: the page says so instead.
    refused = {m: why for m in models if (why := unavailable(m))}
    usable = [m for m in models if m not in refused]
    if usable:
        st.session_state[EXTRA_KEY] = [m for m in usable if m not in cat.CATALOG]
        st.session_state[MODELS_KEY] = usable
    st.session_state[REFUSED_KEY] = refused
    # Every other input waits for the widget that reads it: see `from_link`.
    st.session_state[LINK_KEY] = {name: values[0] for name, values in url.items() if name != "model" and values}
    st.session_state[LINK_TAKEN_KEY] = set()
    st.session_state[SEEN_KEY] = url


def unavailable(key: str) -> str | None:
    """Why model `key` cannot run on this machine (offline and not downloaded, not installed),
    or None when it can (it may still need a download)."""
    from ctxlens.models.loading import hub_offline, spec_for
    from ctxlens.models.registry import model_status

    try:
        spec = spec_for(key)
    except Exception as exc:  # noqa: BLE001 - not local: only the hub can still bring it
        return str(exc) if hub_offline() else None
    status = model_status(spec)
    return status.detail if status.state == "unavailable" else None


def from_link(key: str, name: str):
    """The value the last link we did not write gives URL parameter `name`, the first time
    widget `key` asks for it (so a user's later change stays); else None."""
    link = st.session_state.get(LINK_KEY, {})
    taken = st.session_state.setdefault(LINK_TAKEN_KEY, set())
    if name not in link or key in taken:
        return None
    taken.add(key)
    return link[name]


def share_link() -> None:
    """The page's address with its inputs, in a code box (which has a copy button).

    Drawn into the sidebar slot made by `chrome.page_setup`, and redrawn by `remember`, so the
    link is never one interaction behind.
    """
    slot = st.session_state.get(SHARE_SLOT)
    if slot is None:
        return
    base = (st.context.url or "").split("?")[0]
    query = urlencode([(k, v) for k in st.query_params.keys() for v in st.query_params.get_all(k)])
    with slot.container():
        with st.expander("Copy a link to this view"):
            st.code(f"{base}?{query}" if query else base, language=None, wrap_lines=True)
            st.caption("Opening it reproduces the models and inputs of this page.")


def remember(name: str, value) -> None:
    """Keep a carried input in the URL, so that a copied link reopens the same view."""
    assert name in CARRIED, name
    if value is None or value == "" or value == []:
        st.query_params.pop(name, None)
    elif isinstance(value, (list, tuple)):
        st.query_params[name] = [str(v) for v in value]
    else:
        st.query_params[name] = str(value)
    st.session_state[SEEN_KEY] = _url_now()
    share_link()


def seeded(key: str, url_name: str, default):
    """Seed a widget's state from, in order: a new link, this session, the URL, the default.

    Widget state is dropped when a page that does not show the widget runs, so a mirror
    under `ctx_<key>` carries it across pages.
    """
    linked = from_link(key, url_name)
    if linked is not None:
        st.session_state[key] = linked
    elif key not in st.session_state:
        st.session_state[key] = st.session_state.get(f"ctx_{key}", st.query_params.get(url_name, default))
    return st.session_state[key]


def keep(key: str, url_name: str, linked: bool = True):
    """A seeded widget's value, mirrored for other pages and written to the URL (left out of
    it when not `linked`: another parameter stands for it)."""
    value = st.session_state.get(key)
    st.session_state[f"ctx_{key}"] = value
    remember(url_name, value if linked else None)
    return value
