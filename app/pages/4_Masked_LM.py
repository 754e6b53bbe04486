"""What does BERT predict? Fill-mask, the logit lens, BERT's 80/10/10 corruption, next-sentence
prediction and the fine-tuning heads."""

import pandas as pd
import streamlit as st

from ctxlens.analysis.masking import MASK_PLACEHOLDER
from ctxlens.analysis.words import split_words
from ctxlens.errors import CtxlensError, InputError
from ctxlens.figures.predictions import logit_lens_heatmap, top_k_bars
from ctxlens.methods import registry
from ctxlens.methods.corruption import KEEP, MASK, RANDOM, corruption_demo
from ctxlens.methods.fill_mask import fill_mask, mask_word
from ctxlens.methods.logit_lens import mlm_logit_lens
from ctxlens.methods.task_heads import classify_sequence, classify_tokens, nsp_score
from ctxlens.models import catalog as cat
from ui import chrome, inputs, pickers, running, why
from ui.state import BIND

DEFAULT_TEXT = f"The capital of France is {MASK_PLACEHOLDER}."
CORRUPTION_EXAMPLE = "The quick brown fox jumps over the lazy dog near the river bank."
MAX_SLOT_CHARTS = 12  # more masks than this: the first ones only, so the page stays readable
TYPED, PICKED = "[MASK] in the text", "Pick a word to mask"
# The page's registered methods; the picker offers the models with a mask token.
PAGE_METHODS = ("fill-mask", "logit-lens", "corruption", "nsp", "classify-sequence", "classify-tokens")
HEAD_METHODS = ("classify-sequence", "classify-tokens")
PICKER_METHODS = ("fill-mask", "corruption")
ACTIONS = {MASK: "→ [MASK] (80%)", RANDOM: "→ random token (10%)", KEEP: "kept as it is (10%)"}


def snippet(text: str, span: tuple[int, int], width: int = 24) -> str:
    before, after = text[max(0, span[0] - width): span[0]], text[span[1]: span[1] + width]
    return f"…{before}___{after}…"


def fill_section(lm, text: str, whole_word: bool, top_k: int, device: str) -> None:
    if running.refuse_without(lm, "fill-mask", device):
        return
    result = fill_mask(lm, text, top_k=top_k, whole_word=whole_word)
    if result.record.truncated:
        unread = f" {result.unread_masks} {MASK_PLACEHOLDER} past the cut are not filled." if result.unread_masks else ""
        st.warning(running.cut_message(lm.spec.key, result.record) + unread)
    st.caption("What the model read (your [MASK] becomes its own mask token):")
    st.code(result.model_text, language=None, wrap_lines=True)
    slots = result.slots[:MAX_SLOT_CHARTS]
    if len(result.slots) > len(slots):
        st.info(f"{len(result.slots)} masks: the first {len(slots)} are shown.")
    per_row = 1 if chrome.projector_on() else max(1, min(3, len(slots)))  # one mask: the whole width for its title
    for row in range(0, len(slots), per_row):
        for column, (n, slot) in zip(st.columns(per_row), enumerate(slots[row: row + per_row], start=row + 1)):
            title = f"mask {n}: {snippet(result.text, slot.span)}"
            with column:
                if slot.fillers:
                    chrome.chart(st, top_k_bars(slot.fillers, title), key=f"mlm_fill_{n}", width="stretch")
                else:
                    st.info(f"Mask {n}: no whole word of {len(slot.positions)} pieces fits here.")
    st.caption(
        "Each bar is the model's softmax over its whole vocabulary at that position. "
        + ("Whole words: adjacent masks form one word, written piece by piece left to right; "
           "its probability is the product of the pieces' probabilities." if whole_word else
           "##piece: a continuation of the word before it; ␣: a piece that starts with a space.")
    )


def lens_section(lm, text: str, device: str) -> None:
    st.markdown(
        "The **logit lens** applies the MLM head to every layer's hidden state at each mask, as "
        "if the model stopped there. Colour: the probability, at that layer, of the token the "
        "last layer predicts; cell text: that layer's own top guess. Early layers mostly echo the "
        "input ([MASK] or frequent words); the answer usually emerges in the upper layers. "
        "The last column is the model's real prediction."
    )
    if running.refuse_without(lm, "logit-lens", device):
        return
    value = st.radio("Colour", ["final_prob", "top_prob"], horizontal=True, key="mlm_lens_value", bind=BIND,
                     format_func={"final_prob": "P(final prediction)", "top_prob": "P(layer's own top token)"}.get)
    record = fill_mask(lm, text, top_k=1).record  # the text as the model reads it, masks located
    lens = mlm_logit_lens(lm, record)
    fig = logit_lens_heatmap(lens, value)
    chrome.chart(st, fig, key="mlm_lens", width="stretch")


