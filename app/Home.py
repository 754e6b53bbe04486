"""ctxlens Home: pick models, type a sentence, see how each model reads it."""

import streamlit as st

from ctxlens.figures.basic import hidden_norm_heatmap, token_table
from ctxlens.models import catalog as cat
from ui import chrome, inputs, pickers, running

EMBEDDED = ["all-MiniLM-L6-v2", "SmolLM2-135M-Instruct"]
# (page, label, the inputs it opens on): each lesson is a link, so a teacher can also share it
LESSONS = (
    ("pages/4_Masked_LM.py", "What does BERT predict?",
     {"model": "bert-base-uncased", "text": "The doctor told the [MASK] to rest for a week."}),
    ("pages/2_Polysemy_lab.py", "Two banks", {"preset": "bank"}),
    ("pages/1_Attention.py", "Who attends to whom?",
     {"model": EMBEDDED, "text": "The animal didn't cross the street because it was too tired."}),
    ("pages/6_Next_token.py", "Few-shot GPT", {"model": "SmolLM2-135M-Instruct", "view": "Few-shot lab"}),
    ("pages/5_ELMo.py", "ELMo's three layers",
     {"sentences": "She sat on the bank of the river.\nThe bank lent him money.\nThe plane began to bank left."}),
)

chrome.page_setup("Home")
st.title("ctxlens: see what contextual language models do")
st.markdown(
    "Type a sentence and compare how **ELMo**, **BERT**-style encoders and **GPT**-style causal "
    "models read it: their tokens, their layers, their attention and their predictions. "
    "Pick models in the sidebar; the pages on the left go deeper."
)

st.subheader("Lessons")
for column, (page, label, params) in zip(st.columns(len(LESSONS)), LESSONS):
    column.page_link(page, label=label, query_params=params)

device = pickers.device_picker()
models = pickers.model_picker()

with st.expander("Model status", expanded=False):
    pickers.status_panel(device)

text, second = inputs.sentence_input("The bank of the river was muddy after the storm.")

inputs.require_models(models)
text, second = inputs.require_pair(text, second)

columns = st.columns(len(models))
for column, key in zip(columns, models):
    with column:
        spec = cat.CATALOG.get(key)
        st.subheader(key)
        st.caption(spec.family.label if spec else "custom model")
        record = running.analyze(key, text, second, device)
        if record is None:
            continue
        st.markdown(
            f"**{record.n_tokens}** tokens · **{len(record.words)}** words · "
            f"**{record.n_layers}** layers" + (f" · **{record.n_heads}** heads" if record.n_heads else "")
        )
        st.dataframe(token_table(record), hide_index=True, height=260, width="stretch")
        chrome.chart(st, hidden_norm_heatmap(record), width="stretch", key=f"norms_{key}")
