"""Course notes, beyond BERT: next-sentence prediction (BERT) vs sentence-order prediction
(ALBERT), and RoBERTa, which dropped the objective (one tab).

Each picked model with an NSP or SOP head scores the pair in both orders; a model that is not on
this machine says what it needs and offers the download.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ctxlens.cache import cached
from ctxlens.errors import CapabilityMissing, CtxlensError
from ctxlens.methods import registry
from ctxlens.methods.sentence_order import NAME, ROBERTA_NOTE, load_pair_presets, models_with, sentence_order
from ctxlens.models import catalog as cat
from ctxlens.models.loading import hub_offline, spec_for
from ctxlens.models.registry import model_status
from ctxlens.validate import clean_text

from . import chrome, running
from .pickers import model_label
from .state import BIND, EXTRA_KEY, MODELS_KEY

MAX_MODELS = 3
DEFAULT_MODELS = ("bert-base-uncased", "albert-base-v2")
NOTE_MODEL = "roberta-base"  # in the table for the note: it has neither head
CUSTOM = "custom"
VERDICTS = {cat.NSP: ("IsNext", "NotNext"), cat.SOP: ("in order", "swapped")}
INTRO = (
    "BERT's second pre-training task, **next-sentence prediction (NSP)**, reads [CLS] A [SEP] B [SEP] and "
    "asks whether B is the sentence that followed A (half the time) or a random sentence, usually from another "
    "document (the other half). A random sentence is mostly about something else, so NSP can be solved by "
    "**topic** alone. ALBERT (Lan et al., 2019) replaced it with **sentence-order prediction (SOP)**: the "
    "negatives are the *same* two consecutive segments, swapped, so topic is no help and only **order** "
    "(coherence) is. In ALBERT's paper a model trained with NSP solved the order task at about chance, while "
    "one trained with SOP also did well on NSP.\n\n"
    "Each model below reads the pair both ways: **A → B** as written, and **B → A** swapped (segment 0 is "
    "always the sentence read first). The presets' lines say what the objectives predict; the table says what "
    "the trained heads answer."
)


def render(device: str) -> None:
    st.markdown(INTRO)
    pair = _pair_inputs()
    keys = _model_choice()
    if pair is None:
        return
    if not keys:
        st.info(f"Pick up to {MAX_MODELS} models with a next-sentence or sentence-order head above.")
    results = [r for r in (_orders(key, *pair, device) for key in keys) if r is not None]
    _table(results)
    _layouts(results)


def _pair_inputs() -> tuple[str, str] | None:
    """Sentences A and B (from a preset, or typed), or None after saying what is wrong."""
    presets = load_pair_presets()
    first = next(iter(presets.values()))
    st.session_state.setdefault("pair_a", first.a)
    st.session_state.setdefault("pair_b", first.b)
    st.selectbox("Preset pair", [*presets, CUSTOM], key="pair_preset", bind=BIND, on_change=_fill, args=(presets,),
                 format_func=lambda k: presets[k].title if k in presets else "Your own pair (type below)")
    c_a, c_b = st.columns(2)
    a = c_a.text_area("Sentence A", key="pair_a", height=80, bind=BIND)
    b = c_b.text_area("Sentence B", key="pair_b", height=80, bind=BIND)
    shown = next((p for p in presets.values() if (p.a, p.b) == (a, b)), None)
    if shown is not None:
        st.caption(f"**What it shows** ({shown.relation} as written): {chrome.plain(shown.shows)}")
    try:
        return clean_text(a, "sentence A"), clean_text(b, "sentence B")
    except CtxlensError as exc:
        st.warning(str(exc))
        return None


def _fill(presets) -> None:
    """A preset picked: its sentences go into the boxes (a callback, before the boxes are drawn)."""
    preset = presets.get(st.session_state.get("pair_preset"))
    if preset is not None:
        st.session_state["pair_a"], st.session_state["pair_b"] = preset.a, preset.b


def _model_choice() -> list[str]:
    """Up to three models with an NSP or SOP head: the catalog's, and any the user added."""
    options = [k for k in registry.models_for([NAME]) if not cat.CATALOG[k].test_model]
    options += [k for k in st.session_state.get(EXTRA_KEY, []) if k not in options and _has_order_head(k)]
    if "pair_models" not in st.session_state:
        session = [k for k in st.session_state.get(MODELS_KEY, []) if k in options]
        st.session_state["pair_models"] = (session or [k for k in DEFAULT_MODELS if k in options])[:MAX_MODELS]
    st.session_state["pair_models"] = [k for k in st.session_state["pair_models"] if k in options]
    return st.multiselect(
        f"Models with a next-sentence or sentence-order head (up to {MAX_MODELS})", options, key="pair_models",
        max_selections=MAX_MODELS, format_func=model_label, bind=BIND,
        help=f"{NOTE_MODEL} is always listed for the note: it has neither head. Add a local folder or cached hub id "
             "in the sidebar's 'Add any Hugging Face model' to offer it here.",
    )


