"""ELMo's three layers: each word's vector per layer, the same word across sentences, and
the scalar mix that a task learns over the layers (also applied to a BERT/GPT model)."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from ctxlens.analysis.layers import (
    S_RANGE,
    cross_sentence_table,
    cross_sentence_word_cosines,
    layer_cosines,
    mix_presets,
    mix_table,
    word_layers,
    word_norms,
)
from ctxlens.figures.basic import safe_label
from ctxlens.methods import registry
from ctxlens.models import catalog as cat
from ctxlens.models.elmo_catalog import TINY_ELMO_KEY
from ctxlens.models.registry import model_status
from ui import exercise, chrome, inputs, pickers, running, state
from ui.state import BIND

MAX_SENTENCES = 12
DEFAULT_SENTENCES = (
    "The bank raised its interest rates.\n"
    "We had a picnic on the bank of the river.\n"
    "You can bank on her to finish the work."
)


def is_elmo(spec) -> bool:
    """A model with ELMo's character layer and biLSTM layers (what this page is about)."""
    return registry.method("elmo-layers").applies(spec)


def prefer_an_elmo(device: str) -> None:
    """If no ELMo is chosen yet: a real one already on disk, else the tiny test model (offline)."""
    elmo = registry.models_for(["elmo-layers"])
    chosen = list(st.session_state[state.MODELS_KEY])
    if any(k in elmo for k in chosen):
        return
    on_disk = [k for k in elmo if not cat.CATALOG[k].test_model
               and model_status(cat.CATALOG[k], device).state in ("ready", "on disk")]
    st.session_state[state.MODELS_KEY] = [(on_disk or [TINY_ELMO_KEY])[0]] + chosen


def comparison_picker() -> str | None:
    options = [k for k in registry.models_for(["layer-mix"]) if not is_elmo(cat.CATALOG[k])]
    options += [k for k in st.session_state[state.EXTRA_KEY] if k not in cat.CATALOG]
    return st.sidebar.selectbox(
        "Same mix on a BERT/GPT model", [None] + options, key="elmo_compare", bind=BIND,
        format_func=lambda k: "none" if k is None else pickers.model_label(k),
        help="Feature-based BERT: a task reads a weighted sum of frozen layers, as with ELMo.",
    )


def model_notice(key: str, device: str) -> None:
    spec = cat.CATALOG.get(key)
    if spec is None or not is_elmo(spec):
        return
    if spec.test_model:
        small = cat.CATALOG["elmo-small"]
        st.warning(
            f"**{key} is a tiny test model with random weights**, not a language model: the "
            "real ELMo architecture, untrained and tiny. Its numbers show the mechanics (layer 0 "
            "is context-free, layers 1-2 depend on the sentence, the mix is a weighted sum), not "
            f"what ELMo knows about language. For a real ELMo pick **{small.key}** (about "
            f"{small.size_mb} MB) or a larger one in the sidebar: it downloads when selected, "
            "with a progress bar, and stays cached. Offline (HF_HUB_OFFLINE=1) a model that is "
            "not cached gives a message instead."
        )
    elif (status := model_status(spec, device)).state == "needs download":
        st.info(f"{key} is not on disk yet: it downloads now ({status.detail}) and stays cached.")


def heatmap(frame: pd.DataFrame, title: str, key: str, cosine: bool = False) -> None:
    scale = dict(colorscale="RdBu", reversescale=True, zmin=-1, zmax=1) if cosine else dict(colorscale="Viridis")
    fig = go.Figure(go.Heatmap(
        z=frame.to_numpy(), x=[safe_label(str(c)) for c in frame.columns],
        y=[safe_label(str(i)) for i in frame.index], **scale,
        hovertemplate="%{y}<br>%{x}<br>%{z:.3f}<extra></extra>",
    ))
    # "category": otherwise plotly reads the labels "0", "1", "2" as numbers and drops "mix"
    fig.update_xaxes(type="category", title="layer" if not cosine else None)
    fig.update_yaxes(type="category", autorange="reversed")
    fig.update_layout(title=title, height=140 + 24 * len(frame), margin=dict(l=20, r=20, t=50, b=40))
    chrome.chart(st, fig, key=key, width="stretch")


