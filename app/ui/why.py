"""The "why" views: the Why page and the Why? tabs of the prediction pages (what to explain,
which words made the model say it, knocking parts of the model out, the cross-check), and
the Polysemy lab's sense attribution.

Every result goes through the library's one cache, keyed by the model, device, precision,
the text (and pair), the target and the method's options. The expensive views (head
importance: L×H forwards; the cross-check: six methods) run on a click, which is
remembered for the inputs it was made for.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import streamlit as st

from ctxlens.cache import CACHE, cached
from ctxlens.errors import CtxlensError, InputError
from ctxlens.figures.basic import shorten
from ctxlens.figures.why import (
    FOR_TARGET,
    agreement_heatmap,
    head_importance_heatmap,
    scale_limit,
    shaded_sentence_html,
    word_bars,
    word_table,
)
from ctxlens.methods import ablation as ab
from ctxlens.methods import attribution as at
from ctxlens.methods import registry
from ctxlens.methods import targets as tg
from ctxlens.methods.crosscheck import CAVEAT, cross_check
from ctxlens.methods.sense import sense_attribution
from ctxlens.models import catalog as cat

from . import chrome, running
from .chrome import plain
from .pickers import precision
from .state import BIND

WORD_METHODS = (at.IG, at.GRAD_X_INPUT, at.OCCLUSION)
MODEL_METHODS = ("ablation", "head-importance", "cross-check")
PAGE_METHODS = WORD_METHODS + MODEL_METHODS
# What a model can be asked "why" about: one kind per trained head (label, the heads giving it).
PREDICTION, ANSWER, NEXT_SENTENCE, CLASS, TOKEN_CLASS = "prediction", "answer", "nsp", "class", "token-class"
KINDS = {
    PREDICTION: ("the predicted token", (cat.MLM, cat.NEXT_TOKEN)),
    ANSWER: ("the QA answer", (cat.QA_SPANS,)),
    NEXT_SENTENCE: ("next-sentence prediction", (cat.NSP,)),
    CLASS: ("the sentence's class", (cat.SEQ_CLASS,)),
    TOKEN_CLASS: ("a token's class", (cat.TOKEN_CLASS,)),
}
TOP, TYPED = "the model's top prediction", "a token I type"
QA_PARTS = {tg.QA_SPAN: "the whole span (start + end)", tg.QA_START: "its start", tg.QA_END: "its end"}
BASELINE_LABELS = {"mask": "[MASK] tokens", "pad": "[PAD] tokens", "zero": "zero vectors"}
STEPS = (4, 8, 16, 32, 64, 128, 256)
KNOCKOUTS = {ab.HEAD: "one head", ab.LAYER_HEADS: "every head of a layer", ab.MLP: "a layer's MLP"}
GAP_HINT = 0.02  # integrated gradients: a relative completeness gap above this asks for more steps
def fresh(key: str, allowed) -> str:
    """Widget `key`, its remembered value dropped when the new options no longer hold it
    (another model, another text)."""
    if key in st.session_state and st.session_state[key] not in allowed:
        del st.session_state[key]
    return key


def messages(run, *args) -> None:
    """Run one part of a view; its failure is a message in the page, and the other parts still draw."""
    try:
        run(*args)
    except InputError as exc:  # a hint about the input, not a failure
        st.warning(str(exc))
    except Exception as exc:  # noqa: BLE001 - every failure becomes a message
        chrome.show_error(exc)


# --- what to explain ---------------------------------------------------------------------------


def kinds_of(spec: cat.ModelSpec) -> list[str]:
    """The kinds of target the model's trained heads give."""
    return [k for k, (_, heads) in KINDS.items() if any(h in spec.capabilities for h in heads)]


def kind_picker(lm, prefix: str, kinds=None) -> str | None:
    """What to explain, among the kinds the model has (and `kinds`); None when it has none."""
    usable = [k for k in kinds_of(lm.spec) if kinds is None or k in kinds]
    if len(usable) <= 1:
        return usable[0] if usable else None
    return st.radio("What to explain", usable, format_func=lambda k: KINDS[k][0], horizontal=True,
                    key=fresh(f"{prefix}_kind", usable), bind=BIND)


def refuse_without_head(lm, prefix: str) -> bool:
    """True, after saying so and offering the models that have one, when `lm` has no trained head."""
    return running.refuse_without(
        lm, at.IG, lm.device,
        say=lambda reason: st.error(f"{lm.spec.key} has no trained head, so it makes no prediction to "
                                    f"explain. {reason}"),
    )


