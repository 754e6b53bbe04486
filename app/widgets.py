"""Shared widgets for every page: model picker, status panel, sentence box, error display.

Pages stay thin: widgets in, library calls, figures out. Models live in the library's
process-wide registry, so every browser session shares one loaded copy.
"""

from __future__ import annotations

import html
from urllib.parse import urlencode

import streamlit as st

from ctxlens.errors import CapabilityMissing, CtxlensError
from ctxlens.models import catalog as cat
from ctxlens.models.device import available_devices, describe_device, pick_device, requested_dtype
from ctxlens.models.loading import hub_offline
from ctxlens.models.registry import analyze_text, get_model, model_status
from ctxlens.record import Analysis

MODELS_KEY = "ctx_models"  # session keys outside widgets survive page switches
DEVICE_KEY = "ctx_device"
DTYPE_KEY = "ctx_dtype"
PRECISIONS = {"auto": "float32 (the model's numbers)", "bfloat16": "bfloat16 (half: faster on a GPU, numbers move)",
              "float16": "float16 (half: faster on a GPU, numbers move)"}
EXTRA_KEY = "ctx_extra_models"
LINK_KEY, LINK_TAKEN_KEY = "ctx_link", "ctx_link_taken"  # a link's inputs, and the widgets that took them


EXPORT_FORMATS = ("png", "svg")


def figure_config(name: str) -> dict:
    """Plotly's camera button saves the figure under a meaningful name, in the format chosen
    in the sidebar, at projector quality (3x for PNG)."""
    fmt = st.session_state.get("ctx_export_format", "png")
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:80]
    return {
        "displaylogo": False,
        "toImageButtonOptions": {"format": fmt, "filename": f"ctxlens_{safe}", "scale": 3 if fmt == "png" else 1},
    }


def chart(container, fig, key: str, **kwargs) -> None:
    """A plotly figure that downloads as PNG/SVG (camera icon) and as numbers (CSV)."""
    from ctxlens.figures.export import figure_csv

    container.plotly_chart(fig, key=key, config=figure_config(key), **kwargs)
    container.download_button(
        "Numbers (CSV)", data=lambda: figure_csv(fig), file_name=f"ctxlens_{key}.csv",
        mime="text/csv", key=f"csv_{key}", on_click="ignore", type="tertiary", icon=":material/download:",
    )


SHARE_SLOT = "_ctx_share_slot"