def mix_controls(key: str, n_states: int) -> tuple[list[float], float]:
    """One slider per s_j and one for γ, kept per model, with preset buttons."""
    prefix = f"mix_{key}"
    s_keys = [f"{prefix}_s{j}" for j in range(n_states)]
    presets = mix_presets(n_states)

    def apply(name: str) -> None:
        s, gamma = presets[name]
        st.session_state.update(zip(s_keys, s))
        st.session_state[f"{prefix}_gamma"] = gamma

    for column, name in zip(st.columns(len(presets)), presets):
        column.button(name, key=f"{prefix}_preset_{name}", on_click=apply, args=(name,), width="stretch")
    # The defaults are value=, not set in the session state: a bound slider leaves out of the
    # URL the value equal to its default, which without value= is its minimum, so a preset's
    # s = -5 (or γ = 0) was dropped from a copied link and came back as 0 (or 1). A preset
    # writes the session state, which wins over value= (Streamlit logs that once).
    s, gamma = [0.0] * n_states, 1.0
    per_row = 7
    for start in range(0, n_states + 1, per_row):
        columns = st.columns(per_row)
        for offset, column in enumerate(columns):
            j = start + offset
            if j < n_states:
                s[j] = column.slider(f"s_{j}", *S_RANGE, 0.0, step=0.1, key=s_keys[j], bind=BIND)
            elif j == n_states:
                gamma = column.slider("γ", 0.0, 4.0, 1.0, step=0.05, key=f"{prefix}_gamma", bind=BIND)
    return s, gamma


def carried_mix(mix: tuple[list[float], float], n_states: int) -> tuple[list[float], float]:
    """ELMo's mix for a model with `n_states` layers: each s_j read off ELMo's s at the same
    relative depth (linear between ELMo's layers), γ as is. The same layer count gives the same
    s; "top layer only" stays the top layer, "equal weights" stays equal."""
    s, gamma = mix
    return np.interp(np.linspace(0, 1, n_states), np.linspace(0, 1, len(s)), s).tolist(), gamma


def sentence_picker(sentences: list[str]) -> int:
    """The index of the sentence to look at, following it while the sentences are edited.

    The browser holds the label it shows ("2: text"). A label the new text no longer offers
    is replaced before the widget is drawn, which tells the browser: the same sentence if it
    is still there (lines added above it), else the same line (it was edited), else the last.
    (With indices as options the server kept index 1 under a new label while the browser
    showed the old one, then fell back to sentence 1 on the next click.)
    """
    labels = [f"{i + 1}: {s}" for i, s in enumerate(sentences)]
    old = st.session_state.get("elmo_sentence")
    if isinstance(old, str) and old not in labels:
        number, _, text = old.partition(": ")
        line = sentences.index(text) if text in sentences else min(int(number) - 1, len(labels) - 1)
        st.session_state["elmo_sentence"] = labels[line]
    # persist_state: a run stopped by an empty box keeps the choice on the server; the
    # browser then redraws the picker and must be told the choice, not start at sentence 1.
    label = st.selectbox("Sentence to look at", labels, key="elmo_sentence", bind=BIND, persist_state="page")
    return labels.index(label)