def subject_of(lm, text: str, pair: str | None) -> at.Subject:
    """The encoded input (cached with its record, whose activations grow with the views), and
    a note when it was cut."""
    ident = ("why_subject", lm.spec.key, lm.device, lm.precision, text, pair)

    def compute():
        subj = at.subject(lm, text, pair)
        subj.record.acts.on_grow = lambda: CACHE.reweigh(ident)  # the cross-check adds attention
        return subj

    subj = cached(ident, compute)
    if subj.record.truncated:
        st.warning(running.cut_message(lm.spec.key, subj.record))
    return subj


def target_picker(lm, subj: at.Subject, kind: str, prefix: str) -> tg.Target:
    """The target's controls for `kind`; the target (InputError with a hint when it cannot be)."""
    record = subj.record
    if kind == PREDICTION:
        c_mode, c_token, c_contrast = st.columns([2, 2, 2])
        mode = c_mode.radio("Explain", [TOP, TYPED], key=f"{prefix}_target_mode", bind=BIND)
        token = c_token.text_input("Token", key=f"{prefix}_token", bind=BIND, placeholder="e.g. Paris",
                                   disabled=mode == TOP)
        contrast = c_contrast.text_input("…rather than (optional)", key=f"{prefix}_contrast", bind=BIND,
                                         placeholder="e.g. London",
                                         help="Explains the difference of the two tokens' logits: why one and not the other.")
        return tg.prediction_target(lm, record, token if mode == TYPED else None, contrast.strip() or None)
    if kind == ANSWER:
        part = st.radio("Explain the best answer's", list(QA_PARTS), format_func=QA_PARTS.get, horizontal=True,
                        key=f"{prefix}_qa_part", bind=BIND)
        return tg.qa_target(record, part)
    if kind == NEXT_SENTENCE:
        if record.text_pair is None:
            raise InputError("Next-sentence prediction reads a pair: add a second sentence (B).")
        is_next = st.radio("Explain", [True, False], format_func={True: "IsNext: B follows A",
                                                                   False: "NotNext: B is random"}.get,
                           horizontal=True, key=f"{prefix}_nsp", bind=BIND)
        return tg.nsp_target(is_next)
    names = getattr(lm.model.config, "id2label", {}) or {}
    labels = [None, *sorted(names)]
    c_label, c_contrast, c_token = st.columns(3)
    label = c_label.selectbox("Label", labels, key=f"{prefix}_label", bind=BIND,
                              format_func=lambda i: "the model's top label" if i is None else str(names[i]))
    contrast = c_contrast.selectbox("…rather than (optional)", labels, key=f"{prefix}_label_contrast", bind=BIND,
                                    format_func=lambda i: "—" if i is None else str(names[i]))
    position = None
    if kind == TOKEN_CLASS:
        tokens = [i for i in range(record.n_tokens) if not record.special_mask[i]]
        position = c_token.selectbox("Token", tokens, key=fresh(f"{prefix}_label_token", tokens), bind=BIND,
                                     format_func=lambda i: f"{i}: {record.tokens[i]}")
    if contrast is not None and contrast == label:
        raise InputError("The contrast is the label itself: pick another label to compare with.")
    return tg.class_target(lm, record, label, contrast, position)


def explained_number(target: tg.Target) -> str:
    """The number the methods explain, in words (markdown-safe)."""
    label = plain(target.label)
    if target.contrast is not None:
        return f"logit({label}) − logit({plain(target.contrast_label)})"
    if target.kind in (tg.QA_SPAN, tg.QA_START, tg.QA_END):
        return {tg.QA_SPAN: "log P(start) + log P(end) of the best answer span",
                tg.QA_START: "log P(start) of the best answer", tg.QA_END: "log P(end) of the best answer"}[target.kind]
    return f"log σ({label})" if target.multi_label else f"log P({label})"


