"""Predict-then-reveal: one exercise in a box (the question, the student's guess, then the
model's answer with its numbers). The exercises themselves are `ctxlens.methods.exercises`."""

from __future__ import annotations

import zlib

import streamlit as st

from ctxlens.cache import cached
from ctxlens.errors import InputError
from ctxlens.methods.exercises import EXERCISES

from . import chrome, running
from .chrome import plain
from .pickers import precision
from .state import BIND, unavailable


def posed(key: str, device: str, text: str | None):
    """The exercise's question on `text` and the model's answer (cached: a class asks the same one)."""
    exercise = EXERCISES[key]
    lm = running.load_model(exercise.model, device)
    if lm is None:
        return None
    text = text if exercise.example is not None else None  # the others read no sentence
    with st.spinner(f"{exercise.model} is answering…"):
        return cached(("exercise", key, exercise.model, device, precision(), text), lambda: exercise.ask(lm, text))


def exercise_box(key: str, device: str, text: str | None = None) -> None:
    """The exercise `key`, on the sentence in view (`text`), in a bordered box: guess, reveal,
    right or wrong."""
    exercise = EXERCISES[key]
    with st.container(border=True):
        st.markdown(f"**Predict, then reveal** · {exercise.page} · {exercise.model}")
        if not _available(exercise.model):
            return
        try:
            p = posed(key, device, text)
        except InputError as exc:  # e.g. a sentence too short for the question
            st.info(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a failure is a message, the page goes on
            chrome.show_error(exc)
            return
        if p is None:
            return
        st.markdown(plain(p.question))
        asked = f"ex_{key}_{zlib.crc32(p.question.encode()):08x}"  # a new sentence: a new guess
        guess = st.radio("Your guess", p.choices, index=None, key=f"{asked}_guess", horizontal=True)
        if st.button("Reveal the model's answer", key=f"{asked}_reveal", disabled=guess is None):
            st.session_state[f"{asked}_revealed"] = guess
        revealed = st.session_state.get(f"{asked}_revealed")
        if revealed is None:
            st.caption("Choose an answer, then reveal what the model does.")
            return
        right = revealed == p.choices[p.answer]
        verdict = "Right" if right else f"Not this time: you said {revealed}"
        (st.success if right else st.warning)(f"{plain(verdict)}. The model's answer: **{plain(p.choices[p.answer])}**. "
                                              f"{plain(p.explanation)}")
        if p.detail is not None:
            st.dataframe(p.detail, hide_index=True)


def on_page(page: str, device: str, text: str | None = None) -> None:
    """The exercises that belong to `page`, on its sentence `text`, behind a toggle: nothing
    runs until a student asks."""
    keys = [k for k, e in EXERCISES.items() if e.page == page]
    if keys and st.toggle("Predict, then reveal: try an exercise on this page", key=f"ex_on_{page}", bind=BIND):
        for key in keys:
            exercise_box(key, device, text)


def _available(model: str) -> bool:
    """Exercises run only on models this machine has (offline included); else a message."""
    why = unavailable(model)
    if why is not None:
        st.info(f"This exercise needs {model}, which is not available here: {why}.")
    return why is None
