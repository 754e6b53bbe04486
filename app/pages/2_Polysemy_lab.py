"""Polysemy lab ("two banks"): one ambiguous word in many sentences, followed through the
layers of every chosen model. Does the model give "bank" (money) and "bank" (river)
different vectors, and from which layer on?"""

import hashlib
import threading

import numpy as np
import pandas as pd
import streamlit as st

from ctxlens.analysis.extract import locate_target
from ctxlens.analysis.polysemy import (
    UNLABELLED,
    all_identical,
    check_target,
    collect_target_vectors,
    cosine_matrix,
    load_presets,
    parse_sentences,
    parse_upload,
    project,
    separation_by_layer,
    warm_up_umap,
)
from ctxlens.cache import cached
from ctxlens.errors import CtxlensError
from ctxlens.figures.embeddings import (
    coordinates_frame,
    cosine_heatmap,
    sense_scatter,
    separation_lines,
)
from ctxlens.methods.extraction import analyze_all
from ctxlens.models import catalog as cat
from ui import exercise, chrome, inputs, pickers, running, state, why
from ui.state import BIND

MAX_SENTENCES = 300  # a lab, not a corpus run: `ctxlens embed` handles files of any size
OWN = "(my own sentences)"
PROJECTIONS = {"PCA": "pca", "UMAP": "umap", "t-SNE": "tsne"}
OCCURRENCES = {"every occurrence": "all", "first in each sentence": "first"}
POOLING_HELP = "A word split into several sub-word tokens gets one vector: the first token's, their mean, or the last's."


def umap_warm_up() -> threading.Thread:
    """Numba compiles UMAP once per process (~15 s): start it in the background at first visit.
    (Should the cache drop the thread, a new one finds the work done: warm_up_umap runs once.)"""
    def start() -> threading.Thread:
        thread = threading.Thread(target=warm_up_umap, name="umap-warm-up", daemon=True)
        thread.start()
        return thread

    return cached(("umap_warm_up",), start)


def projected(vectors: np.ndarray, method: str, seed: int) -> np.ndarray:
    """Kept per (vectors, method, seed): the digest of the vectors stands for the model, device,
    precision, sentences, target, pooling and layer they come from."""
    digest = hashlib.blake2b(np.ascontiguousarray(vectors).tobytes(), digest_size=16).hexdigest()
    return cached(("lab_projection", vectors.shape, str(vectors.dtype), digest, method, seed),
                  lambda: project(vectors, method, seed))


def target_vectors(key, device, sentences, target, pooling, which):
    bar = st.progress(0.0, text=f"{key}: reading {len(sentences)} sentences")
    try:
        records = analyze_all(
            key, [s.text for s in sentences], device=device, dtype=pickers.precision(),
            progress=lambda f, message: bar.progress(min(f, 1.0), text=f"{key}: {message}"),
        )
        return collect_target_vectors(records, sentences, target, pooling, which)
    finally:
        bar.empty()


def use_preset() -> None:
    preset = PRESETS.get(st.session_state["lab_preset"])
    if preset is not None:
        st.session_state["lab_target"] = preset.target
        st.session_state["lab_text"] = preset.as_text()


def typed_by_hand() -> None:
    st.session_state["lab_preset"] = OWN  # the box no longer holds the preset


chrome.page_setup("Polysemy lab")
umap_warm_up()
PRESETS = load_presets()
# A link (a lesson's included) names a preset, or its own sentences; the target it names wins
# over the preset's.
if (linked := state.from_link("lab_preset", "preset")) in (OWN, *PRESETS):
    st.session_state["lab_preset"] = linked
    use_preset()
if state.seeded("lab_preset", "preset", "bank") not in (OWN, *PRESETS):  # an old or mistyped link
    st.session_state["lab_preset"] = "bank"
state.seeded("lab_target", "target", PRESETS["bank"].target)
state.seeded("lab_text", "sentences", PRESETS["bank"].as_text())