def why_view(lm, text: str, pair: str | None, prefix: str, kinds=None, kind: str | None = None) -> None:
    """Everything below the inputs: the target's controls, then the explanation. A page that
    gives `kind` has checked the model's heads itself."""
    if kind is None:
        if refuse_without_head(lm, prefix):
            return
        kind = kind_picker(lm, prefix, kinds)
    if kind is None:
        st.info(f"{lm.spec.key} has none of the heads this view explains.")
        return
    try:
        subj = subject_of(lm, text, pair)
        target = target_picker(lm, subj, kind, prefix)
    except InputError as exc:
        st.warning(str(exc))
        return
    except CtxlensError as exc:
        chrome.show_error(exc)
        return
    explain_panel(lm, subj, target, prefix)


# --- the explanation ---------------------------------------------------------------------------


def explain_panel(lm, subj: at.Subject, target: tg.Target, prefix: str) -> None:
    """Which words (attribution), which parts of the model (ablation), do the methods agree."""
    base = (lm.spec.key, lm.device, lm.precision, subj.record.text, subj.record.text_pair, target)
    st.markdown(f"Explaining **{plain(target.title)}**: the number is {explained_number(target)}.")
    usable = {m.name for m in registry.available(PAGE_METHODS, lm.spec)[0]}  # pages list the others
    ig_options = ig_controls(lm, prefix, usable)
    messages(words_section, lm, subj, target, prefix, base, ig_options)
    if "ablation" in usable:
        messages(ablation_section, lm, subj, target, prefix, base)
    if "head-importance" in usable:
        messages(head_importance_section, lm, subj, target, prefix, base)
    if "cross-check" in usable:
        messages(cross_check_section, lm, subj, target, prefix, base, ig_options)


def ig_controls(lm, prefix: str, usable: set) -> dict:
    """The method and integrated gradients' options (also the cross-check's)."""
    methods = [m for m in WORD_METHODS if m in usable]
    titles = {m: registry.method(m).title for m in methods}
    c_method, c_base, c_steps = st.columns([3, 2, 2])
    method = c_method.radio("Method", methods, format_func=titles.get, horizontal=True, key=f"{prefix}_method", bind=BIND)
    tok = lm.tokenizer
    baselines = [b for b in at.BASELINES if b == "zero" or getattr(tok, f"{b}_token_id", None) is not None]
    default = at.default_baseline(lm)
    baseline = c_base.selectbox("Baseline (integrated gradients)", baselines, format_func=BASELINE_LABELS.get,
                                index=baselines.index(default) if default in baselines else 0, key=f"{prefix}_baseline", bind=BIND,
                                help="The input the path starts from: every word replaced by this "
                                     "(special tokens, and a GPT-style model's first token, stay).")
    steps = c_steps.select_slider("Steps (integrated gradients)", STEPS, value=at.DEFAULT_STEPS, key=f"{prefix}_steps", bind=BIND,
                                  help="More steps: the scores add up more exactly to f(input) − f(baseline), "
                                       "at the cost of more forwards.")
    return {"method": method, "baseline": baseline, "steps": int(steps)}


def attribution_of(lm, subj, target, base: tuple, method: str, baseline: str, steps: int) -> at.Attribution:
    options = {"baseline": baseline, "steps": steps} if method == at.IG else {}
    ident = ("why_attribution", *base, method, tuple(options.items()))
    with st.spinner(f"{registry.method(method).title}…"):
        return cached(ident, lambda: at.attribute(lm, subj, target, method, **options))


def words_section(lm, subj, target, prefix: str, base: tuple, ig: dict) -> None:
    if ig["method"] is None:
        return
    result = attribution_of(lm, subj, target, base, **ig)
    shaded_text(subj.record, result)
    c_bars, c_numbers = st.columns([2, 1])
    with c_bars:
        chrome.chart(st, word_bars(result), key=f"{prefix}_bars", width="stretch")
    with c_numbers:
        completeness(result)
        st.download_button("Words and scores (CSV)", word_table(result).to_csv(index=False),
                           file_name=f"ctxlens_why_{result.method}.csv", mime="text/csv", key=f"{prefix}_words_csv",
                           on_click="ignore", icon=":material/download:")
    st.caption(
        "Red: the word pushed the number up (toward the target); blue: down; white: no effect. "
        + {at.IG: "Integrated gradients add up, word by word, the change from the baseline to the input.",
           at.GRAD_X_INPUT: "Gradient × input is the first-order guess of each word's effect: fast, but "
                            "only local.",
           at.OCCLUSION: "Occlusion removes each word in turn and re-reads the text; a word the target "
                         "itself reads cannot be removed (grey, n/a)."}[result.method]
    )


