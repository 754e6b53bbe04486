"""The layer story: what each layer of a model knows (probes, senses, contextuality, the logit
lens), the probes with their control tasks, and model vs model (CKA), by relative depth."""

import pandas as pd
import streamlit as st

from ctxlens.analysis.probing import PROBES
from ctxlens.errors import CtxlensError
from ctxlens.figures.layers import cka_heatmap, probe_figure, story_figure
from ctxlens.methods.labels import TASKS, label_source
from ctxlens.methods.layer_story import layer_story, story_text
from ctxlens.methods.probes import probe_curves
from ctxlens.methods.similarity import layer_similarity
from ctxlens.models import catalog as cat
from ui import chrome, inputs, pickers, running
from ui.state import BIND

RESULTS_KEY = "ls_results"  # (what, model(s), options) → result, per session
MAX_RESULTS = 40


def compute(results: dict, key: tuple, label: str, work) -> None:
    """results[key] = work(progress), with a progress bar over the tabs; a failure is a message."""
    if key in results:
        return
    bar = progress_area.progress(0.0, text=f"{label}: starting")
    try:
        results[key] = work(lambda f, message: bar.progress(min(max(f, 0.0), 1.0), text=f"{label}: {message}"))
    except Exception as exc:  # noqa: BLE001 - every failure is a message in the page
        with progress_area:
            chrome.show_error(exc)
    finally:
        bar.empty()


chrome.page_setup("Layer story")
st.title("The layer story")
st.markdown(
    "What does each layer know? On one axis of **relative depth** (0 = embeddings, 1 = last layer), "
    "for every chosen model: how selectively a linear probe reads part of speech, how well the senses "
    "of ambiguous words separate, how contextual the vectors are, and (for a model with an output head) "
    "how early the logit lens finds the right token. The sentences are the built-in corpus."
)
device = pickers.device_picker()
models = inputs.require_models(pickers.model_picker(methods=("layer-story",)))
c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
pooling = c1.selectbox("Sub-word pooling", ["mean", "first", "last"], key="ls_pooling", bind=BIND,
                       help="A word split into several tokens gets one vector: their mean, the first's or the last's.")
run = c2.button("Run", type="primary", key="ls_run", width="stretch")
progress_area = st.container()
options = dict(pooling=pooling, device=device, dtype=pickers.precision())
opts = tuple(options.values())
results = st.session_state.setdefault(RESULTS_KEY, {})
per_row = 1 if chrome.projector_on() else 2  # panels to a row: two crowd a projector's large labels
loaded = [m for m in models if run and running.load_model(m, device) is not None]

story_tab, probe_tab, vs_tab = st.tabs(["Story", "Probes", "Model vs model"], key="ls_view", bind=BIND)
with story_tab:
    for model in loaded:
        compute(results, ("story", model, opts), model, lambda p, m=model: layer_story(m, progress=p, **options))
    done = {m: results[("story", m, opts)] for m in models if ("story", m, opts) in results}
    if not done:
        st.info(f"Press **Run** to tell the story of {len(models)} model(s): about a minute a model on a CPU.")
    else:
        if missing := [m for m in models if m not in done]:
            st.info("Press **Run** to add: " + ", ".join(map(chrome.plain, missing)))
        story = pd.concat(done.values(), ignore_index=True)
        chrome.chart(st, story_figure(story, cols=min(len(done), per_row)), key="ls_story", width="stretch")
        st.markdown(story_text(story.assign(model=story.model.map(chrome.plain))))  # names as typed
        for model, frame in done.items():
            for note in frame.attrs.get("notes", []):
                st.caption(f"Not measured: {chrome.plain(note)}")
            if (spec := cat.CATALOG.get(model)) is not None and spec.test_model:
                st.caption(f"{model} has random weights: its curves show the mechanics, not a trained model.")
        st.caption("Every measure is on about 0 to 1 (selectivity and cosines can dip below 0). "
                   "Selectivity: probe accuracy minus a control task's (see Probes). "
                   "Self-similarity: one word's vectors across sentences (lower = more contextual); "
                   "anisotropy: two random words. Hover a point for its layer.")

