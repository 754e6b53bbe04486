"""Why did the model say that? Which words made the prediction (attribution), which parts of
the model it needs (ablation), and whether the methods agree (the cross-check)."""

import streamlit as st

from ctxlens.analysis.masking import MASK_PLACEHOLDER
from ctxlens.methods import registry
from ctxlens.record import Family
from ui import exercise, chrome, inputs, pickers, running, state, why

# The page's methods; sense attribution (any model with hidden states) lives in the Polysemy lab.
PAGE_METHODS = (*why.PAGE_METHODS, "sense-attribution")
EXAMPLES = {  # per kind of target: the text (and the second text) a first visit starts with
    why.PREDICTION: ("The capital of France is", None),
    why.ANSWER: ("Where did the cat sit?", "The cat sat on the mat by the door. The dog slept in the house."),
    why.NEXT_SENTENCE: ("The man went to the store.", "He bought a gallon of milk."),
    why.CLASS: ("The film was a delight from start to finish.", None),
    why.TOKEN_CLASS: ("Marie Curie worked in Paris.", None),
}


def example(lm, kind: str) -> tuple[str, str | None]:
    text, pair = EXAMPLES[kind]
    if kind == why.PREDICTION and lm.spec.family is not Family.CAUSAL_LM:
        text = f"{text} {MASK_PLACEHOLDER}."  # a BERT-style model fills a mask
    return text, pair


def use_example(text: str, pair: str | None) -> None:
    st.session_state["why_text"] = text
    if pair is not None:
        st.session_state["why_pair"] = pair


def prefer_a_model_with_a_head() -> None:
    """A first visit starts on a picked model that has a prediction to explain (the default
    picks put MiniLM, which has no head, before SmolLM2); later choices stay the user's."""
    if st.session_state.get("why_visited"):
        return
    st.session_state["why_visited"] = True
    explainable = set(registry.models_for(why.PAGE_METHODS))
    picked = st.session_state[state.MODELS_KEY]
    if picked and picked[0] not in explainable:
        first = next((k for k in picked if k in explainable), None)
        if first is not None:
            pickers.use_model(first)


def text_inputs(lm, kind: str) -> tuple[str, str | None]:
    """The boxes this kind of target reads: a question and a context, a pair, or one text."""
    text, pair = example(lm, kind)
    if kind == why.ANSWER:
        state.seeded("why_text", "question", text)
        state.seeded("why_pair", "context", pair)
        st.text_input("Question", key="why_text")
        st.text_area("Context", key="why_pair", height=120)
        return (inputs.require_text(state.keep("why_text", "question"), "question"),
                inputs.require_text(state.keep("why_pair", "context"), "context"))
    if kind == why.NEXT_SENTENCE:
        state.seeded("why_pair", "pair", pair)
        first, _ = inputs.sentence_input(text, pair=False, key="why_text")
        st.text_area("Sentence B (does it follow?)", key="why_pair", height=68)
        return inputs.require_pair(first, state.keep("why_pair", "pair"))
    first, second = inputs.sentence_input(text, pair=kind == why.CLASS, key="why_text")
    if first != text:
        st.button(f"Use the example: {text}", key="why_example", type="tertiary",
                  on_click=use_example, args=(text, pair))
    return inputs.require_pair(first, second)


chrome.page_setup("Why?")
st.title("Why did the model say that?")
st.markdown(
    "Pick a prediction and ask which **words** made it (attribution: integrated gradients, "
    "gradient × input, occlusion), which **parts of the model** it needs (knock out a head or "
    "a layer's MLP), and whether six methods **agree** (the cross-check). A model needs a "
    "trained head, such as SmolLM2's next-token head, to have a prediction to explain."
)

device = pickers.device_picker()
exercise.on_page("Why?", device)
prefer_a_model_with_a_head()
picked = pickers.model_picker("Model", methods=PAGE_METHODS, multi=False)
key = picked[0]
lm = running.load_model(key, device)
if lm is None or why.refuse_without_head(lm, "why"):
    st.caption("Sense attribution, which any model has, is in the Polysemy lab.")
    st.stop()
running.not_available_note(PAGE_METHODS, lm.spec)
kind = why.kind_picker(lm, "why")
if kind is None:
    st.info(f"{key} has none of the heads this page explains.")
    st.stop()
text, pair = text_inputs(lm, kind)
why.why_view(lm, text, pair, "why", kind=kind)
