"""Loading models and analysing text, every failure a message in the page.

Models live in the library's process-wide registry, so every browser session shares one
loaded copy; analyses go through the library's one byte-bounded cache.
"""

from __future__ import annotations

import gc

import streamlit as st

from ctxlens.methods import registry
from ctxlens.models import catalog as cat
from ctxlens.models.loading import hub_offline
from ctxlens.models.registry import analyze_text, get_model, model_status
from ctxlens.record import Analysis

from . import chrome
from .chrome import show_error
from .pickers import precision, use_model
from .state import DEVICE_KEY


def load_model(key: str, device: str, load=get_model):
    """The loaded model, drawing a progress bar while it downloads or converts (and a spinner
    while it loads from disk, which can take seconds); None on failure. `load` is the loader:
    `get_model`, or one of its own (XLNet's fetches xlnet-base-cased first)."""
    bar = None

    def progress(fraction: float, message: str) -> None:
        nonlocal bar
        bar = bar or st.progress(0.0)
        bar.progress(min(max(fraction, 0.0), 1.0), text=message)

    try:
        with st.spinner(f"Loading {key}…", show_time=True):  # shown only past half a second
            lm = load(key, device, progress, precision())
    except Exception as exc:  # every failure becomes a message in the page
        show_error(exc)
        return None
    finally:
        if bar is not None:
            bar.empty()
    settle(lm)
    return lm


_SETTLED: set[int] = set()  # ids of the loaded models `settle` has seen


def settle(lm) -> None:
    """The first time a loaded model is seen, take every object alive now (the model, torch,
    transformers: about 450,000 with the embedded defaults) out of the garbage collector's
    sweeps (`gc.freeze`). Streamlit runs a full collection after every script run
    (runner.postScriptGC): 0.2 s with the GIL held, paid by every page load, 30 times over
    when a class opens a page at once. Reference counting still frees these objects; only a
    cycle among them that becomes garbage later is kept (models stay loaded anyway)."""
    if id(lm) not in _SETTLED:
        _SETTLED.add(id(lm))
        gc.freeze()


def analyze(key: str, text: str, text_pair: str | None = None, device: str | None = None) -> Analysis | None:
    """The (cached) analysis of `text` by model `key`, with a note if it was cut; None on failure."""
    device = device or st.session_state.get(DEVICE_KEY)
    if load_model(key, device) is None:
        return None
    try:
        with st.spinner(f"{key} is reading the text…", show_time=True):
            record = analyze_text(key, text, text_pair, device=device, dtype=precision())
    except Exception as exc:
        show_error(exc)
        return None
    if record.truncated:
        st.warning(cut_message(key, record))
    return record


def input_key(record: Analysis, device: str | None) -> tuple:
    """Names `record`'s input across sessions (model, device, precision, text, pair, limit):
    what is drawn from it is computed once per key and shared (`chrome.chart(shared=...)`)."""
    return (record.model_key, device, record.precision, record.text, record.text_pair, record.max_tokens)


def cut_message(key: str, record: Analysis) -> str:
    """What was cut, and why: the model's own limit, or the interactive one."""
    model_limit = getattr(get_model(key, st.session_state.get(DEVICE_KEY), None, precision()), "max_tokens", 0)
    unit = "words" if record.family.value == "elmo" else "tokens"
    why = (f"this model reads at most {model_limit:,}" if record.max_tokens >= model_limit else
           f"interactive views analyse at most {record.max_tokens:,} (the model reads up to {model_limit:,}; "
           "CTXLENS_MAX_TOKENS sets the limit)")
    return (f"{key}: the text has {record.n_tokens_full:,} {unit}; {why}, so only the first "
            f"{record.n_tokens:,} were analysed.")


def sentence_budget(models, texts, device: str, load: bool = True) -> int:
    """How many of `texts`, from the first, one request reads: as many as every model reads
    within CTXLENS_REQUEST_TOKENS tokens in all. Says so in the page when that cuts the list.

    load=False: count only if every model is already loaded (a page that loads on a click);
    otherwise the whole list, unsaid."""
    from ctxlens.methods.extraction import sentences_within_budget
    from ctxlens.models.loading import spec_for

    if not load:
        try:
            if any(model_status(spec_for(key), device).state != "ready" for key in models):
                return len(texts)
        except Exception:  # an unknown model: the page says so when it loads it
            return len(texts)
    loaded = [key for key in models if load_model(key, device) is not None]
    if not loaded or not texts:
        return len(texts)
    try:
        cut = sentences_within_budget(loaded, texts, device=device, dtype=precision())
    except Exception as exc:
        show_error(exc)
        return len(texts)
    if cut.cut:
        st.warning(cut.message())
    return cut.n_read


def refuse_without(lm, method_name: str, device: str, say=st.error) -> bool:
    """True, after saying why and offering the catalog models it applies to, when registered
    method `method_name` does not apply to `lm`; its random output is then never computed."""
    method = registry.method(method_name)
    reason = method.missing(lm.spec)
    if reason is None:
        return False
    say(reason)
    for key, spec in cat.CATALOG.items():
        if not method.applies(spec) or spec.test_model:
            continue
        status = model_status(spec, device)
        if status.state != "unavailable":
            verb = "Download and use" if status.state == "needs download" else "Use"
            st.button(f"{verb} {key} ({status.detail})", key=f"use_{method_name}_{key}",
                      on_click=use_model, args=(key,))
    if hub_offline():
        st.caption("Offline (HF_HUB_OFFLINE is set): models not in the local cache download once the network is on.")
    return True


def not_available_note(names, spec) -> list:
    """The registered methods among `names` that apply to `spec`; a note lists the others and why."""
    usable, why_not = registry.available(names, spec)
    if why_not:
        with st.expander(f"Not available for {spec.key}: {', '.join(why_not)}"):
            for title, reason in why_not.items():
                st.markdown(f"- **{title}**: {chrome.escape(reason)}")
    return usable