def corruption_section(lm, source: str, top_k: int) -> None:
    st.markdown(
        "How BERT was pre-trained: about 15% of the tokens are chosen; of those, 80% become "
        "[MASK], 10% a random token and 10% stay unchanged. The loss is computed at **every "
        "chosen position** (and only there), changed or not, so the model cannot trust that "
        "an unmasked token is right. Change the seed to draw again."
    )
    c_text, c_seed, c_rate = st.columns([4, 1, 1])
    # Follows the page's sentence until edited here; a link's edit wins on its first run.
    if st.session_state.get("mlm_corrupt_from", source) != source:
        st.session_state["mlm_corrupt"] = source
    st.session_state["mlm_corrupt_from"] = source
    st.session_state.setdefault("mlm_corrupt", source)
    source = c_text.text_input("Sentence to corrupt", key="mlm_corrupt", bind=BIND)
    seed = c_seed.number_input("Seed", 0, 2**31 - 1, 0, key="mlm_seed", bind=BIND)
    rate = c_rate.slider("Rate", 0.05, 0.5, 0.15, 0.05, key="mlm_rate", bind=BIND)
    source = inputs.require_text(source, "sentence to corrupt")
    demo = corruption_demo(lm, source, int(seed), rate, top_k)
    st.caption("What the model reads:")
    st.code(" ".join(demo.corrupted_tokens), language=None, wrap_lines=True)
    items = {c.position: c for c in demo.items}
    rows = []
    for pos, (orig, shown) in enumerate(zip(demo.original_tokens, demo.corrupted_tokens)):
        c = items.get(pos)
        rows.append({
            "position": pos, "original": orig, "model reads": shown,
            "what happened": ACTIONS[c.action] if c else "",
            "in the loss": c is not None,
            "top predictions": ", ".join(f"{f.text} {f.prob:.0%}" for f in c.predictions) if c and c.predictions else "",
            "original recovered": None if c is None or c.recovered is None else c.recovered,
        })
    counts = {a: sum(c.action == a for c in demo.items) for a in ACTIONS}
    st.markdown(
        f"**{len(demo.items)}** tokens chosen (seed {demo.seed}): {counts[MASK]} masked, "
        f"{counts[RANDOM]} replaced by a random token, {counts[KEEP]} kept."
    )
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    if not registry.method("fill-mask").applies(lm.spec):
        st.caption("This model has no MLM head, so no predictions are shown: only the recipe.")


def nsp_section(lm, first: str, second: str | None, device: str) -> None:
    st.markdown(
        "BERT's second pre-training task: given [CLS] A [SEP] B [SEP], is B the sentence that "
        "followed A in the corpus (50%) or a random one (50%)? Segment ids (0 for A, 1 for B) "
        "tell the model which sentence each token belongs to; the answer is read from [CLS]."
    )
    if running.refuse_without(lm, "nsp", device, say=st.info):
        return
    if second is None:
        st.info("Tick **Add a second sentence** under the sentence box to score a pair.")
        return
    result = nsp_score(lm, first, second)
    st.metric("P(IsNext): B follows A", f"{result.p_is_next:.1%}")
    layout = pd.DataFrame([list(result.tokens), [str(s) for s in result.segment_ids]], index=["token", "segment id"])
    layout.columns = [str(c) for c in layout.columns]
    st.dataframe(layout, width="stretch")


