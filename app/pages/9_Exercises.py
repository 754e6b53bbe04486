"""Predict, then reveal: short exercises about what the models do, each answered by the
student first and then by the model (on this machine, offline included). A teacher shares
one by its link."""

import streamlit as st

from ctxlens.methods.exercises import EXERCISES
from ui import chrome, exercise, pickers, state

chrome.page_setup("Exercises")
st.title("Predict, then reveal")
st.markdown(
    "Guess first, then let the model answer. Every answer is computed now by the model named in "
    "the box, from the sentence in the question. To give the class one exercise, pick it and copy "
    "the link from the sidebar."
)
device = pickers.device_picker()
keys = list(EXERCISES)
state.seeded("ex_pick", "ex", keys[0])
if st.session_state["ex_pick"] not in keys:  # a link naming an exercise that no longer exists
    st.session_state["ex_pick"] = keys[0]
st.selectbox("Exercise", keys, key="ex_pick",
             format_func=lambda k: f"{EXERCISES[k].page}: {k.replace('-', ' ')}")
exercise.exercise_box(state.keep("ex_pick", "ex"), device)
