"""What comes next? A causal LM's next-token distribution, how surprised it is by each token,
sampling, the logit lens, and few-shot prompting."""

import math

import pandas as pd
import streamlit as st

from ctxlens.analysis.few_shot import few_shot_presets
from ctxlens.analysis.sampling import surprisal
from ctxlens.cache import CACHE, cached
from ctxlens.errors import CtxlensError, InputError
from ctxlens.figures.predictions import (
    few_shot_bars,
    logit_lens_heatmap,
    surprisal_strip,
    top_k_bars,
)
from ctxlens.methods import registry  # noqa: F401 - registers the page's methods
from ctxlens.methods.few_shot import few_shot_curve
from ctxlens.methods.logit_lens import causal_logit_lens
from ctxlens.methods.next_token import generate_stream, next_tokens
from ui import exercise, chrome, inputs, pickers, running, why
from ui.state import BIND

DEFAULT_TEXT = "The capital of France is"
PAGE_METHODS = ("next-token", "surprisal", "generation", "logit-lens", "few-shot")
LENS_POSITIONS = 16  # the lens shows the last tokens only: every row costs a vocabulary softmax per layer
GENERATED_KEY = "nt_generated"


def as_markdown_text(chunks):
    """write_stream renders markdown: escape it so generated text reads as plain text."""
    for chunk in chunks:
        yield chrome.plain(chunk)


# Model reads are kept per (model, device, precision, text) in the library's one byte-bounded
# cache: switching tabs or the lens colour reuses them.
def read(key: str, device: str, text: str, top_k: int, lm):
    ident = ("nt_read", key, device, lm.precision, text, top_k)

    def compute():
        result = next_tokens(lm, text, top_k)
        result.record.acts.on_grow = lambda: CACHE.reweigh(ident)  # the lens adds activations
        return result

    with st.spinner("Reading the text…"):
        return cached(ident, compute)


def lens_of(key: str, device: str, text: str, lm):
    record = read(key, device, text, 1, lm).record
    first = max(0, record.n_tokens - LENS_POSITIONS)
    with st.spinner("Applying the head to every layer…"):
        return cached(("nt_lens", key, device, lm.precision, text, LENS_POSITIONS),
                      lambda: (record.n_tokens, causal_logit_lens(lm, record, range(first, record.n_tokens))))


def reading(lm, text: str, top_k: int = 1):
    result = read(lm.spec.key, lm.device, text, top_k, lm)
    if result.record.truncated:
        st.warning(running.cut_message(lm.spec.key, result.record))
    return result


def next_token_section(lm, text: str, top_k: int) -> None:
    result = reading(lm, text, top_k)
    chrome.chart(st, top_k_bars(result.candidates, "the next token after the text"), key="nt_bars", width="stretch")
    st.caption(
        "The model's softmax over its whole vocabulary after the last token. ␣ marks a token "
        "that starts with a space: ' Paris' and 'Paris' are different tokens."
    )


def surprisal_section(lm, text: str) -> None:
    s = surprisal(reading(lm, text).record)
    st.markdown(
        "**Surprisal** of a token: −log₂ p(token | the tokens before it), in bits. A likely "
        "token costs little; an unexpected one costs a lot. The first token has no context to "
        "be predicted from, so it is not scored (grey)."
    )
    chrome.chart(st, surprisal_strip(s), key="nt_surprisal", width="stretch")
    nats = s.total_bits * math.log(2)
    st.markdown(
        f"Total: **{s.total_bits:.2f} bits** over {s.n_scored} scored tokens = {nats:.3f} nats: this "
        f"total is the negative log-likelihood (NLL) of the text, the loss the model was trained to "
        f"lower. Mean {s.mean_bits:.2f} bits/token, perplexity 2^mean = {s.perplexity:.1f}."
    )
    with st.expander("Per-token numbers"):
        st.dataframe(pd.DataFrame({"token": s.tokens, "bits": s.bits}), hide_index=True, width="stretch")


def generation_section(lm, prompt: str) -> None:
    st.markdown(
        "Sampling writes one token at a time from the next-token distribution. **Temperature** "
        "sharpens (< 1) or flattens (> 1) it; 0 always takes the most probable token. **Top-k** "
        "keeps the k most probable tokens (0 = all); **top-p** keeps the fewest whose mass "
        "reaches p. The same seed gives the same text."
    )
    c1, c2, c3, c4, c5 = st.columns(5)
    temperature = c1.slider("Temperature", 0.0, 2.0, 0.7, 0.05, key="nt_temperature", bind=BIND)
    top_k = c2.number_input("Top-k", 0, 1000, 50, key="nt_sample_top_k", bind=BIND)
    top_p = c3.slider("Top-p", 0.05, 1.0, 0.95, 0.05, key="nt_top_p", bind=BIND)
    max_new = c4.number_input("Max new tokens", 1, 300, 40, key="nt_max_new", bind=BIND)
    seed = c5.number_input("Seed", 0, 2**31 - 1, 0, key="nt_seed", bind=BIND)
    settings = (prompt, temperature, int(top_k), top_p, int(max_new), int(seed))
    if st.button("Generate", key="nt_generate", type="primary"):
        st.caption("Continuation, as it is sampled:")
        pieces = []

        def kept(stream):
            for piece in stream:
                pieces.append(piece)
                yield piece

        stream = generate_stream(lm, prompt, int(max_new), temperature, int(top_k), top_p, int(seed))
        st.write_stream(as_markdown_text(kept(stream)))
        st.session_state[GENERATED_KEY] = (settings, "".join(pieces))
    last = st.session_state.get(GENERATED_KEY)
    if last and last[0] == settings:  # kept across reruns until a setting changes
        st.caption("Prompt + continuation:")
        st.code(prompt + last[1], language=None, wrap_lines=True)


