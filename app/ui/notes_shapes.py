"""Course notes, "The four fine-tuning shapes": which positions a task head reads for a sentence,
its tokens, a sentence pair and a question with its passage, drawn over the chosen model's own
tokenisation, beside the trained heads that model has for each shape."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ctxlens.errors import CtxlensError
from ctxlens.figures.shapes import SHAPE_READS, SHAPE_TITLES, SHAPES, PAIRED, live_heads, shapes_figure
from ctxlens.record import Family
from ctxlens.validate import clean_text

from . import chrome, running
from .chrome import plain
from .pickers import pick_model
from .state import BIND

P = "nsh"  # widget key prefix
DEFAULT_A = "Where did the cat sleep?"
DEFAULT_B = "The cat slept on the warm mat by the door."


def render(device: str) -> None:
    st.markdown(
        "BERT's paper fine-tunes one pre-trained encoder for four shapes of task by adding one small "
        "head on top. The shapes differ in **what goes in** (one text, or two joined as [CLS] A [SEP] B "
        "[SEP]) and in **which final vectors the head reads**: one vector for a whole input, or one per "
        "token. Below, each row is one shape over the chosen model's own tokens; orange cells are read."
    )
    key = pick_model(f"{P}_model", "Model", device)
    c_a, c_b = st.columns(2)
    a = c_a.text_input("Text A (the sentence; for span extraction, the question)", DEFAULT_A, key=f"{P}_a", bind=BIND)
    b = c_b.text_input("Text B (the second sentence; for span extraction, the passage)", DEFAULT_B,
                       key=f"{P}_b", bind=BIND)
    try:
        a, b = clean_text(a, "text A"), clean_text(b, "text B")
    except CtxlensError as exc:
        st.warning(str(exc))
        return
    lm = running.load_model(key, device)
    single = running.analyze(key, a, None, device) if lm is not None else None
    pair = running.analyze(key, a, b, device) if single is not None else None
    if pair is None:
        return
    heads = live_heads(lm.spec)
    decoder = single.family is Family.CAUSAL_LM
    chrome.chart(st, lambda: shapes_figure(single, pair, decoder, heads), key=f"{P}_figure", width="stretch",
                 shared=("shapes", running.input_key(single, device), running.input_key(pair, device),
                         tuple((s, tuple(h)) for s, h in heads.items())))
    st.dataframe(pd.DataFrame([
        {"shape": SHAPE_TITLES[s], "input": "A and B" if s in PAIRED else "A alone", "the head reads": SHAPE_READS[s],
         f"trained head in {key}": ", ".join(heads[s]) or "none"}
        for s in SHAPES]), hide_index=True, width="stretch")
    notes(lm.spec.key, decoder, any(heads.values()))


def notes(key: str, decoder: bool, has_head: bool) -> None:
    lines = []
    if decoder:
        lines.append("A decoder has no [CLS]: every token sees only what came before it, so its sequence "
                     "classifier reads the last token, the only one that has seen the whole input.")
    if not has_head:
        lines.append(f"{plain(key)} has no trained head for any of the shapes (catalog models are pre-trained "
                     "only): the rows show where a head *would* read. The notes tab on adapters trains one.")
    lines.append("Span extraction scores every position, but a decoded answer lies in the passage (B) only; "
                 "see the Question answering page. The Masked LM page's **Fine-tuning heads** tab runs a "
                 "checkpoint's sentence and token classifiers.")
    st.caption(" ".join(lines))
