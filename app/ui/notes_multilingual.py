"""Multilingual BERT's cross-lingual alignment (a tab of the "Beyond BERT" page): does a word's
vector lie nearest to its translation's, layer by layer, before and after each language's mean
is subtracted? Made for bert-base-multilingual-cased; any model with hidden states runs it, and
an English-only one shows what no multilingual training gives."""

from __future__ import annotations

import streamlit as st

from ctxlens.errors import CtxlensError
from ctxlens.figures.crosslingual import MEASURES, retrieval_figure
from ctxlens.methods import registry
from ctxlens.methods.crosslingual import (
    METHOD,
    aligned_words,
    bundled_source,
    directions,
    languages,
    load_pairs,
    retrieval_table,
    summary,
    word_retrieval,
)
from ctxlens.models import catalog as cat
from ctxlens.models.loading import hub_offline
from ctxlens.models.registry import model_status

from . import chrome, pickers, running
from .state import BIND, EXTRA_KEY, unavailable

MULTILINGUAL = "bert-base-multilingual-cased"
BASELINE = "all-MiniLM-L6-v2"  # embedded, English only: the baseline that runs offline
MODEL_KEY = "ml_model"
INTRO = (
    "Multilingual BERT was pre-trained on Wikipedia in 104 languages with one shared vocabulary and **no "
    "parallel text**, yet a word and its translation end up near each other. Here each aligned English word "
    "of a small set of translated sentences looks for its translation among the aligned words of the other "
    "language in **all** the pairs, by cosine, at every layer (and the other way round): **precision@1** is "
    "how often the nearest one is the translation, **MRR** the mean of 1 / its rank. **Mean-centred**: each "
    "language's mean vector (over every word of its sentences) is subtracted first, which removes the offset "
    "that keeps the languages apart."
)
POOLINGS = ("mean", "first", "last")


def model_options() -> list[str]:
    """The catalog models the method applies to, then the models added in the sidebar."""
    options = registry.models_for([METHOD])
    return options + [k for k in st.session_state.get(EXTRA_KEY, []) if k not in options]


def use_baseline() -> None:
    st.session_state[MODEL_KEY] = BASELINE


def can_read(model: str, device: str) -> bool:
    """Whether `model` can be read now. Otherwise says which model this needs and why it cannot
    load, offering its download (online) or the English-only baseline (offline)."""
    spec = cat.CATALOG.get(model)
    if spec is None:  # a model added in the sidebar: loading it says what fails
        return True
    status = model_status(spec, device)
    if status.state in ("ready", "on disk"):
        return True
    size = f"a download of about {spec.size_mb:,} MB" if spec.size_mb else "a download"
    if status.state == "needs download":
        st.info(f"**{model}** is not on this machine yet: {size}, once.")
        return st.button(f"Download {model} and run", key="ml_download", type="primary", icon=":material/download:")
    offline = " With the network on, this tab offers the download." if hub_offline() else ""
    st.warning(f"This view needs **{model}** ({size}), which cannot be loaded here: {status.detail}.{offline}",
               icon=":material/cloud_off:")
    if model != BASELINE and unavailable(BASELINE) is None:
        st.button(f"Run it with {BASELINE} instead: an English-only model, the baseline of no multilingual training",
                  key="ml_use_baseline", on_click=use_baseline)
    return False


def model_note(model: str) -> None:
    spec = cat.CATALOG.get(model)
    if spec is None or model == MULTILINGUAL:
        return
    if spec.test_model:
        st.caption(f"{model} has random weights: its numbers show the mechanics, not a trained model.")
    else:
        st.info(f"**{model}** was trained on English only: what it retrieves comes from word pieces the languages "
                f"share (Kaffee, coffee) and from where words sit in the sentence, not from multilingual training. "
                f"Compare it with {MULTILINGUAL}.")


def read(model: str, language: str, pooling: str, device: str):
    bar = st.progress(0.0, text=f"{model}: reading the sentence pairs")
    try:
        return aligned_words(model, language, pooling=pooling, device=device, dtype=pickers.precision(),
                             progress=lambda f, m: bar.progress(min(max(f, 0.0), 1.0), text=f"{model}: {m}"))
    finally:
        bar.empty()


def word_table(aligned) -> None:
    st.subheader("Word by word")
    layers = aligned.layers.tolist()
    if st.session_state.get("ml_layer") not in layers:  # a new model: its last layer
        st.session_state["ml_layer"] = layers[-1]
    c1, c2, c3 = st.columns([3, 2, 1], vertical_alignment="bottom")
    layer = c1.select_slider("Layer (0 = embeddings)", layers, key="ml_layer")
    options = directions(aligned.language)
    if st.session_state.get("ml_direction") not in options:  # another language pair: its first direction
        st.session_state["ml_direction"] = options[0]
    direction = c2.radio("Direction", options, horizontal=True, key="ml_direction")
    centred = c3.toggle("Mean-centred", key="ml_centred", bind=BIND)
    words = word_retrieval(aligned, layer, direction, centred)
    st.caption(f"At layer {layer}, {int(words.correct.sum())} of {len(words)} words retrieve their translation first.")
    st.dataframe(words.drop(columns="pair"), hide_index=True, width="stretch", column_config={
        "cosine_translation": st.column_config.NumberColumn("cosine to the translation", format="%.3f"),
        "cosine_retrieved": st.column_config.NumberColumn("cosine to the retrieved word", format="%.3f"),
        "retrieved": "retrieved first", "rank": "rank of the translation"})


def render(device: str) -> None:
    st.markdown(INTRO)
    names = languages()
    c1, c2, c3 = st.columns([1, 2, 1])
    language = c1.selectbox("Language pair", list(names), format_func=lambda c: f"English – {names[c]}",
                            key="ml_language", bind=BIND)
    options = model_options()
    model = c2.selectbox("Model", options, index=options.index(MULTILINGUAL), format_func=pickers.model_label,
                         key=MODEL_KEY, bind=BIND)
    pooling = c3.selectbox("Sub-word pooling", POOLINGS, key="ml_pooling", bind=BIND,
                           help="A word split into several tokens gets one vector: their mean, the first's or the last's.")
    if not can_read(model, device) or (lm := running.load_model(model, device)) is None:
        return
    if running.refuse_without(lm, METHOD, device):
        return
    model_note(model)
    try:
        aligned = read(model, language, pooling, device)
        table = retrieval_table(aligned)
    except CtxlensError as exc:
        chrome.show_error(exc)
        return
    first = table.iloc[0]
    st.caption(f"{len(load_pairs(language))} sentence pairs, {len(aligned.english)} aligned words: each query ranks "
               f"{int(first.candidates)} candidates. A random order would give precision@1 "
               f"{first.chance_precision_at_1:.3f} and MRR {first.chance_mrr:.3f} (the grey line).")
    if aligned.skipped:
        st.caption(f"Left out, as {chrome.plain(model)} gives a word of them no vector (an unknown token, or cut off): "
                   + chrome.plain(", ".join(aligned.skipped)))
    for column, measure in zip(chrome.model_columns(len(MEASURES)), MEASURES):
        chrome.chart(column, retrieval_figure(table, measure), key=f"ml_{measure}", width="stretch")
    number = st.column_config.NumberColumn(format="%.2f")
    frame = summary(table)
    st.dataframe(frame, hide_index=True, width="stretch",
                 column_config={c: number for c in frame.columns if c != "layer"})
    word_table(aligned)
    st.caption(f"The sentences: {chrome.plain(bundled_source())}")