def lens_section(lm, text: str) -> None:
    st.markdown(
        "The **logit lens** applies the model's final norm and output head to every layer's "
        "hidden state, as if the model stopped there. A row is an input token, ending with "
        "the model's real guess for the **next** token (→); its cells show each layer's own guess "
        "(hover for the numbers). Colour: the probability, at that layer, of what the last "
        "layer predicts; the last column is the model's real prediction."
    )
    value = st.radio("Colour", ["final_prob", "top_prob"], horizontal=True, key="nt_lens_value", bind=BIND,
                     format_func={"final_prob": "P(final prediction)", "top_prob": "P(layer's own top token)"}.get)
    reading(lm, text)  # says so when the text was truncated
    n_tokens, lens = lens_of(lm.spec.key, lm.device, text, lm)
    if n_tokens > len(lens.positions):
        st.caption(f"The last {len(lens.positions)} of {n_tokens} tokens.")
    fig = logit_lens_heatmap(lens, value)
    chrome.chart(st, fig, key="nt_lens", width="stretch")


def few_shot_section(lm) -> None:
    st.markdown(
        "**In-context learning**: the same question with no example (zero-shot), one example "
        "(one-shot) and several (few-shot). No weight changes; only the prompt does. The bars "
        "show the probability the model gives to the expected answer after each prompt."
    )
    presets = few_shot_presets()
    name = st.selectbox("Task", list(presets), key="nt_preset", bind=BIND, format_func=lambda k: presets[k]["title"])
    curve = few_shot_curve(lm, name)
    answer = curve[0][0].answer
    chrome.chart(st, few_shot_bars(curve, answer), key="nt_few_shot", width="stretch")
    st.dataframe(pd.DataFrame([
        {"prompt": f"{fp.shots}-shot", "P(answer)": score.prob,
         "answer tokens": " · ".join(f"{t} {p:.1%}" for t, p in zip(score.tokens, score.token_probs))}
        for fp, score in curve
    ]), hide_index=True, width="stretch")
    for column, (fp, _) in zip(st.columns(len(curve)), curve):
        column.caption(f"{fp.shots}-shot prompt (expected: {answer.strip()!r})")
        column.code(fp.prompt, language=None, wrap_lines=True)


chrome.page_setup("Next token")
st.title("What comes next?")
st.markdown(
    "A causal (GPT-style) language model reads left to right and gives, after every token, a "
    "probability for every possible next token. Everything on this page comes from that one "
    "distribution: the top candidates, how surprising the text is, sampling, and prompting."
)

device = pickers.device_picker()
picked = pickers.model_picker("Causal language model", methods=PAGE_METHODS, multi=False)
top_k = st.sidebar.slider("Top k", 1, 30, 10, key="nt_top_k", bind=BIND)

text, _ = inputs.sentence_input(DEFAULT_TEXT, pair=False, key="nt_text")
exercise.on_page("Next token", device, text)  # questions about the text in view
text = inputs.require_text(text)

key = picked[0]
lm = running.load_model(key, device)
if lm is None or running.refuse_without(lm, "next-token", device):
    st.stop()
sections = {
    "Next token": lambda: next_token_section(lm, text, top_k),
    "Surprisal": lambda: surprisal_section(lm, text),
    "Generate": lambda: generation_section(lm, text),
    "Logit lens": lambda: lens_section(lm, text),
    "Few-shot lab": lambda: few_shot_section(lm),
    "Why?": lambda: why.why_view(lm, text, None, "nt_why", kinds=(why.PREDICTION,)),
}
# Lazy tabs: only the open one runs, so moving a sampling slider does not re-run the lens.
for tab, section in zip(st.tabs(list(sections), key="nt_view", bind=BIND, on_change="rerun"), sections.values()):
    if tab.open:
        with tab:
            try:
                section()
            except InputError as exc:  # e.g. a prompt longer than the model reads
                st.warning(str(exc))
            except CtxlensError as exc:
                chrome.show_error(exc)