def share_link() -> None:
    """The page's own address with its inputs, in a code box (which has a copy button).

    Drawn into a sidebar slot made by page_setup and redrawn whenever an input is written to
    the URL, so the link is never one interaction behind.
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


def export_format_picker() -> None:
    fmt = st.sidebar.radio("Figure download format", EXPORT_FORMATS, horizontal=True, key="w_export_format",
                           index=EXPORT_FORMATS.index(st.session_state.get("ctx_export_format", "png")),
                           help="The camera icon above each figure downloads it in this format.")
    st.session_state["ctx_export_format"] = fmt


def page_setup(title: str, icon: str = "🔎") -> None:
    st.set_page_config(page_title=f"ctxlens · {title}", page_icon=icon, layout="wide")
    _apply_url()
    st.session_state.setdefault(MODELS_KEY, list(cat.DEFAULT_KEYS))
    st.session_state.setdefault(EXTRA_KEY, [])
    projector_toggle()
    export_format_picker()
    st.session_state[SHARE_SLOT] = st.sidebar.empty()
    share_link()


def _url_now() -> dict:
    return {k: st.query_params.get_all(k) for k in st.query_params.keys()}


def _apply_url() -> None:
    """A URL we did not write ourselves (a shared link, a lesson) sets the inputs it names."""
    url = _url_now()
    if not url or url == st.session_state.get("ctx_url_seen"):
        return
    models = [m for m in url.get("model", []) if m.strip()]
    if models:
        st.session_state[EXTRA_KEY] = [m for m in models if m not in cat.CATALOG]
        st.session_state[MODELS_KEY] = models
    # Every other input waits for the widget that reads it: see `from_link`.
    st.session_state[LINK_KEY] = {name: values[0] for name, values in url.items() if name != "model" and values}
    st.session_state[LINK_TAKEN_KEY] = set()
    st.session_state["ctx_url_seen"] = url


def from_link(key: str, name: str):
    """The value the last link we did not write gives URL parameter `name`, the first time
    widget `key` asks for it (so a user's later change stays); else None."""
    link = st.session_state.get(LINK_KEY, {})
    taken = st.session_state.setdefault(LINK_TAKEN_KEY, set())
    if name not in link or key in taken:
        return None
    taken.add(key)
    return link[name]


_PROJECTOR_CSS = """
<style>
html, body, [data-testid="stAppViewContainer"] { font-size: 22px !important; }
[data-testid="stAppViewContainer"] { background: #ffffff; color: #000000; }
[data-testid="stMarkdownContainer"] p, label, input, textarea { font-size: 1.15rem !important; }
h1 { font-size: 2.6rem !important; } h2, h3 { font-size: 1.9rem !important; }
</style>
"""


def projector_toggle() -> bool:
    """Large fonts and high contrast for the back row of a classroom."""
    on = st.sidebar.toggle("Projector mode", key="w_projector", value=st.session_state.get("ctx_projector", False))
    st.session_state["ctx_projector"] = on
    if on:
        st.markdown(_PROJECTOR_CSS, unsafe_allow_html=True)  # static CSS, no user text
    return on


def remember(name: str, value) -> None:
    """Keep an input in the URL, so that a copied link reopens the same view."""
    if value is None or value == "" or value == []:
        st.query_params.pop(name, None)
    elif isinstance(value, (list, tuple)):
        st.query_params[name] = [str(v) for v in value]
    else:
        st.query_params[name] = str(value)
    st.session_state["ctx_url_seen"] = _url_now()
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


def keep(key: str, url_name: str):
    value = st.session_state.get(key)
    st.session_state[f"ctx_{key}"] = value
    remember(url_name, value)
    return value


def show_error(exc: Exception) -> None:
    """A clear message, never a traceback: our errors carry text written for the reader."""
    if isinstance(exc, CtxlensError):
        st.error(str(exc))
    else:
        st.error(f"Something went wrong: {type(exc).__name__}: {exc}")


def _option_label(key: str) -> str:
    spec = cat.CATALOG.get(key)
    return spec.label if spec else f"{key} (custom)"


def device_picker() -> str:
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
    st.session_state.setdefault("w_dtype", st.session_state.get(DTYPE_KEY, default))
    choice = st.sidebar.selectbox("Precision", options, key="w_dtype", format_func=lambda o: PRECISIONS.get(o, o),
                                  help="float32 shows the model's own numbers on every device; half precision "
                                       "runs faster on a GPU but attention, probabilities and vectors move.")
    st.session_state[DTYPE_KEY] = choice
    return choice


def precision() -> str | None:
    return st.session_state.get(DTYPE_KEY)


def model_picker(label: str = "Models", families=None, multi: bool = True) -> list[str]:
    """Catalog models plus any Hugging Face id or local folder the user adds."""
    options = [k for k, s in cat.CATALOG.items() if families is None or s.family in families]
    options += [k for k in st.session_state[EXTRA_KEY] if k not in options]
    chosen = [k for k in st.session_state[MODELS_KEY] if k in options] or options[:1]
    if multi:
        picked = st.sidebar.multiselect(label, options, default=chosen, format_func=_option_label)
    else:
        picked = [st.sidebar.selectbox(label, options, index=options.index(chosen[0]), format_func=_option_label)]
    with st.sidebar.expander("Add any Hugging Face model"):
        extra = st.text_input("Model id or local folder", key="w_extra_model", placeholder="e.g. bert-base-cased")
        if st.button("Add model", key="w_add_model") and extra.strip():
            if extra.strip() not in st.session_state[EXTRA_KEY]:
                st.session_state[EXTRA_KEY].append(extra.strip())
            st.session_state[MODELS_KEY] = picked + [extra.strip()]
            st.rerun()
    # A page that offers only some families keeps the user's picks of the other families.
    others = [k for k in st.session_state[MODELS_KEY] if k not in options]
    st.session_state[MODELS_KEY] = picked + others
    remember("model", st.session_state[MODELS_KEY])
    return picked


def status_panel(device: str) -> None:
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


def refuse_without(lm, capability: str, device: str, say=st.error) -> bool:
    """True, after saying why and offering the catalog models that have it, when `lm` lacks
    the trained head a view needs; its random output is then never computed."""
    from ctxlens.analysis.predictions import require

    try:
        require(lm, capability)
        return False
    except CapabilityMissing as exc:
        say(str(exc))
    for key, spec in cat.CATALOG.items():
        if not spec.can(capability) or spec.test_model:
            continue
        status = model_status(spec, device)
        if status.state != "unavailable":
            verb = "Download and use" if status.state == "needs download" else "Use"
            st.button(f"{verb} {key} ({status.detail})", key=f"use_{capability}_{key}",
                      on_click=use_model, args=(key,))
    if hub_offline():
        st.caption("Offline (HF_HUB_OFFLINE is set): models not in the local cache download once the network is on.")
    return True


def load_model(key: str, device: str):
    """The loaded model, drawing a progress bar while it downloads or converts; None on failure."""
    bar = None

    def progress(fraction: float, message: str) -> None:
        nonlocal bar
        bar = bar or st.progress(0.0)
        bar.progress(min(max(fraction, 0.0), 1.0), text=message)

    try:
        return get_model(key, device, progress, precision())
    except Exception as exc:  # every failure becomes a message in the page
        show_error(exc)
        return None
    finally:
        if bar is not None:
            bar.empty()


def analyze(key: str, text: str, text_pair: str | None = None, device: str | None = None) -> Analysis | None:
    device = device or st.session_state.get(DEVICE_KEY)
    if load_model(key, device) is None:
        return None
    try:
        record = analyze_text(key, text, text_pair, device=device, dtype=precision())
    except Exception as exc:
        show_error(exc)
        return None
    if record.truncated:
        st.warning(cut_message(key, record))
    return record


def cut_message(key: str, record: Analysis) -> str:
    """What was cut, and why: the model's own limit, or the interactive one."""
    model_limit = getattr(get_model(key, st.session_state.get(DEVICE_KEY), None, precision()), "max_tokens", 0)
    unit = "words" if record.family.value == "elmo" else "tokens"
    why = (f"this model reads at most {model_limit:,}" if record.max_tokens >= model_limit else
           f"interactive views analyse at most {record.max_tokens:,} (the model reads up to {model_limit:,}; "
           "CTXLENS_MAX_TOKENS sets the limit)")
    return (f"{key}: the text has {record.n_tokens_full:,} {unit}; {why}, so only the first "
            f"{record.n_tokens:,} were analysed.")


def sentence_input(default: str, pair: bool = True, key: str = "w_text") -> tuple[str, str | None]:
    """The sentence box (and an optional second sentence), kept in the URL as text / pair."""
    seeded(key, "text", default)
    text = keep(key, "text") if st.text_area("Sentence", key=key, height=90) is not None else ""
    second = None
    if pair:
        seeded(f"{key}_pair", "pair", "")
        if from_link(f"{key}_pair_on", "pair"):
            st.session_state[f"{key}_pair_on"] = True
        st.session_state.setdefault(f"{key}_pair_on", bool(st.session_state[f"{key}_pair"]))
        if st.checkbox("Add a second sentence (a pair, as for NSP or QA)", key=f"{key}_pair_on"):
            st.text_area("Second sentence", key=f"{key}_pair")
            second = keep(f"{key}_pair", "pair")
        else:
            remember("pair", None)
    return text, second


def require_text(text: str, what: str = "text") -> str:
    """The cleaned text, or one clear message and the page stops (not one per model)."""
    from ctxlens.validate import clean_text

    try:
        return clean_text(text, what)
    except CtxlensError as exc:
        st.warning(str(exc))
        st.stop()


def require_pair(text: str, second: str | None) -> tuple[str, str | None]:
    """Both boxes of `sentence_input` checked (the second only when it is shown)."""
    return require_text(text), (require_text(second, "second sentence") if second is not None else None)


def require_models(models: list[str]) -> list[str]:
    if not models:
        st.info("Pick at least one model in the sidebar.")
        st.stop()
    return models


def escape(text: str) -> str:
    """For the few places we write our own HTML with user text in it."""
    return html.escape(text, quote=True)
