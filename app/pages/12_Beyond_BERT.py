"""Beyond BERT: the rest of the course notes, each a live view. XLNet's permutation language
modelling, next-sentence vs sentence-order prediction (and RoBERTa, which dropped both),
multilingual BERT's cross-lingual alignment, adapters and partial fine-tuning, and the four
fine-tuning shapes.

One section runs at a time (a radio, not tabs): each section loads its own models, and tabs
would run every section's code on every rerun."""

import importlib

import streamlit as st

from ui import chrome, pickers
from ui.state import BIND

SECTIONS = {  # label → the ui module that draws it
    "XLNet: permutation LM": "notes_xlnet",
    "NSP vs SOP": "notes_pairs",
    "Multilingual BERT": "notes_multilingual",
    "Adapters": "notes_adapters",
    "Fine-tuning shapes": "notes_shapes",
}

chrome.page_setup("Beyond BERT")
st.title("Beyond BERT")
st.markdown("What came after BERT in the course notes, each shown on a real model: pick a section.")
device = pickers.device_picker()
section = st.radio("Section", list(SECTIONS), horizontal=True, key="bb_section", bind=BIND,
                   label_visibility="collapsed")
importlib.import_module(f"ui.{SECTIONS[section]}").render(device)
