"""The frame of every page (config, sidebar toggles, share link), figures and messages."""

from __future__ import annotations

import html
import re

import streamlit as st

from ctxlens.cache import cached
from ctxlens.errors import CtxlensError
from ctxlens.models import catalog as cat

from . import state

EXPORT_FORMATS = ("png", "svg")
FORMAT_KEY = "ctx_export_format"
LESSONS_KEY = "ctx_lessons"  # the container whose page links are drawn as buttons
_WRAP = "white-space: normal !important; overflow: visible !important; text-overflow: clip !important;"
# On every page: a "Working…" badge while the script runs (after 0.6 s, so quick reruns do not
# flash; before, only greyed-out old output showed that work was under way), lesson buttons, and
# model chips that wrap instead of being cut ("SmolLM2-135M-Inst…").
_PAGE_CSS = f"""
<style>
[data-testid="stApp"][data-test-script-state="running"]::after {{
  content: "Working…"; position: fixed; top: 0.5rem; left: 50%; transform: translateX(-50%);
  z-index: 1000100; padding: 0.3rem 1.1rem; border-radius: 1rem; background: #2b6cb0; color: #fff;
  font-weight: 600; box-shadow: 0 2px 8px rgba(0, 0, 0, 0.3); pointer-events: none;
  opacity: 0; animation: ctx-working 0s 0.6s forwards;
}}
@keyframes ctx-working {{ to {{ opacity: 1; }} }}
[data-testid="stMultiSelect"] [data-tag] {{ max-width: none !important; height: auto !important; }}
[data-testid="stMultiSelect"] [data-tag] > span {{ {_WRAP} overflow-wrap: anywhere; }}
.st-key-{LESSONS_KEY} [data-testid="stPageLink"] a {{
  border: 1px solid #2b6cb0; border-radius: 0.5rem; background: #ebf4ff; padding: 0.4rem 0.7rem;
}}
.st-key-{LESSONS_KEY} [data-testid="stPageLink"] a:hover {{ background: #d0e4fb; }}
.st-key-{LESSONS_KEY} [data-testid="stPageLink"] a * {{
  color: #1a4f8a !important; font-weight: 600; white-space: normal !important; overflow: visible !important;
}}
.st-key-{LESSONS_KEY} [data-testid="stPageLink"] a[disabled] {{ background: #f2f2f2; border: 1px dashed #8a8a8a; }}
.st-key-{LESSONS_KEY} [data-testid="stPageLink"] a[disabled] * {{ color: #5a5a5a !important; }}
</style>
"""
# Projector mode: large text and high contrast everywhere a class reads. Tables (a canvas that
# ignores CSS fonts) and bertviz iframes are zoomed, at a width that keeps them in their column;
# the sidebar widens, page names and lesson links wrap instead of being cut, and tabs wrap into rows.
# Figures: `chart`; side-by-side models: `model_columns`.
_ZOOM = 1.3
_PROJECTOR_CSS = f"""
<style>
html, body, [data-testid="stAppViewContainer"] {{ font-size: 22px !important; }}
[data-testid="stAppViewContainer"] {{ background: #ffffff; color: #000000; }}
[data-testid="stMarkdownContainer"] p, label, input, textarea {{ font-size: 1.15rem !important; }}
h1 {{ font-size: 2.6rem !important; }} h2, h3 {{ font-size: 1.9rem !important; }}
[data-testid="stSidebar"] {{ width: 420px !important; min-width: 420px !important; }}
[data-testid="stSidebar"] input {{ font-size: 0.8rem !important; }}
[data-testid="stMainBlockContainer"] {{ padding-left: 1.5rem !important; padding-right: 1.5rem !important; }}
[data-testid="stElementContainer"]:has([data-testid="stDataFrame"], [data-testid="stIFrame"]) {{
  zoom: {_ZOOM}; width: calc(100% / {_ZOOM}) !important; max-width: calc(100% / {_ZOOM}) !important;
}}
.stMarkdownEllipsis, .stMarkdownEllipsis *, [data-testid="stPageLink"] a * {{ {_WRAP} overflow-wrap: break-word; }}
[data-testid="stTabs"] [role="tablist"] {{ flex-wrap: wrap; }}
.st-key-{LESSONS_KEY} [data-testid="stHorizontalBlock"] {{ flex-wrap: wrap; }}
.st-key-{LESSONS_KEY} [data-testid="stColumn"] {{ min-width: 11rem; }}
</style>
"""
PROJECTOR_COLUMNS = 1  # models per row in projector mode: two would already crowd a figure's labels