def show_model(key: str, sentences: list[str], chosen: int, pooling: str, device: str,
               elmo_mix: tuple[list[float], float] | None = None) -> tuple[list[float], float] | None:
    """One model's views; returns its mix. elmo_mix: the comparison model takes ELMo's mix
    (carried_mix) instead of sliders of its own."""
    lm = running.load_model(key, device)
    if lm is None:
        return None
    records = [running.analyze(key, s, None, device) for s in sentences]
    if any(r is None for r in records):
        return None
    elmo = is_elmo(lm.spec)
    st.caption(
        "Layer 0: character-CNN token vector, the same for a word in any sentence. Layers 1-2: "
        "biLSTM states (forward ⊕ backward), which depend on the whole sentence."
        if elmo else
        f"Layer 0: token embeddings; layers 1-{records[0].n_layers}: transformer layers. "
        f"Sub-word tokens pooled per word by their {pooling}."
    )

    st.subheader("Scalar mix: γ · Σ_j softmax(s)_j · h_j")
    n_states = records[0].hidden_states.shape[0]
    if elmo_mix is None:
        s, gamma = mix_controls(key, n_states)
    else:
        s, gamma = carried_mix(elmo_mix, n_states)
        st.caption(f"ELMo's mix, set in its tab, carried by relative depth: layer j of 0…{n_states - 1} "
                   f"takes ELMo's s at depth j/{n_states - 1} (a straight line between ELMo's "
                   f"{len(elmo_mix[0])} layers); γ is the same.")
    st.dataframe(mix_table(s, gamma), hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.3f")
                                for c in ("s_j", "weight softmax(s)_j", "γ · weight")})
    st.caption("The column **mix** in every view below is this weighted sum of the word's layers.")

    stacks = [word_layers(r, pooling, (s, gamma)) for r in records]
    wl = stacks[chosen]
    left, right = st.columns(2)
    with left:
        heatmap(word_norms(wl), "Vector norm ‖h‖ per word and layer", f"norms_{key}")
    with right:
        heatmap(layer_cosines(wl), "Cosine between layers, per word", f"layercos_{key}", cosine=True)

    st.subheader(f"The same word in the other sentences (sentence {chosen + 1})")
    if len(sentences) < 2:
        st.info("Type a second sentence (one per line) to compare words across sentences.")
        return s, gamma
    table = cross_sentence_table(cross_sentence_word_cosines(stacks, sentence=chosen), chosen)
    if table.empty:
        st.info("No repeated words: this sentence shares no word (ignoring case) with the others.")
        return s, gamma
    st.caption(
        "Cosine between this word's vector and the same word (ignoring case) elsewhere, per "
        "layer. At ELMo's layer 0 an identically spelt word gives 1: no context yet."
    )
    st.dataframe(table, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.3f") for c in table.columns})
    return s, gamma


chrome.page_setup("ELMo")
st.title("ELMo's three layers")
st.markdown(
    "ELMo (Peters et al., 2018) gives every word one vector per layer of a bidirectional LSTM "
    "language model. A task does not pick one layer: it learns a **scalar mix** of all of "
    "them. Type a few sentences, look at each word layer by layer, and move the mix."
)

device = pickers.device_picker()
prefer_an_elmo(device)
picked = pickers.model_picker("ELMo model", methods=("elmo-layers",), multi=False)
compare = comparison_picker()
if compare is not None and compare not in cat.CATALOG and compare not in st.session_state[state.MODELS_KEY]:
    # A custom model is offered only when the link's models name it, and the single-model
    # picker above keeps just the ELMo: the link carries it too, or a copy loses the comparison.
    state.remember("model", [*st.session_state[state.MODELS_KEY], compare])
pooling = st.sidebar.selectbox("Sub-word pooling", ["mean", "first", "last"], key="elmo_pooling", bind=BIND) if compare else "mean"

with st.expander("ELMo models on this machine", expanded=False):
    st.dataframe(
        [{"model": s.label, "status": (m := model_status(s, device)).state, "detail": m.detail,
          "about": s.description} for s in cat.CATALOG.values() if is_elmo(s)],
        hide_index=True, width="stretch",
    )

model = picked[0]
model_notice(model, device)

state.seeded("elmo_text", "sentences", DEFAULT_SENTENCES)  # a link may bring its sentences
st.text_area("Sentences, one per line", key="elmo_text", height=110)
text = inputs.require_text(state.keep("elmo_text", "sentences"), "list of sentences")
sentences = [line.strip() for line in text.splitlines() if line.strip()]
exercise.on_page("ELMo", device, sentences[0])  # a question about the first sentence in view
if len(sentences) > MAX_SENTENCES:
    st.warning(f"Only the first {MAX_SENTENCES} of {len(sentences)} sentences are used.")
    sentences = sentences[:MAX_SENTENCES]
# CTXLENS_REQUEST_TOKENS: both models read the same first sentences, within the request's tokens.
sentences = sentences[:running.sentence_budget([model] + ([compare] if compare else []), sentences, device)]
chosen = sentence_picker(sentences)

if compare is None:
    show_model(model, sentences, chosen, pooling, device)
else:
    elmo_tab, compare_tab = st.tabs([model, f"{compare} (same mix)"], key="elmo_view", bind=BIND)
    with elmo_tab:
        mix = show_model(model, sentences, chosen, pooling, device)
    with compare_tab:  # ELMo's mix; sliders of its own only when ELMo could not run
        show_model(compare, sentences, chosen, pooling, device, elmo_mix=mix)