def _has_order_head(key: str) -> bool:
    try:
        return registry.method(NAME).applies(spec_for(key))
    except Exception:  # noqa: BLE001 - a model that cannot be described is not offered
        return False


def _orders(key: str, a: str, b: str, device: str):
    """The model's scores of both orders, or None after saying why not (a download, a missing head)."""
    if not _on_machine(key, device):
        return None
    lm = running.load_model(key, device)
    if lm is None:
        return None
    try:
        return cached(("sentence-order", lm.spec.key, device, lm.precision, a, b), lambda: sentence_order(lm, a, b))
    except CapabilityMissing as exc:  # e.g. a checkpoint that shipped without its SOP weights
        st.info(str(exc))
    except CtxlensError as exc:
        chrome.show_error(exc)
    return None


def _on_machine(key: str, device: str) -> bool:
    """Whether `key` can load now; otherwise says what it needs and offers the download (a click
    returns True on that run: the download then shows its progress)."""
    try:
        status = model_status(spec_for(key), device)
    except CtxlensError as exc:
        chrome.show_error(exc)
        return False
    if status.state in ("ready", "on disk"):
        return True
    size = cat.CATALOG[key].size_mb if key in cat.CATALOG else None
    offer = f"Download {key}" + (f" (about {size} MB)" if size else "")
    if status.state == "needs download":
        st.info(f"**{chrome.plain(key)}** is not on this machine yet: it needs a download ({status.detail}).")
        return st.button(offer, key=f"pair_download_{key}")
    st.info(f"**{chrome.plain(key)}** is not on this machine: it {chrome.plain(status.detail)}."
            + (" It downloads here once the network is on." if hub_offline() else ""))
    st.button(offer, key=f"pair_download_{key}", disabled=True, help="No network here (HF_HUB_OFFLINE is set).")
    return False


def _table(results) -> None:
    """Per model and head: the probability of the head's class 0 (IsNext, in order) for each
    order, and what that means; RoBERTa's row says why it has none."""
    rows = []
    for r in results:
        for s in r.scores:
            yes, no = VERDICTS[s.capability]
            rows.append({"model": r.model_key, "head": s.question, "A → B": s.forward, "B → A": s.backward,
                         "A → B verdict": yes if s.forward >= 0.5 else no,
                         "B → A verdict": yes if s.backward >= 0.5 else no})
    rows.append({"model": NOTE_MODEL, "head": "none", "A → B": None, "B → A": None,
                 "A → B verdict": "no NSP or SOP head", "B → A verdict": "no NSP or SOP head"})
    bar = dict(format="percent", min_value=0.0, max_value=1.0)
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
        "A → B": st.column_config.ProgressColumn("A → B", help="The pair as written", **bar),
        "B → A": st.column_config.ProgressColumn("B → A", help="The pair swapped", **bar)})
    st.caption("P(IsNext): BERT's next-sentence head; P(in order): ALBERT's sentence-order head. Each is the head's "
               "softmax over its two classes, read at [CLS] through the pooler.")
    st.info(f"**{NOTE_MODEL}**: {ROBERTA_NOTE} Models with a next-sentence head: "
            f"{', '.join(models_with(cat.NSP))}; with a sentence-order head: {', '.join(models_with(cat.SOP))}.")
    cut = [r.model_key for r in results if r.truncated]
    if cut:
        st.warning(f"The pair was too long for {', '.join(cut)}: both orders were cut alike.")


def _layouts(results) -> None:
    """The tokens and segment ids each model read, in both orders."""
    if not results:
        return
    with st.expander("What each model reads (tokens and segment ids)"):
        for r in results:
            heads = ", ".join(s.question for s in r.scores)
            st.markdown(f"**{chrome.plain(r.model_key)}** ({heads})")
            for name, tokens, segments in zip(("A → B", "B → A"), r.tokens, r.segment_ids):
                layout = pd.DataFrame([list(tokens), [str(s) for s in segments]], index=[name, "segment"])
                layout.columns = [str(c) for c in layout.columns]
                st.dataframe(layout, width="stretch")