def shaded_text(record, result) -> None:
    """The text (and the second text of a pair) with every word shaded by its score."""
    segments = np.array([record.words[i].segment for i in result.word_index], dtype=int)
    last = 0 if record.text_pair is None else 1
    limit = scale_limit(result.word_scores)  # one scale for both texts of a pair
    for segment, text in ((0, record.text), (1, record.text_pair))[:last + 1]:
        scored = [(w, s) for w, s, g in zip(result.words, result.word_scores, segments) if g == segment]
        if last:
            st.caption("First text (A)" if segment == 0 else "Second text (B)")
        st.markdown(shaded_sentence_html(scored, text, legend=FOR_TARGET if segment == last else None, limit=limit),
                    unsafe_allow_html=True)


def completeness(result: at.Attribution) -> None:
    """Integrated gradients' check: the scores add up to f(input) − f(baseline)."""
    if result.baseline_value is None:
        st.metric("f(input)", f"{result.value:.3f}")
        return
    total = float(np.nansum(result.token_scores, dtype=np.float64))
    change = result.value - result.baseline_value
    gap = result.relative_gap
    st.markdown(
        f"Sum of the attributions = **{total:.3f}**  \n"
        f"f(input) − f(baseline) = {result.value:.3f} − ({result.baseline_value:.3f}) = **{change:.3f}**  \n"
        f"Gap {result.completeness_gap:+.3f} ({gap:.1%})"
    )
    if gap > GAP_HINT:
        st.info("The gap is over 2 %: take more steps for scores that add up.")


def ablation_section(lm, subj, target, prefix: str, base: tuple) -> None:
    st.subheader("Knock parts of the model out")
    config = lm.model.config
    layers, heads = config.num_hidden_layers, config.num_attention_heads
    c_kind, c_layer, c_head = st.columns(3)
    kind = c_kind.selectbox("Knock out", list(KNOCKOUTS), format_func=KNOCKOUTS.get, key=f"{prefix}_ko_kind", bind=BIND)
    layer = int(c_layer.number_input(f"Layer (0–{layers - 1})", 0, layers - 1, 0,
                                     key=fresh(f"{prefix}_ko_layer", range(layers)), bind=BIND))
    head = int(c_head.number_input(f"Head (0–{heads - 1})", 0, heads - 1, 0, key=fresh(f"{prefix}_ko_head", range(heads)), bind=BIND,
                                   disabled=kind != ab.HEAD))
    knockout = ab.Knockout(kind, layer, head if kind == ab.HEAD else None)
    result = cached(("why_ablation", *base, knockout), lambda: ab.ablate(lm, subj, target, knockout))
    c1, c2, c3 = st.columns([1, 1, 2])
    c1.metric("Whole model", f"{result.value:.3f}")
    c2.metric(f"Without {knockout.label}", f"{result.ablated_value:.3f}", f"{result.change:+.3f}")
    if result.top:
        c3.dataframe(pd.DataFrame({"before": [t for t, _ in result.top], "p": [p for _, p in result.top],
                                   "after": [t for t, _ in result.ablated_top], "p after": [p for _, p in result.ablated_top]}),
                     hide_index=True, column_config={c: st.column_config.NumberColumn(format="%.3f")
                                                     for c in ("p", "p after")})


def on_click(prefix: str, name: str, ident: tuple, label: str, help_text: str) -> bool:
    """A button whose click is remembered for `ident` (the inputs it was made for)."""
    slot = f"{prefix}_{name}_for"
    if st.button(label, key=f"{prefix}_{name}_run", help=help_text):
        st.session_state[slot] = ident
    return st.session_state.get(slot) == ident


def head_importance_section(lm, subj, target, prefix: str, base: tuple) -> None:
    config = lm.model.config
    n = config.num_hidden_layers * config.num_attention_heads
    st.subheader("Head importance by ablation")
    ident = ("why_heads", *base)
    if not on_click(prefix, "heads", ident, f"Knock out each head in turn ({n} heads)",
                    f"{n} forwards with one head knocked out each."):
        return
    with st.spinner(f"Knocking out {n} heads one at a time…"):
        result = cached(ident, lambda: ab.head_importance(lm, subj, target))
    chrome.chart(st, head_importance_heatmap(result.change), key=f"{prefix}_heads", width="stretch")
    st.caption("Each cell: the number without that head minus with every head. A head whose removal "
               "lowers the target (red) was helping it.")


