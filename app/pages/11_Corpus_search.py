"""Corpus search (after exBERT): the occurrences of words in a corpus nearest to one word of
your sentence at a layer, and how those neighbours change from layer to layer."""

import hashlib
import tempfile
from pathlib import Path

import streamlit as st

from ctxlens.figures.layers import neighbour_layers_figure, neighbours_html
from ctxlens.methods.corpus import corpus_words, neighbours_across_layers, parquet_words, query_word, search
from ui import chrome, inputs, pickers, running, state
from ui.state import BIND

BUNDLED = "Built-in corpus"
UPLOAD = "A Parquet from `ctxlens embed`"
UPLOADS = Path(tempfile.gettempdir()) / "ctxlens-uploads"
TABLE_CSS = """<style>
table.ctx-neighbours { width: 100%; border-collapse: collapse; font-size: 1rem; }
table.ctx-neighbours th, table.ctx-neighbours td { text-align: left; padding: 0.25rem 0.6rem;
  border-bottom: 1px solid #ddd; vertical-align: top; }
table.ctx-neighbours mark { background: #ffe066; color: #000; padding: 0 0.15rem; border-radius: 0.2rem; }
</style>"""  # static CSS, no user text


def uploaded_corpus(upload):
    """The upload as a corpus: written once under its content's digest (the library caches
    a Parquet by path), then read."""
    data = upload.getvalue()
    path = UPLOADS / f"{hashlib.sha256(data).hexdigest()}.parquet"
    if not path.exists():
        UPLOADS.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return parquet_words(str(path))


def bundled(model: str, pooling: str, device: str):
    bar = st.progress(0.0, text=f"{model}: reading the corpus")
    try:
        return corpus_words(model, pooling=pooling, device=device, dtype=pickers.precision(),
                            progress=lambda f, message: bar.progress(min(max(f, 0.0), 1.0), text=f"{model}: {message}"))
    finally:
        bar.empty()


chrome.page_setup("Corpus search")
st.html(TABLE_CSS)
st.title("Corpus search: a word's nearest neighbours")
st.markdown(
    "Pick a word in a sentence: which words of the corpus does the model place nearest to it (cosine), "
    "at a layer you choose? Near the embeddings the neighbours are the same word in any sense; deeper, "
    "a contextual model gathers the occurrences used in the same sense, and sometimes other words."
)
device = pickers.device_picker()
model = inputs.require_models(pickers.model_picker("Model", methods=("corpus-search",), multi=False))[0]

source = st.radio("Corpus", [BUNDLED, UPLOAD], horizontal=True, key="cs_source", bind=BIND)
upload = None
if source == UPLOAD:
    upload = st.file_uploader("Word vectors written by `ctxlens embed sentences.txt -o words.parquet --model …`",
                              type=["parquet"], key="cs_upload")
text, _ = inputs.sentence_input("She sat on the bank of the river.", pair=False, key="cs_text")
state.seeded("cs_word", "target", "bank")
c1, c2, c3, c4 = st.columns(4)
c1.text_input("Word", key="cs_word")
word = state.keep("cs_word", "target")
occurrence = int(c2.number_input("Occurrence", 1, 50, 1, key="cs_occurrence", bind=BIND,
                                 help="Which of the word's whole-word occurrences in the sentence: 1 = the first…"))
k = int(c3.number_input("Neighbours (k)", 1, 50, 10, key="cs_k", bind=BIND))
pooling = c4.selectbox("Sub-word pooling", ["mean", "first", "last"], key="cs_pooling", bind=BIND,
                       help="How a word of several tokens gets one vector. For an uploaded file, pick the pooling "
                            "it was written with (`ctxlens embed --pooling`, mean by default).")
text = inputs.require_text(text, "sentence")
if source == UPLOAD and upload is None:
    st.info("Upload a Parquet file written by `ctxlens embed`, or search the built-in corpus.")
    st.stop()

try:
    if upload is not None:
        corpus = uploaded_corpus(upload)
        if corpus.model != model:
            st.info(f"The file holds vectors of **{chrome.plain(corpus.model)}**, so that model reads your "
                    f"sentence (not {chrome.plain(model)}).")
            model = corpus.model
    elif running.load_model(model, device) is not None:
        corpus = bundled(model, pooling, device)
    else:
        st.stop()
except Exception as exc:  # noqa: BLE001 - ours say what to do; any other is still a message
    chrome.show_error(exc)
    st.stop()
if running.load_model(model, device) is None:
    st.stop()
st.caption(f"{len(corpus.texts):,} sentences, {len(corpus):,} words, layers "
           f"{', '.join(map(str, corpus.layers.tolist()))} of {chrome.plain(corpus.model)}.")

layers = corpus.layers.tolist()
if st.session_state.get("cs_layer") not in layers:  # a new corpus or model: its middle layer
    st.session_state["cs_layer"] = layers[len(layers) // 2]
layer = st.select_slider("Layer (0 = embeddings)", layers, key="cs_layer")
try:
    query = query_word(model, text, word, occurrence - 1, layers=corpus.layers, pooling=pooling,
                       device=device, dtype=pickers.precision())
    found = search(corpus, query, layer, k)
    across = neighbours_across_layers(corpus, query, k)
except Exception as exc:  # noqa: BLE001 - ours say what to do; any other is still a message
    chrome.show_error(exc)
    st.stop()

st.subheader(f"The {len(found)} nearest occurrences at layer {layer}")
st.markdown(f"{int(found.same_word.sum())} of the {len(found)} are '{chrome.plain(query.word)}' itself; "
            "cosine 1 = the same direction.")
st.markdown(neighbours_html(found), unsafe_allow_html=True)  # escaped in neighbours_html

st.subheader("Across the layers")
chrome.chart(st, neighbour_layers_figure(across, k), key="cs_across", width="stretch")
st.dataframe(across, hide_index=True, width="stretch", column_config={
    "relative_depth": st.column_config.NumberColumn("relative depth", format="%.2f"),
    "same_word": "same word", "mean_cosine": st.column_config.NumberColumn("mean cosine", format="%.3f"),
    "kept_from_previous": "kept from previous", "top_word": "nearest word", "top_sentence": "its sentence"})
st.download_button("Download the neighbours (CSV)", found.to_csv(index=False), file_name=f"neighbours_layer{layer}.csv",
                   mime="text/csv", key="cs_download")
