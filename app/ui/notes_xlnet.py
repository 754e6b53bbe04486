"""Course notes, beyond BERT: XLNet and permutation language modelling (one tab).

The masks need no model (over the sentence's words until an XLNet is loaded, then over its
tokens); the predictions need xlnet-base-cased (a download) or a local XLNet folder.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ctxlens.analysis.permutation import left_to_right, parse_order, reference_orders, shuffled_order
from ctxlens.analysis.words import split_words
from ctxlens.cache import cached
from ctxlens.errors import CtxlensError, InputError
from ctxlens.figures.permutation import masks_figure
from ctxlens.figures.predictions import top_k_bars
from ctxlens.methods import permutation as perm
from ctxlens.models.loading import hub_offline
from ctxlens.models.registry import model_status
from ctxlens.validate import clean_text

from . import chrome, running
from .pickers import model_label
from .state import BIND

DEFAULT_TEXT = "The cat sat on the mat."
READING, SHUFFLED, TYPED = "Left to right", "Shuffled (seeded)", "Typed"
INTRO = (
    "BERT predicts a masked word from every other word, but its [MASK] never appears when it is used, and its "
    "masked words are predicted independently of each other. GPT predicts each word from the words to its left "
    "only. **XLNet** (Yang et al., 2019) keeps GPT's one-word-at-a-time prediction but draws a random "
    "**factorisation order** z for every training sentence: the word at z_t is predicted from the words at "
    "z_<t, wherever they stand. Averaged over orders, every word learns from context on both sides, and no "
    "[MASK] is needed.\n\n"
    "A word must not see itself while it is being predicted, yet it must be visible to the words after it in "
    "the order. So XLNet runs two streams: the **content stream** h_i sees z_≤t (itself included) and the "
    "**query stream** g_i sees z_<t (knows its position, not its word); the prediction is read from g."
)


def render(device: str) -> None:
    st.markdown(INTRO)
    c_text, c_model = st.columns([3, 2])
    text = c_text.text_input("Sentence", DEFAULT_TEXT, key="xl_text", bind=BIND)
    name = c_model.text_input("XLNet model", perm.XLNET_KEY, key="xl_model", bind=BIND,
                              help="xlnet-base-cased (downloads once, about 467 MB), or a local folder or cached "
                                   "hub id of another XLNet LM.")
    try:
        text = clean_text(text, "sentence")
    except CtxlensError as exc:
        st.warning(str(exc))
        return
    lm = _model(name.strip() or perm.XLNET_KEY, device)
    try:
        tokens = _units(lm, text)
        order, target = _order_controls(tokens)
    except CtxlensError as exc:  # a typed order that is not a permutation: a hint, not a failure
        st.warning(str(exc))
        return
    _masks(tokens, order, target, lm is not None)
    if lm is not None:
        top_k = st.slider("Top k", 1, 20, 5, key="xl_top_k", bind=BIND)
        try:
            _predictions(lm, device, text, order, target, top_k)
        except CtxlensError as exc:
            chrome.show_error(exc)


def _units(lm, text: str) -> tuple[str, ...]:
    """What an order permutes: XLNet's tokens, or without a model the sentence's words."""
    if lm is not None:
        return perm.xlnet_tokens(lm, text).tokens
    words = tuple(w.text for w in split_words(text))
    if not words or len(words) > perm.MAX_TOKENS:
        raise InputError(f"The sentence has {len(words)} words; this view reads one sentence of 1 to "
                         f"{perm.MAX_TOKENS}.")
    return words


def _model(name: str, device: str):
    """The loaded XLNet, or None after saying what the predictions need (and offering the
    download when the network may be there)."""
    try:
        spec = perm.xlnet_spec(name)
    except CtxlensError as exc:
        chrome.show_error(exc)
        return None
    status = model_status(spec, device)
    if status.state == "unavailable":
        later = " It can be downloaded once the network is on." if hub_offline() else ""
        st.info(f"The predictions need **{chrome.plain(name)}**, which cannot be loaded on this machine now "
                f"({chrome.plain(status.detail)}).{later} Type the folder of a local XLNet LM above to use it "
                "instead. The masks need no model: they are drawn over the sentence's words.")
        return None
    if status.state == "needs download" and not st.button(
            f"Download {name} ({status.detail}) for the predictions", key="xl_download"):
        st.caption("The masks need no model: they are drawn over the sentence's words until XLNet is loaded.")
        return None
    return running.load_model(name, device, load=perm.load_xlnet)


def _order_controls(tokens: tuple[str, ...]) -> tuple[tuple[int, ...], int]:
    """The factorisation order (read, shuffled or typed) and the position to predict."""
    n = len(tokens)
    c_how, c_detail, c_target = st.columns([2, 3, 2])
    how = c_how.radio("Factorisation order", [READING, SHUFFLED, TYPED], key="xl_how", bind=BIND)
    if how == SHUFFLED:
        seed = c_detail.number_input("Seed", 0, 2**31 - 1, 0, key="xl_seed", bind=BIND)
        order = shuffled_order(n, int(seed))
    elif how == TYPED:
        st.session_state.setdefault("xl_order", " ".join(map(str, reversed(range(n)))))
        typed = c_detail.text_input(
            "Order", key="xl_order", bind=BIND,
            help="Every position once, e.g. 3 0 2 1, or the tokens themselves (mat The on sat): a number is a "
                 "position; a repeated word is taken left to right.")
        order = parse_order(typed, tokens)
    else:
        order = left_to_right(n)
    if st.session_state.get("xl_target") not in range(n):  # a new sentence: the old choice may be gone
        st.session_state.pop("xl_target", None)
    wordy = [i for i, t in enumerate(tokens) if any(ch.isalnum() for ch in t)] or [n - 1]
    target = c_target.selectbox("Position to predict", range(n), index=wordy[-1], key="xl_target", bind=BIND,
                                format_func=lambda i: f"{i}: {tokens[i]}")
    st.markdown("**Order:** " + " → ".join(f"{i}:{chrome.plain(tokens[i])}" for i in order))
    return order, int(target)


def _masks(tokens, order, target: int, model_tokens: bool) -> None:
    chrome.chart(st, lambda: masks_figure(tokens, order, target), key="xl_masks", width="stretch",
                 shared=("xl_masks", tuple(tokens), tuple(order), target))
    unit = ("XLNet's tokens; its tokenizer also appends <sep> and <cls>, which every position may see and "
            "which see only each other" if model_tokens else "the sentence's words (XLNet's own tokens once it "
                                                              "is loaded)")
    st.caption(f"Blue: the row's position may attend to the column's. Rows and columns are {chrome.plain(unit)}. "
               "The outlined row is the position predicted: its query-stream row is what the prediction sees. "
               "The content stream differs from the query stream only on the diagonal; GPT's mask is XLNet's "
               "content stream for the order 0, 1, 2, …")


def _predictions(lm, device: str, text: str, order, target: int, top_k: int) -> None:
    result = _predict(lm, device, text, order, target, top_k)
    seen = ", ".join(chrome.plain(result.tokens[i]) for i in result.visible) or "no word (only <sep> <cls>)"
    st.markdown(f"**Predicting position {target} ({chrome.plain(result.tokens[target])})** from: {seen}.")
    c_bars, c_other = st.columns([3, 2])
    title = f"{_label(lm)} at {target}:{result.tokens[target]}"
    chrome.chart(c_bars, top_k_bars(result.candidates, title), key="xl_top_k_bars", width="stretch")
    c_bars.caption(f"The sentence's own token {chrome.plain(result.actual.text)}: p = {result.actual.prob:.2%}, "
                   f"rank {result.actual_rank:,}.")
    rows = []
    for kind, other in reference_orders(len(result.tokens), target).items():
        r = _predict(lm, device, text, other, target, 3)
        rows.append({"order": kind, "sees": len(r.visible), "top 3": ", ".join(f.text for f in r.candidates),
                     "p(own token)": round(r.actual.prob, 4)})
    c_other.markdown("The same position under other orders:")
    c_other.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def _label(lm) -> str:
    return perm.XLNET_KEY if lm.spec.key == perm.XLNET_SPEC.key else model_label(lm.spec.key)


def _predict(lm, device: str, text: str, order, target: int, top_k: int):
    ident = ("xl_predict", lm.spec.key, device, lm.precision, text, tuple(order), target, top_k)
    return cached(ident, lambda: perm.predict_in_order(lm, text, order, target, top_k))