def heads_section(lm, text: str, second: str | None) -> None:
    st.markdown(
        "BERT's paper fine-tunes the same encoder for four shapes of task, each with a small "
        "head on top:\n"
        "- **sentence**: [CLS] → one label (sentiment, acceptability);\n"
        "- **sentence pair**: [CLS] A [SEP] B [SEP] → one label (entailment, paraphrase);\n"
        "- **token**: every token → a label (named entities, part of speech);\n"
        "- **span**: every token → start and end scores of an answer in a passage; see the "
        "**Question answering** page."
    )
    usable = {m.name for m in registry.available(HEAD_METHODS, lm.spec)[0]}
    if "classify-sequence" in usable:
        result = classify_sequence(lm, text, second)
        kind = "sentence pair" if second is not None else "sentence"
        st.subheader(f"This checkpoint's {kind} classification")
        st.bar_chart(pd.DataFrame({"label": result.labels, "probability": result.probs}), x="label", y="probability")
        if result.multi_label:
            st.caption("Multi-label head: each label has its own sigmoid probability.")
    if "classify-tokens" in usable:
        result = classify_tokens(lm, text)
        st.subheader("This checkpoint's token classification (read at each word's first token)")
        best = [float(p.max()) if label is not None else None for p, label in zip(result.probs, result.labels)]
        st.dataframe(pd.DataFrame({"word": result.words, "label": result.labels, "probability": best}),
                     hide_index=True, width="stretch")
    if not usable:
        st.info(
            f"{lm.spec.key} has no fine-tuned classification head (the catalog's models are "
            "pre-trained only). Add a local folder or cached hub id of a checkpoint fine-tuned for "
            "sentence or token classification in the sidebar to see its labels here."
        )


chrome.page_setup("Masked LM")
st.title("What does BERT predict?")
st.markdown(
    "A masked language model reads the whole sentence in both directions and predicts the "
    f"word hidden behind {MASK_PLACEHOLDER}. Type {MASK_PLACEHOLDER} where a word should be "
    "predicted, or pick a word to mask."
)

device = pickers.device_picker()
picked = pickers.model_picker("Masked language model", methods=PICKER_METHODS, multi=False)
top_k = st.sidebar.slider("Top k", 1, 20, 5, key="mlm_top_k", bind=BIND)

text, second = inputs.sentence_input(DEFAULT_TEXT, pair=True, key="mlm_text")
text, second = inputs.require_pair(text, second)

c_mode, c_word, c_whole = st.columns([2, 2, 2])
mode = c_mode.radio("Where is the mask?", [TYPED, PICKED], horizontal=True, key="mlm_mode", bind=BIND)
whole_word = c_whole.checkbox(
    "Whole words", key="mlm_whole_word", bind=BIND,
    help="Adjacent masks ([MASK][MASK]) stand for one word of that many pieces, and the fillers "
         "are whole words. Picking a word writes one mask per piece of it.",
)
words = split_words(text)
if mode == PICKED:
    wordy = [i for i, w in enumerate(words) if any(ch.isalnum() for ch in w.text)]
    if not wordy:
        st.warning("The text has no word to mask.")
        st.stop()
    if st.session_state.get("mlm_word") not in wordy:  # a new text: the old choice may be gone
        st.session_state.pop("mlm_word", None)
    index = c_word.selectbox("Word to mask", wordy, index=len(wordy) - 1, key="mlm_word", bind=BIND,
                             format_func=lambda i: f"{i}: {words[i].text}")

key = picked[0]
lm = running.load_model(key, device)
if lm is None:
    st.stop()
heads = [cat.CAPABILITY_LABELS[c] for c in sorted(lm.spec.capabilities) if c != cat.ATTENTIONS]
st.caption(f"{key}: trained heads for {', '.join(heads) or 'nothing (a bare encoder)'}.")
running.not_available_note(PAGE_METHODS, lm.spec)

masked = mask_word(text, index, lm if whole_word else None) if mode == PICKED else text
corruption_text = CORRUPTION_EXAMPLE if MASK_PLACEHOLDER.lower() in text.lower() else text
sections = {
    "Fill the mask": lambda: fill_section(lm, masked, whole_word, top_k, device),
    "Logit lens": lambda: lens_section(lm, masked, device),
    "80/10/10 corruption": lambda: corruption_section(lm, corruption_text, top_k),
    "Next sentence": lambda: nsp_section(lm, text, second, device),
    "Fine-tuning heads": lambda: heads_section(lm, text, second),
    "Why?": lambda: why.why_view(lm, masked, second, "mlm_why"),
}
# Lazy tabs: only the open one runs, so moving a control costs one view, not five.
for tab, section in zip(st.tabs(list(sections), key="mlm_view", bind=BIND, on_change="rerun"), sections.values()):
    if tab.open:
        with tab:
            try:
                section()
            except InputError as exc:  # e.g. no [MASK] in the text: a hint, not a failure
                st.warning(str(exc))
            except CtxlensError as exc:
                chrome.show_error(exc)