def page_setup(title: str, icon: str = "🔎", models=cat.DEFAULT_KEYS) -> None:
    """First call of every page: config, a link's inputs, the sidebar's shared controls.
    `models`: the session's models when this is the first page it opens."""
    st.set_page_config(page_title=f"ctxlens · {title}", page_icon=icon, layout="wide")
    st.html(_PAGE_CSS)  # static CSS, no user text
    state.apply_url()
    st.session_state.setdefault(state.MODELS_KEY, list(models))
    refused_note()
    st.session_state.setdefault(state.EXTRA_KEY, [])
    projector_toggle()
    export_format_picker()
    st.session_state[state.SHARE_SLOT] = st.sidebar.empty()
    state.share_link()


def projector_on() -> bool:
    return bool(st.session_state.get("ctx_projector"))


def model_columns(n: int) -> list:
    """`n` side-by-side containers, one per model; in projector mode, rows of PROJECTOR_COLUMNS."""
    per_row = max(1, min(n, PROJECTOR_COLUMNS) if projector_on() else n)  # no model: no columns
    return [column for _ in range(0, n, per_row) for column in st.columns(per_row)][:n]


def projector_toggle() -> bool:
    """Large fonts and high contrast for the back row of a classroom."""
    on = st.sidebar.toggle("Projector mode", key="w_projector", value=st.session_state.get("ctx_projector", False))
    st.session_state["ctx_projector"] = on
    if on:
        st.markdown(_PROJECTOR_CSS, unsafe_allow_html=True)  # static CSS, no user text
    return on


def refused_note() -> None:
    """Once, after a link (a lesson, a shared view) asked for models that cannot run here:
    what it needs, and which models the page uses instead (the session's, or the link's others)."""
    refused = st.session_state.pop(state.REFUSED_KEY, None)
    if refused:
        needs = "; ".join(f"**{escape(key)}** ({escape(why)})" for key, why in refused.items())
        kept = ", ".join(st.session_state[state.MODELS_KEY])
        st.warning(f"This link needs {needs}, which cannot run on this machine now, so it is left out; "
                   f"this page uses {escape(kept)}. The lessons on Home say what runs offline.",
                   icon=":material/cloud_off:")


def export_format_picker() -> None:
    fmt = st.sidebar.radio("Figure download format", EXPORT_FORMATS, horizontal=True, key="w_export_format",
                           index=EXPORT_FORMATS.index(st.session_state.get(FORMAT_KEY, "png")),
                           help="The camera icon above each figure downloads it in this format.")
    st.session_state[FORMAT_KEY] = fmt


def figure_config(name: str) -> dict:
    """Plotly's camera button saves the figure under a meaningful name, in the format chosen
    in the sidebar, at projector quality (3x for PNG)."""
    fmt = st.session_state.get(FORMAT_KEY, "png")
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:80]
    return {
        "displaylogo": False,
        "toImageButtonOptions": {"format": fmt, "filename": f"ctxlens_{safe}", "scale": 3 if fmt == "png" else 1},
    }


def chart(container, fig, key: str, shared=None, **kwargs) -> None:
    """A plotly figure that downloads as PNG/SVG (camera icon) and as numbers (CSV); in
    projector mode every text in it is at least 18 px.

    `fig`: a figure, or a function that builds one. With `shared`, a hashable naming all the
    figure depends on (`running.input_key` of its analysis and the view's options), it is
    built once in the process, and its projector version once, in the library's one cache:
    every session asking for the same is shown that figure, and sessions asking at the same
    time wait for one build. A shared figure is never changed after it is built."""
    from ctxlens.figures.basic import for_projector
    from ctxlens.figures.export import figure_csv

    def once(name, build):
        return build() if shared is None else cached((name, shared), build)

    plain = once("figure", fig if callable(fig) else lambda: fig)
    shown = once("projector figure", lambda: for_projector(plain)) if projector_on() else plain
    container.plotly_chart(shown, key=key, config=figure_config(key), **kwargs)
    container.download_button(
        "Numbers (CSV)", data=lambda: figure_csv(plain), file_name=f"ctxlens_{key}.csv",
        mime="text/csv", key=f"csv_{key}", on_click="ignore", type="tertiary", icon=":material/download:",
    )


def show_error(exc: Exception) -> None:
    """A clear message, never a traceback: our errors carry text written for the reader."""
    if isinstance(exc, CtxlensError):
        st.error(str(exc))
    else:
        st.error(f"Something went wrong: {type(exc).__name__}: {exc}")


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def plain(text) -> str:
    """User or model text (a token, a label, generated text) shown as typed inside st.markdown."""
    return _MARKDOWN.sub(r"\\\1", str(text))


def escape(text: str) -> str:
    """For the few places we write our own HTML with user text in it."""
    return html.escape(text, quote=True)
