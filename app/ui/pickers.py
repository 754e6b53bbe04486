"""Sidebar choices: device, precision, models, and the models' status."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ctxlens.backends.remote import server_url
from ctxlens.errors import CtxlensError
from ctxlens.methods import registry
from ctxlens.models import catalog as cat
from ctxlens.models.device import (
    available_devices,
    describe_device,
    pick_device,
    requested_dtype,
)
from ctxlens.models.loading import spec_for
from ctxlens.models.registry import model_status
from ctxlens.record import Family

from . import chrome
from .state import BIND, DEVICE_KEY, DTYPE_KEY, EXTRA_KEY, MODELS_KEY, remember, unavailable

PRECISIONS = {"auto": "float32 (the model's numbers)", "bfloat16": "bfloat16 (half: faster on a GPU, numbers move)",
              "float16": "float16 (half: faster on a GPU, numbers move)"}


def device_picker() -> str:
    """The device (and, under it, the precision) every model of the page runs on; with a
    classroom server (CTXLENS_SERVER), the server's own, said in the sidebar."""
    if (url := server_url()) is not None:
        st.sidebar.caption(f"Models run on the classroom server {url}, on its device and precision.")
        st.session_state[DEVICE_KEY] = pick_device("auto")  # only keys this session's caches
        return st.session_state[DEVICE_KEY]
    options = ["auto"] + available_devices()
    choice = st.sidebar.selectbox(
        "Device", options, key="w_device", help="auto: CUDA GPU, then Apple MPS, then CPU",
    )
    device = pick_device(choice)
    st.session_state[DEVICE_KEY] = device
    st.sidebar.caption(describe_device(device))
    precision_picker()
    return device


def precision_picker() -> str:
    """float32 unless the user asks for half precision (CTXLENS_DTYPE sets the default)."""
    default = requested_dtype()
    options = list(PRECISIONS) if default in PRECISIONS else [default, *PRECISIONS]
    if DTYPE_KEY in st.session_state and "w_dtype" not in st.session_state:  # chosen on another page
        st.session_state["w_dtype"] = st.session_state[DTYPE_KEY]
    # The default by index, not by session state: the URL leaves out a widget's default, so a
    # link choosing float32 on a machine whose CTXLENS_DTYPE is bfloat16 keeps float32.
    choice = st.sidebar.selectbox("Precision", options, index=options.index(default), key="w_dtype", bind=BIND,
                                  format_func=lambda o: PRECISIONS.get(o, o),
                                  help="float32 shows the model's own numbers on every device; half precision "
                                       "runs faster on a GPU but attention, probabilities and vectors move.")
    st.session_state[DTYPE_KEY] = choice
    return choice


def precision() -> str | None:
    """The precision picked in the sidebar (None before a page has shown the picker)."""
    return st.session_state.get(DTYPE_KEY)


def model_label(key: str) -> str:
    """A model's name in a picker: the catalog's label; a local folder by its own name (a full
    path did not fit the sidebar); any other Hugging Face id as typed."""
    spec = cat.CATALOG.get(key)
    if spec is not None:
        return spec.label
    return f"{Path(key).name} (folder)" if Path(key).is_dir() else f"{key} (custom)"


def model_picker(label: str = "Models", methods=None, multi: bool = True) -> list[str]:
    """Catalog models (those at least one of the registered `methods` applies to) plus any
    Hugging Face id or local folder the user adds."""
    options = list(cat.CATALOG) if methods is None else registry.models_for(methods)
    options += [k for k in st.session_state[EXTRA_KEY] if k not in options]
    chosen = [k for k in st.session_state[MODELS_KEY] if k in options]
    fallback = not chosen  # none of the session's models fits: the page offers its first runnable one
    chosen = chosen or _first_runnable(options)
    if multi:
        picked = st.sidebar.multiselect(label, options, default=chosen, format_func=model_label)
    else:
        picked = [st.sidebar.selectbox(label, options, index=options.index(chosen[0]), format_func=model_label)]
    with st.sidebar.expander("Add any Hugging Face model"):
        extra = st.text_input("Model id or local folder", key="w_extra_model", placeholder="e.g. bert-base-cased")
        if st.button("Add model", key="w_add_model") and extra.strip():
            if extra.strip() not in st.session_state[EXTRA_KEY]:
                st.session_state[EXTRA_KEY].append(extra.strip())
            st.session_state[MODELS_KEY] = picked + [extra.strip()]
            st.rerun()
    # A page that offers only some models keeps the user's picks of the others; a fallback the
    # machine cannot run is shown (with the page's refusal) but never replaces them.
    others = [k for k in st.session_state[MODELS_KEY] if k not in options]
    if not (fallback and picked == chosen and not all(map(_runnable, picked))):
        st.session_state[MODELS_KEY] = picked + others
    remember("model", st.session_state[MODELS_KEY])
    return picked


def _runnable(key: str) -> bool:
    """Whether this machine can run catalog model `key` (offline, one that needs a download
    cannot); a model the user added counts as runnable."""
    return key not in cat.CATALOG or unavailable(key) is None


def _first_runnable(options: list[str]) -> list[str]:
    """The default pick when none of the session's models fits a page: the first option this
    machine can run, else the first option (the page then says what it needs)."""
    return ([k for k in options if _runnable(k)] or options)[:1]


def status_panel(device: str) -> None:
    """One row per catalog model: ready, on disk, needs download; and what it can show."""
    rows = []
    for spec in cat.CATALOG.values():
        status = model_status(spec, device)
        caps = ", ".join(cat.CAPABILITY_LABELS[c] for c in sorted(spec.capabilities))
        rows.append(
            {"model": spec.label, "family": spec.family.label, "status": status.state,
             "detail": status.detail, "can show": caps}
        )
    st.dataframe(rows, hide_index=True, width="stretch")


def use_model(key: str) -> None:
    """Put `key` first among the picked models (a button callback)."""
    chosen = st.session_state[MODELS_KEY]
    st.session_state[MODELS_KEY] = [key] + [k for k in chosen if k != key]


def hf_models() -> list[str]:
    """The Hugging Face models a section offers: the catalog's (not ELMo) and those added in the sidebar."""
    keys = [k for k, s in cat.CATALOG.items() if s.family is not Family.ELMO and not s.test_model]
    return keys + [k for k in st.session_state.get(EXTRA_KEY, []) if k not in keys]


def pick_model(key: str, label: str, device: str, encoders_only: bool = False) -> str:
    """A model picker inside a page section (the Beyond BERT page's), defaulting to the session's
    first model that fits; a caption says whether the pick is loaded, on disk or needs a
    download (it loads on first use)."""
    options = [k for k in hf_models() if not encoders_only or _is_encoder(k)]
    if st.session_state.get(key) not in options:
        st.session_state.pop(key, None)
    chosen = next((k for k in st.session_state.get(MODELS_KEY, []) if k in options), cat.DEFAULT_KEYS[0])
    picked = st.selectbox(label, options, index=options.index(chosen) if chosen in options else 0, key=key,
                          bind=BIND, format_func=model_label)
    st.caption(f"{chrome.plain(picked)}: {chrome.plain(_status(picked, device))}.")
    return picked


def _is_encoder(key: str) -> bool:
    spec = cat.CATALOG.get(key)
    return spec is None or spec.family is Family.MASKED_LM  # an added model: its loading says


def _status(key: str, device: str) -> str:
    try:
        status = model_status(spec_for(key), device)
    except CtxlensError as exc:
        return str(exc)
    return f"{status.state} ({status.detail})"
