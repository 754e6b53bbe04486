"""How contextual are the word vectors? Ethayarajh's (EMNLP 2019) measures, layer by layer,
for every chosen model, beside what the paper found."""

import pandas as pd
import streamlit as st

from ctxlens.analysis.contextuality import (
    MIN_OCCURRENCES,
    PAPER_FINDINGS,
    contextuality_report,
    load_corpus,
)
from ctxlens.analysis.polysemy import parse_sentences, parse_upload
from ctxlens.errors import CtxlensError
from ctxlens.figures.embeddings import contextuality_lines
from ctxlens.methods.extraction import analyze_all
from ctxlens.models import catalog as cat
from ui import exercise, chrome, inputs, pickers, running
from ui.state import BIND

REPORTS_KEY = "cx_reports"  # (model, device, sentences, pooling) → report, per session
MAX_REPORTS = 24
CORPUS = "Built-in corpus"
OWN = "My own sentences"


def measure(key: str, device: str, texts: tuple[str, ...], pooling: str) -> pd.DataFrame:
    """One model's report; the bar runs over the model passes (70%) then the measures."""
    bar = st.progress(0.0, text=f"{key}: starting")

    def step(start: float, span: float):
        return lambda f, message: bar.progress(min(start + span * f, 1.0), text=f"{key}: {message}")

    try:
        records = analyze_all(key, list(texts), device=device, progress=step(0.0, 0.7), dtype=pickers.precision())
        return contextuality_report(records, pooling=pooling, progress=step(0.7, 0.3))
    finally:
        bar.empty()


chrome.page_setup("Contextuality")
st.title("How contextual are the word vectors?")
st.markdown(
    "After Ethayarajh (2019). For each layer: **self-similarity** (how alike one word's vectors "
    "are across sentences; 1 = not contextual at all), **intra-sentence similarity** (how alike "
    "a sentence's words are), and the **anisotropy baseline** (how alike two random words are). "
    f"Only words seen in at least {MIN_OCCURRENCES} sentences count for self-similarity."
)
device = pickers.device_picker()
exercise.on_page("Contextuality", device)
models = pickers.model_picker()

source = st.radio("Sentences", [CORPUS, OWN], horizontal=True, key="cx_source", bind=BIND)
try:
    if source == CORPUS:
        available = load_corpus()
        st.caption(f"{len(available)} everyday sentences written for this app, with many shared words.")
    else:
        text = st.text_area("Sentences, one per line", key="cx_text", bind=BIND, height=200,
                            placeholder="The dog barked at the postman.\nThe postman gave the dog a biscuit.")
        upload = st.file_uploader("…or upload a .txt (one per line) or .csv (a `sentence` column)",
                                  type=["txt", "csv"], key="cx_upload")
        parsed = parse_upload(upload.name, upload.getvalue()) if upload else parse_sentences(text)
        available = [s.text for s in parsed]
except CtxlensError as exc:
    chrome.show_error(exc)
    st.stop()
if len(available) < 2:
    st.warning("Give at least two sentences: the measures compare words across sentences.")
    st.stop()

c1, c2, c3 = st.columns([2, 2, 1])
n = int(c1.number_input("Number of sentences", 2, len(available), min(60, len(available)), key="cx_n", bind=BIND,
                        help="The first n sentences. More sentences: more words pass the 5-sentence bar, "
                             "but a large GPT-style model on the CPU takes a while."))
pooling = c2.selectbox("Sub-word pooling", ["mean", "first", "last"], key="cx_pooling", bind=BIND)
run = c3.button("Run", type="primary", key="cx_run")
texts = tuple(available[:n])
inputs.require_models(models)
# CTXLENS_REQUEST_TOKENS: every model reads the same first sentences, within the request's
# tokens (counted once the models are loaded: "Run" loads them).
texts = texts[:running.sentence_budget(models, texts, device, load=run)]

reports = st.session_state.setdefault(REPORTS_KEY, {})
keys = {m: (m, device, texts, pooling) for m in models}
if run:
    for model, key in keys.items():
        if key in reports or running.load_model(model, device) is None:
            continue
        try:
            reports[key] = measure(model, device, texts, pooling)
        except Exception as exc:
            chrome.show_error(exc)
    while len(reports) > MAX_REPORTS:  # dicts keep insertion order: drop the oldest
        reports.pop(next(iter(reports)))

done = {m: reports[k] for m, k in keys.items() if k in reports}
waiting = [m for m in models if m not in done]
if not done:
    st.info(f"Press **Run** to measure {len(models)} model(s) on {len(texts)} sentences.")
    st.stop()
if waiting and not run:
    st.info("Press **Run** to add: " + ", ".join(waiting))
for model in done:
    spec = cat.CATALOG.get(model)
    if spec is not None and spec.test_model:
        st.caption(f"{model} has random weights: its curves show the mechanics, not a trained model.")

frame = pd.concat(done.values(), ignore_index=True)
# Full width, two panels to a row: three side by side beside the findings were too narrow to read.
raw, adjusted = st.tabs(["Raw cosines", "Minus the anisotropy baseline"], key="cx_view", bind=BIND)
for tab, adjust in ((raw, False), (adjusted, True)):
    chrome.chart(tab, contextuality_lines(frame, adjusted=adjust, height=340, cols=2),
                 key=f"cx_lines_{adjust}", width="stretch")
st.markdown(
    "- **Relative depth**: 0 = the embedding layer, 1 = the last layer, so models of different "
    "depth share one axis. Hover a point for its layer.\n"
    "- **Lower self-similarity** = more contextual: a word's vectors differ more between sentences.\n"
    "- **Read against the baseline**: two random words already have a positive cosine (anisotropy); "
    "the second tab subtracts it."
)
no_types = [m for m, r in done.items() if r["n_types"].iloc[0] == 0]
if no_types:
    st.warning(f"No word occurs in {MIN_OCCURRENCES} or more of these sentences, so self-similarity "
               f"is empty for {', '.join(no_types)}: add sentences that share words.")
with st.expander("What the paper found"):
    st.markdown(PAPER_FINDINGS)

st.dataframe(frame, hide_index=True, width="stretch")
st.download_button("Download the table (CSV)", frame.to_csv(index=False), file_name="contextuality.csv",
                   mime="text/csv", key="cx_download")
