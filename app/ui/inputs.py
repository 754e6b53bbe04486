"""Text inputs kept in the URL, and the checks that stop a page with one clear message."""

from __future__ import annotations

import streamlit as st

from ctxlens.errors import CtxlensError

from .state import from_link, keep, remember, seeded


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
    """The picked models, or a hint to pick one and the page stops."""
    if not models:
        st.info("Pick at least one model in the sidebar.")
        st.stop()
    return models
