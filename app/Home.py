"""ctxlens Home: pick models, type a sentence, see how each model reads it."""

import streamlit as st

import widgets
from ctxlens.figures.basic import hidden_norm_heatmap, token_table
from ctxlens.models import catalog as cat

widgets.page_setup("Home")
st.title("ctxlens: see what contextual language models do")
st.markdown(
    "Type a sentence and compare how **ELMo**, **BERT**-style encoders and **GPT**-style causal "
    "models read it: their tokens, their layers, their attention and their predictions. "
    "Pick models in the sidebar; the pages on the left go deeper."
)

device = widgets.device_picker()
models = widgets.model_picker()

with st.expander("Model status", expanded=False):
    widgets.status_panel(device)

text, second = widgets.sentence_input("The bank of the river was muddy after the storm.")

widgets.require_models(models)
text, second = widgets.require_pair(text, second)

columns = st.columns(len(models))
for column, key in zip(columns, models):
    with column:
        spec = cat.CATALOG.get(key)
        st.subheader(key)
        st.caption(spec.family.label if spec else "custom model")
        record = widgets.analyze(key, text, second, device)
        if record is None:
            continue
        st.markdown(
            f"**{record.n_tokens}** tokens · **{len(record.words)}** words · "
            f"**{record.n_layers}** layers" + (f" · **{record.n_heads}** heads" if record.n_heads else "")
        )
        st.dataframe(token_table(record), hide_index=True, height=260, width="stretch")
        st.plotly_chart(hidden_norm_heatmap(record), width="stretch", key=f"norms_{key}")