st.title("Polysemy lab: two banks")
st.markdown(
    "Follow one word through many sentences. Each point is one occurrence of the word, "
    "coloured by the sense you tagged it with (`sense | sentence`). A static embedding "
    "gives every occurrence the same vector; a contextual model should pull the senses "
    "apart, more in some layers than in others."
)
device = pickers.device_picker()
exercise.on_page("Polysemy lab", device)
models = pickers.model_picker()

left, right = st.columns([1, 2])
with left:
    st.selectbox("Preset", [OWN, *PRESETS], key="lab_preset", on_change=use_preset,
                 help="Built-in ambiguous words with sentences tagged by sense.")
    target_text = st.text_input("Target word", key="lab_target")
    upload = st.file_uploader(
        "…or upload sentences", type=["txt", "csv"], key="lab_upload",
        help=".txt: one per line, optionally `sense | sentence`; .csv: a `sentence` column and an optional `sense` column",
    )
with right:
    text = st.text_area("Sentences, one per line (optionally `sense | sentence`)", key="lab_text",
                        height=250, on_change=typed_by_hand)

own = state.keep("lab_preset", "preset") == OWN
state.keep("lab_target", "target")
state.keep("lab_text", "sentences", linked=own)  # a preset's sentences are the preset's name

c1, c2, c3, c4 = st.columns(4)
which = OCCURRENCES[c1.radio("Occurrences", list(OCCURRENCES), key="lab_which", bind=BIND)]
pooling = c2.selectbox("Sub-word pooling", ["mean", "first", "last"], key="lab_pooling", bind=BIND, help=POOLING_HELP)
method = PROJECTIONS[c3.selectbox("Projection", list(PROJECTIONS), key="lab_projection", bind=BIND)]
seed = int(c4.number_input("Seed", 0, 2**31 - 1, 0, key="lab_seed", bind=BIND, help="UMAP and t-SNE are random; the same seed gives the same picture."))

try:
    sentences = parse_upload(upload.name, upload.getvalue()) if upload else parse_sentences(text)
    target = check_target(target_text)
except CtxlensError as exc:
    chrome.show_error(exc)
    st.stop()
if upload:
    st.caption(f"Using {len(sentences)} sentences from the uploaded file (the box above is ignored).")
if len(sentences) < 2:
    st.warning("Give at least two sentences containing the target word.")
    st.stop()
if len(sentences) > MAX_SENTENCES:
    st.warning(f"{len(sentences)} sentences: the lab uses the first {MAX_SENTENCES}.")
    sentences = sentences[:MAX_SENTENCES]
inputs.require_models(models)
# CTXLENS_REQUEST_TOKENS: every model reads the same first sentences, within the request's tokens.
sentences = sentences[:running.sentence_budget(models, [s.text for s in sentences], device)]

where = locate_target([s.text for s in sentences], target, which)
if not where.found:
    st.warning(where.absent_message())
    st.stop()
if where.missing:
    st.info(f"{len(where.missing)} of {len(sentences)} sentences do not contain '{target}' as a "
            "whole word and are left out:")
    st.dataframe(pd.DataFrame({"sentence": [sentences[i].text for i in where.missing]},
                              index=[i + 1 for i in where.missing]), height=150)

sentence_key = tuple((s.text, s.sense) for s in sentences)
occurrences = {}
for key in models:
    if running.load_model(key, device) is None:
        continue
    try:
        # Target vectors by (model, device, precision, sentences, options), shared by every session.
        occurrences[key] = cached(
            ("lab_vectors", key, device, pickers.precision(), sentence_key, target.casefold(), pooling, which),
            lambda key=key: target_vectors(key, device, sentences, target, pooling, which),
        )
    except Exception as exc:
        chrome.show_error(exc)
        continue
    cut = sorted(set(occurrences[key].missing) - set(where.missing))
    if cut:
        st.caption(f"{key}: '{target}' was cut off by truncation in sentences "
                   + ", ".join(str(i + 1) for i in cut) + ".")
    spec = cat.CATALOG.get(key)
    if spec is not None and spec.test_model:
        st.caption(f"{key} has random weights: it shows the mechanics, not what a trained model knows.")
