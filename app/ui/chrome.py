"""The frame of every page (config, sidebar toggles, share link), figures and messages."""

from __future__ import annotations

import html

import streamlit as st

from ctxlens.errors import CtxlensError
from ctxlens.models import catalog as cat

from . import state

EXPORT_FORMATS = ("png", "svg")
FORMAT_KEY = "ctx_export_format"
_PROJECTOR_CSS = """
<style>
html, body, [data-testid="stAppViewContainer"] { font-size: 22px !important; }
[data-testid="stAppViewContainer"] { background: #ffffff; color: #000000; }
[data-testid="stMarkdownContainer"] p, label, input, textarea { font-size: 1.15rem !important; }
h1 { font-size: 2.6rem !important; } h2, h3 { font-size: 1.9rem !important; }
</style>
"""


def page_setup(title: str, icon: str = "🔎") -> None:
    """First call of every page: config, a link's inputs, the sidebar's shared controls."""
    st.set_page_config(page_title=f"ctxlens · {title}", page_icon=icon, layout="wide")
    state.apply_url()
    st.session_state.setdefault(state.MODELS_KEY, list(cat.DEFAULT_KEYS))
    st.session_state.setdefault(state.EXTRA_KEY, [])
    projector_toggle()
    export_format_picker()
    st.session_state[state.SHARE_SLOT] = st.sidebar.empty()
    state.share_link()


def projector_toggle() -> bool:
    """Large fonts and high contrast for the back row of a classroom."""
    on = st.sidebar.toggle("Projector mode", key="w_projector", value=st.session_state.get("ctx_projector", False))
    st.session_state["ctx_projector"] = on
    if on:
        st.markdown(_PROJECTOR_CSS, unsafe_allow_html=True)  # static CSS, no user text
    return on


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


def chart(container, fig, key: str, **kwargs) -> None:
    """A plotly figure that downloads as PNG/SVG (camera icon) and as numbers (CSV)."""
    from ctxlens.figures.export import figure_csv

    container.plotly_chart(fig, key=key, config=figure_config(key), **kwargs)
    container.download_button(
        "Numbers (CSV)", data=lambda: figure_csv(fig), file_name=f"ctxlens_{key}.csv",
        mime="text/csv", key=f"csv_{key}", on_click="ignore", type="tertiary", icon=":material/download:",
    )


def show_error(exc: Exception) -> None:
    """A clear message, never a traceback: our errors carry text written for the reader."""
    if isinstance(exc, CtxlensError):
        st.error(str(exc))
    else:
        st.error(f"Something went wrong: {type(exc).__name__}: {exc}")


def escape(text: str) -> str:
    """For the few places we write our own HTML with user text in it."""
    return html.escape(text, quote=True)
