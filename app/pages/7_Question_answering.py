"""Extractive question answering: where does the answer start and end in the context?"""

import pandas as pd
import streamlit as st

from ctxlens.errors import CtxlensError, InputError
from ctxlens.figures.predictions import qa_start_end_bars, span_matrix_heatmap
from ctxlens.methods import registry
from ctxlens.methods.qa import answer_question, budget_message
from ctxlens.models import catalog as cat
from ctxlens.models.loading import hub_offline
from ctxlens.models.registry import model_status
from ui import chrome, inputs, pickers, running, state, why
from ui.state import BIND

DEFAULT_QUESTION = "Where did the cat sit?"
DEFAULT_CONTEXT = (
    "The cat sat on the mat by the door. The dog slept in the house, and the children played "
    "a game by the river until the rain began."
)
DOWNLOAD_KEY = "qa_download_ok"  # catalog models the user asked to download in this session


def qa_catalog(device: str) -> list[tuple[str, object]]:
    return [(k, model_status(s, device)) for k, s in cat.CATALOG.items() if registry.method("qa-spans").applies(s) and not s.test_model]


def ready_to_load(key: str, device: str) -> bool:
    """A catalog model that needs a download waits for a click; offline, the page says why."""
    spec = cat.CATALOG.get(key)
    if spec is None:  # a custom folder or cached hub id: loads (or explains) as it is
        return True
    status = model_status(spec, device)
    if status.state in ("ready", "on disk") or key in st.session_state.get(DOWNLOAD_KEY, ()):
        return True
    names = ", ".join(f"{k} (about {cat.CATALOG[k].size_mb} MB)" for k, _ in qa_catalog(device))
    if status.state == "needs download":
        st.info(f"{key} is not on disk yet: about {spec.size_mb} MB to download once; it then stays cached.")
        if st.button(f"Download {key}", key="qa_download", type="primary"):
            st.session_state.setdefault(DOWNLOAD_KEY, []).append(key)
            return True
        return False
    st.warning(
        f"{key} is not on this machine. The catalog's QA models, {names}, need a download"
        + (", and this session is offline (HF_HUB_OFFLINE is set)." if hub_offline() else ".")
        + " With the network on, pick one in the sidebar and download it. Offline, add the local "
        "folder of a checkpoint fine-tuned for extractive QA (…ForQuestionAnswering) in the sidebar."
    )
    return False


def answers_table(result) -> pd.DataFrame:
    return pd.DataFrame([
        {"rank": n, "answer": a.text, "characters": f"{a.char_start}–{a.char_end}", "score": a.score,
         "P(span) in its window": a.prob, "window": a.window, "tokens": f"{a.token_start}–{a.token_end}"}
        for n, a in enumerate(result.answers, start=1)
    ])


def no_answer(result, key: str) -> None:
    best = result.answers[0].score if result.answers else float("nan")
    c1, c2 = st.columns(2)
    c1.metric("Best span score", f"{best:.2f}")
    c2.metric("No-answer score ([CLS] start + end)", f"{result.null_score:.2f}")
    if "squad2" in key.lower().replace("_", "").replace(" ", ""):
        verdict = "no answer in the context" if result.no_answer_preferred else "the best span"
        st.markdown(f"This SQuAD 2.0 model was trained to point at [CLS] when the context has no answer: "
                    f"its verdict here is **{verdict}**.")
    else:
        st.caption("SQuAD 2.0 models are trained to point at [CLS] when there is no answer, and then answer "
                   "'no answer' when that score beats the best span. Other QA models never learnt to abstain, "
                   "so for them this number means little.")