if not occurrences:
    st.stop()

st.subheader("The occurrences in 2-D")
# persist_state: a run that stops early (a target absent from the sentences) keeps the
# depth on the server but unmounts the slider; without it the slider came back at 0.5 in
# the browser while the charts kept the old layer.
depth = st.slider("Layer, by relative depth (0 = embeddings, 1 = last layer; each model takes its nearest layer)",
                  0.0, 1.0, 0.5, 0.05, key="lab_depth", bind=BIND, persist_state="page")
layers = {k: int(np.abs(occ.relative_depth - depth).argmin()) for k, occ in occurrences.items()}
same = [k for k, occ in occurrences.items() if all_identical(occ.vectors[layers[k]])]
if method == "umap" and umap_warm_up().is_alive():
    with st.spinner("Compiling UMAP (once per server start)…"):
        umap_warm_up().join()
bar = st.progress(0.0, text=f"Projecting with {method.upper()}…") if method != "pca" else None
coords = {}
for done, (k, occ) in enumerate(occurrences.items(), start=1):
    coords[k] = projected(occ.vectors[layers[k]], method, seed)
    if bar is not None:
        bar.progress(done / len(occurrences), text=f"Projected {k} ({done} of {len(occurrences)} models)")
if bar is not None:
    bar.empty()
titles = [f"{k} · layer {layers[k]} of {occ.vectors.shape[0] - 1}" + (" · all vectors identical" if k in same else "")
          for k, occ in occurrences.items()]
chrome.chart(st, sense_scatter(list(coords.values()), list(occurrences.values()), titles),
             key="lab_scatter", width="stretch")
for k in same:
    st.info(f"{k}, layer {layers[k]}: all vectors identical at this layer. Every occurrence of "
            f"'{target}' has the same vector, drawn as one point: the senses cannot separate here.")
st.caption("Hover a point for its sentence. Nearby points have similar vectors; "
           "the axes of a projection have no meaning of their own.")

st.subheader("Cosine similarity between occurrences")
for tab, (key, occ) in zip(st.tabs(list(occurrences), key="lab_cosine_model", bind=BIND), occurrences.items()):
    with tab:
        matrix, order = cosine_matrix(occ.vectors[layers[key]], occ.senses)
        title = f"'{target}' in {key}, layer {layers[key]} (rows grouped by sense)"
        chrome.chart(st, cosine_heatmap(matrix, [occ.senses[i] for i in order], title),
                     key=f"lab_cosine_{key}", width="stretch")

st.subheader("How well the senses separate, layer by layer")
senses = {s for occ in occurrences.values() for s in occ.senses if s != UNLABELLED}
metrics = pd.concat([separation_by_layer(occ) for occ in occurrences.values()], ignore_index=True)
if len(senses) < 2:
    st.info("Tag the sentences with at least two senses (`sense | sentence`) to measure separation.")
else:
    chrome.chart(st, separation_lines(metrics, chance=1 / len(senses)), key="lab_separation", width="stretch")
    st.caption("Accuracy: each occurrence, left out, is given the sense whose mean vector is nearest "
               "(cosine). Silhouette: how much closer an occurrence is to its own sense than to the "
               "nearest other sense (1 = perfectly apart, 0 = mixed or all vectors identical).")
    st.dataframe(metrics, hide_index=True, width="stretch")

frames = [coordinates_frame(coords[k], occ, layers[k], k) for k, occ in occurrences.items()]
d1, d2 = st.columns(2)
d1.download_button("Download the 2-D coordinates (CSV)", pd.concat(frames).to_csv(index=False),
                   file_name=f"{target}_{method}_coordinates.csv", mime="text/csv", key="lab_dl_coords")
d2.download_button("Download the separation metrics (CSV)", metrics.to_csv(index=False),
                   file_name=f"{target}_separation.csv", mime="text/csv", key="lab_dl_metrics")

why.sense_section(occurrences, layers, device)