with probe_tab:
    p1, p2 = st.columns(2)
    task = p1.selectbox("Task", list(TASKS), format_func=TASKS.get, key="ls_task", bind=BIND)
    kind = p2.selectbox("Probe", list(PROBES), key="ls_kind", bind=BIND,
                        help="  \n".join(f"**{k}**: {chrome.plain(what)}" for k, what in PROBES.items()))
    for model in loaded:
        compute(results, ("probe", model, task, kind, opts), f"{model}: {task} probes",
                lambda p, m=model: probe_curves(m, task, kind, progress=p, **options))
    frames = [results[k] for m in models if (k := ("probe", m, task, kind, opts)) in results]
    if frames:
        chrome.chart(st, probe_figure(pd.concat(frames, ignore_index=True), cols=min(len(frames), per_row),
                                      title=TASKS[task]), key="ls_probes", width="stretch")
    else:
        st.info("Press **Run** to train these probes (the logistic probe takes longer than ridge).")
    try:
        st.caption(label_source().describe(task))
    except CtxlensError as exc:
        chrome.show_error(exc)
    st.markdown(
        "- **Probe**: a linear classifier trained on one layer's word vectors, tested on other sentences.\n"
        "- **Control task** (Hewitt & Liang 2019): every word *type* gets one fixed random label; only "
        "memorising words solves it. **Selectivity** = probe − control: what the layer adds beyond word identity.\n"
        "- **Depth** is not fixed per word (\"the\" sits at many depths), yet its control is, so the control "
        "can score above the probe and selectivity can be negative: read the *shape* of the curve, not its level.\n"
        "- **Majority baseline** (dashed): always answering the most frequent label."
    )

with vs_tab:
    choices = models + [k for k in cat.CATALOG if k not in models]
    v1, v2 = st.columns(2)
    a = v1.selectbox("Model A", choices, format_func=pickers.model_label, key="ls_a")
    b = v2.selectbox("Model B", choices, index=min(1, len(models) - 1), format_func=pickers.model_label, key="ls_b")
    pairs = list(dict.fromkeys([(a, b), (a, a), (b, b)]))
    if run:
        for x, y in pairs:
            if running.load_model(x, device) is not None and running.load_model(y, device) is not None:
                compute(results, ("cka", x, y, opts), f"CKA {x} vs {y}",
                        lambda p, x=x, y=y: layer_similarity(x, None if x == y else y, progress=p, **options))
    sims = {pair: results[("cka", *pair, opts)] for pair in pairs if ("cka", *pair, opts) in results}
    if (a, b) not in sims:
        st.info("Press **Run** to compare these two models layer by layer (CKA on the corpus's words).")
    else:
        chrome.chart(st, cka_heatmap(sims[a, b], height=480), key="ls_cka", width="stretch")
        if a != b:
            sim = sims[a, b]
            best = ", ".join(f"{x} → {y}" for x, y in zip(sim.layers_a.tolist(), sim.best_match().tolist()))
            st.markdown(f"Most similar layer of **{chrome.plain(b)}** for each layer of **{chrome.plain(a)}** "
                        f"(circled): {best}.")
        st.caption("Linear CKA (Kornblith et al. 2019) on the same words of the same sentences: 1 = the same "
                   "geometry up to rotation and scale. Unrelated vectors do not score 0 on a few thousand words: "
                   f"the last layers with B's words shuffled score {sims[a, b].chance:.2f} here, the level to read "
                   "the map against. Each model against itself shows which of its layers are alike.")
    if selves := [sim for pair, sim in sims.items() if pair != (a, b)]:  # A and B, each against itself
        for number, (column, sim) in enumerate(zip(chrome.model_columns(len(selves)), selves)):
            chrome.chart(column, cka_heatmap(sim, height=400), key=f"ls_cka_self_{number}", width="stretch")

while len(results) > MAX_RESULTS:  # dicts keep insertion order: drop the oldest
    results.pop(next(iter(results)))