def cross_check_section(lm, subj, target, prefix: str, base: tuple, ig: dict) -> None:
    st.subheader("Cross-check: do six methods agree?")
    options = (ig["baseline"], ig["steps"])
    ident = ("why_cross_check", *base, options)
    if not on_click(prefix, "cross", ident, "Run the cross-check",
                    "Attention, rollout, integrated gradients, gradient × input, occlusion and head ablation "
                    "on the same target."):
        return
    with st.spinner("Six methods on the same prediction…"):
        result = cached(ident, lambda: cross_check(lm, subj, target, *options))
    table = result.importances.reset_index()
    methods = list(result.importances.columns)
    shown = table.assign(**{m: ["n/a" if not np.isfinite(v) else f"{v:.3f}" for v in table[m]] for m in methods})
    st.dataframe(shown, hide_index=True, width="stretch",  # text cells: a table writes NaN as "None"
                 column_config={m: st.column_config.TextColumn(alignment="right") for m in methods})
    st.download_button("Word importances (CSV)", table.to_csv(index=False), file_name="ctxlens_cross_check.csv",
                       mime="text/csv", key=f"{prefix}_cross_csv", on_click="ignore", icon=":material/download:")
    chrome.chart(st, agreement_heatmap(result.agreement), key=f"{prefix}_agreement", width="stretch")
    st.caption(f"Integrated gradients from {BASELINE_LABELS[options[0]]}, {options[1]} steps. Agreement: "
               "Spearman's rank correlation of the words' magnitudes (n/a: a method gave no ranking).")
    st.info(CAVEAT)


# --- the Polysemy lab ------------------------------------------------------------------------


def sense_section(occurrences: dict, layers: dict, device: str) -> None:
    """Which words pull one occurrence toward its sense, at the lab's layer for its model."""
    st.subheader("Which words pull this occurrence toward its sense?")
    st.markdown(
        "Pick one occurrence. The number explained is how much closer its vector is to its own "
        "sense's centre than to the nearest other sense's (cosine), at the layer shown above; "
        "integrated gradients share it among the sentence's words (red: pulls toward its own "
        "sense; blue: toward the other)."
    )
    # One above the other, each the column's width; the sentence cut to what a projector's font
    # fits there at 1280 px (the select box keeps a label drawn before projector mode was on),
    # whole in the attribution below.
    key = st.selectbox("Model", list(occurrences), key="lab_why_model", bind=BIND)
    occ = occurrences[key]
    which = st.selectbox("Occurrence", range(occ.n), key=fresh("lab_why_occ", range(occ.n)), bind=BIND,
                         format_func=lambda i: f"{i + 1}. [{occ.senses[i]}] {shorten(occ.texts[i], 40)}")
    layer = layers[key]
    digest = hashlib.blake2b(np.ascontiguousarray(occ.vectors[layer]).tobytes(), digest_size=16).hexdigest()
    ident = ("lab_sense", key, device, precision(), digest, tuple(occ.senses), which, occ.texts[which], layer)
    if not on_click("lab_why", "sense", ident, f"Attribute at layer {layer}",
                    "Integrated gradients, 32 steps: a few seconds on a CPU."):
        return
    messages(_sense_result, key, device, occ, which, layer, ident)


def _sense_result(key, device, occ, which, layer, ident) -> None:
    lm = running.load_model(key, device)
    if lm is None:
        return
    with st.spinner("Integrating gradients…"):
        result = cached(ident, lambda: sense_attribution(lm, occ, occ.texts[which], which, layer))
    st.markdown(shaded_sentence_html(list(zip(result.words, result.word_scores)), occ.texts[which],
                                     highlight=result.target_word,
                                     legend=("toward the other sense", "toward its own sense")),
                unsafe_allow_html=True)
    st.markdown(
        f"cos(own sense **{plain(result.sense)}**) − cos(nearest other, **{plain(result.other_sense)}**) = "
        f"**{result.value:.3f}** (from zero vectors: {result.baseline_value:.3f}; the scores add up to within "
        f"{abs(result.completeness_gap):.3f})."
    )
    ranking = pd.DataFrame(result.context_ranking(), columns=["context word", "pull toward own sense"])
    st.dataframe(ranking, hide_index=True, width="stretch",
                 column_config={"pull toward own sense": st.column_config.NumberColumn(format="%.4f")})
