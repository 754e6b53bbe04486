"""ctxlens Home: pick models, type a sentence, see how each model reads it."""

from dataclasses import dataclass, field

import streamlit as st

from ctxlens.figures.basic import hidden_norm_heatmap, token_table
from ctxlens.models import catalog as cat
from ui import exercise, chrome, inputs, pickers, running, state

EMBEDDED = ["all-MiniLM-L6-v2", "SmolLM2-135M-Instruct"]


@dataclass(frozen=True)
class Lesson:
    """A page opened on prepared inputs (a link, so a teacher can also share it), and what to
    open instead when its models cannot run on this machine."""

    page: str
    label: str
    params: dict = field(default_factory=dict)
    instead: "Lesson | None" = None

    def models(self) -> list[str]:
        model = self.params.get("model", [])
        return [model] if isinstance(model, str) else list(model)


LESSONS = (
    Lesson("pages/4_Masked_LM.py", "What does BERT predict?",
           {"model": "bert-base-uncased", "text": "The doctor told the [MASK] to rest for a week."},
           instead=Lesson("pages/6_Next_token.py", "What does GPT predict? (SmolLM2, offline)",
                          {"model": "SmolLM2-135M-Instruct", "text": "The doctor told the patient to"})),
    Lesson("pages/2_Polysemy_lab.py", "Two banks", {"preset": "bank"}),
    Lesson("pages/1_Attention.py", "Who attends to whom?",
           {"model": EMBEDDED, "text": "The animal didn't cross the street because it was too tired."}),
    Lesson("pages/6_Next_token.py", "Few-shot GPT", {"model": "SmolLM2-135M-Instruct", "nt_view": "Few-shot lab"}),
    Lesson("pages/5_ELMo.py", "ELMo's three layers",
           {"sentences": "She sat on the bank of the river.\nThe bank lent him money.\nThe plane began to bank left."}),
)


def lesson_link(lesson: Lesson) -> None:
    """The lesson's link; if a model it needs cannot run here, a disabled link, what it needs,
    and the nearest lesson that runs (the session's models are never touched)."""
    missing = {key: why for key in lesson.models() if (why := state.unavailable(key))}
    st.page_link(lesson.page, label=lesson.label, query_params=lesson.params, disabled=bool(missing),
                 icon=":material/school:", width="stretch")
    if missing:
        needs = "; ".join(f"`{key}` ({why})" for key, why in missing.items())
        st.caption(f"Needs {needs}." + (" Instead:" if lesson.instead else ""))
        if lesson.instead:
            lesson_link(lesson.instead)


def model_column(key: str, text: str, second: str | None, device: str) -> None:
    spec = cat.CATALOG.get(key)
    st.subheader(key)
    st.caption(spec.description if spec and spec.test_model else spec.family.label if spec else "custom model")
    record = running.analyze(key, text, second, device)
    if record is None:
        return
    st.markdown(
        f"**{record.n_tokens}** tokens · **{len(record.words)}** words · "
        f"**{record.n_layers}** layers" + (f" · **{record.n_heads}** heads" if record.n_heads else "")
    )
    table = token_table(record)
    st.dataframe(table, hide_index=True, height=260, width="stretch")
    if (table["id"] == "—").any():
        st.caption("— : this model reads words (through their characters), so its tokens have no vocabulary ids.")
    chrome.chart(st, lambda: hidden_norm_heatmap(record), width="stretch", key=f"norms_{key}",
                 shared=("norms", running.input_key(record, device)))  # built once per input, for every session


chrome.page_setup("Home", models=cat.HOME_KEYS)
st.title("ctxlens: see what contextual language models do")
st.markdown(
    "Type a sentence and compare how **ELMo**, **BERT**-style encoders and **GPT**-style causal "
    "models read it: their tokens, their layers, their attention and their predictions. "
    "Pick models in the sidebar; the pages on the left go deeper. The ELMo shown at first is a "
    "tiny test model with random weights: its tokens (words) are ELMo's, its numbers mean nothing; "
    "the published ELMo models download with network."
)

st.subheader("Lessons")
with st.container(key=chrome.LESSONS_KEY):
    for column, lesson in zip(st.columns(len(LESSONS)), LESSONS):
        with column:
            lesson_link(lesson)

device = pickers.device_picker()
models = pickers.model_picker()

with st.expander("Model status", expanded=False):
    pickers.status_panel(device)

text, second = inputs.sentence_input("The bank of the river was muddy after the storm.")
exercise.on_page("Home", device, text)  # a question about the sentence in view

inputs.require_models(models)
text, second = inputs.require_pair(text, second)

for column, key in zip(chrome.model_columns(len(models)), models):
    with column:
        model_column(key, text, second, device)