def answers_section(result, key: str, window_tokens: int, stride: int, max_answer_len: int) -> None:
    st.subheader("Answers")
    if result.answers:
        st.caption("Best answer, copied from the context by its character offsets:")
        st.code(result.answers[0].text, language=None, wrap_lines=True)
        st.dataframe(answers_table(result), hide_index=True, width="stretch",
                     column_config={c: st.column_config.NumberColumn(format="%.3f")
                                    for c in ("score", "P(span) in its window")})
    else:
        st.info("No valid span: no context token was read (the question may take the whole window).")
    no_answer(result, key)

    windows = result.windows
    if len(windows) > 1:
        st.info(
            f"The context is longer than one window of {window_tokens} tokens (question included): it "
            f"was read in {len(windows)} overlapping windows (stride {stride} tokens, at most half of "
            "the context room of a window). Spans from every window compete by score; a span seen "
            "in two windows keeps its best."
        )
        st.dataframe([{"window": w.index, "characters": "{}–{}".format(*w.char_range), "tokens": len(w.tokens),
                       "no-answer score": w.null_score} for w in windows], hide_index=True, width="stretch")
    best_window = result.answers[0].window if result.answers else 0
    if st.session_state.get("qa_window_shown") not in range(len(windows)):  # an edit may drop windows
        st.session_state.pop("qa_window_shown", None)
    shown = st.selectbox("Window to look at", range(len(windows)), index=best_window, key="qa_window_shown", bind=BIND,
                         format_func=lambda i: f"window {i}", disabled=len(windows) == 1,
                         # Not in the label: the URL holds the label, and the best window is the model's.
                         help=f"The best answer is in window {best_window}.")
    window = windows[shown]

    st.subheader("Start and end scores over the context")
    chrome.chart(st, qa_start_end_bars(window), key="qa_bars", width="stretch")
    st.subheader("Every valid span: start token × end token")
    st.caption(
        f"Cell = start score + end score. Blank cells are spans that cannot be answers: end before "
        f"start, longer than {max_answer_len} tokens, or outside the context."
    )
    chrome.chart(st, span_matrix_heatmap(window), key="qa_spans", width="stretch")


def why_section(lm, question: str, context: str) -> None:
    st.caption("Explains the best span of one window, [CLS] question [SEP] context [SEP], as far as "
               "the model reads (a note says where a long context was cut).")
    why.why_view(lm, question, context, "qa_why", kinds=(why.ANSWER,))


chrome.page_setup("Question answering")
st.title("Where is the answer?")
st.markdown(
    "An extractive QA model (BERT fine-tuned on SQuAD) reads **[CLS] question [SEP] context "
    "[SEP]** and gives every context token two scores: how likely the answer **starts** there "
    "and how likely it **ends** there. The answer is the span (start ≤ end, not too long) with "
    "the highest start + end score; it is always a piece of the context, copied exactly."
)

device = pickers.device_picker()
picked = pickers.model_picker("QA model", methods=("qa-spans",), multi=False)
top_k = st.sidebar.slider("Answers to list", 1, 10, 3, key="qa_top_k", bind=BIND)
max_answer_len = st.sidebar.slider("Longest answer (tokens)", 1, 64, 30, key="qa_max_len", bind=BIND)
stride = st.sidebar.slider("Window overlap (stride, tokens)", 0, 256, 64, key="qa_stride", bind=BIND,
                           help="A long context is read in windows that share this many tokens, "
                                "so an answer cut by one window lies whole in the next.")

with st.expander("QA models in the catalog", expanded=False):
    st.dataframe([{"model": k, "status": s.state, "detail": s.detail, "about": cat.CATALOG[k].description}
                  for k, s in qa_catalog(device)], hide_index=True, width="stretch")

state.seeded("qa_question", "question", DEFAULT_QUESTION)
state.seeded("qa_context", "context", DEFAULT_CONTEXT)
st.text_input("Question", key="qa_question")
st.text_area("Context", key="qa_context", height=150)
question = inputs.require_text(state.keep("qa_question", "question"), "question")
context = inputs.require_text(state.keep("qa_context", "context"), "context")

key = picked[0]
if not ready_to_load(key, device):
    st.stop()
lm = running.load_model(key, device)
if lm is None:
    st.stop()
try:
    registry.check("qa-spans", lm.spec)
    window_tokens = st.sidebar.slider("Window length (tokens)", min(32, lm.max_tokens - 1), lm.max_tokens,
                                      lm.max_tokens, key="qa_window", bind=BIND,
                                      help="Shorter than the model's limit to watch the windows at work.")
    result = answer_question(lm, question, context, top_k, max_answer_len, stride, window_tokens)
except InputError as exc:
    st.warning(str(exc))
    st.stop()
except CtxlensError as exc:
    chrome.show_error(exc)
    st.stop()
if result.cut:  # CTXLENS_REQUEST_TOKENS stopped the windows before the end of the context
    st.warning(budget_message(key, result))

sections = {
    "Answers": lambda: answers_section(result, key, window_tokens, stride, max_answer_len),
    "Why?": lambda: why_section(lm, question, context),
}
# Lazy tabs: only the open one runs, so the answers do not wait for an attribution.
for tab, section in zip(st.tabs(list(sections), key="qa_view", bind=BIND, on_change="rerun"), sections.values()):
    if tab.open:
        with tab:
            section()
