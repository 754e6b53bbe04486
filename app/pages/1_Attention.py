"""Attention: who attends to whom, in bertviz's views and in our heatmaps."""

import numpy as np
import streamlit as st

from ctxlens.analysis.attention import (
    STATISTICS,
    drop_special_sinks,
    merge_to_words,
    present_words,
)
from ctxlens.analysis.tokens import is_byte_level
from ctxlens.cache import cached
from ctxlens.figures.attention import (
    LONG_INPUT,
    attention_lines,
    head_heatmap,
    head_summary_heatmap,
    layer_heads_grid,
)
from ctxlens.figures.bertviz_html import (
    MAX_SVG_LINES,
    head_view_html,
    model_view_html,
    neuron_view_height,
    neuron_view_html,
    neuron_view_unavailable_reason,
    suggested_height,
    svg_line_count,
)
from ctxlens.methods import registry
from ctxlens.methods.attention import head_statistics, mean_over_heads, rollout
from ctxlens.methods.neurons import supports_neuron_view
from ctxlens.models import catalog as cat
from ctxlens.models.registry import get_model
from ctxlens.record import Family
from ui import exercise, chrome, inputs, pickers, running
from ui.state import BIND

MAX_IFRAME_HEIGHT = 1000  # taller views scroll inside their frame
GRID_CELLS = 1_000_000  # heads × T² above this: the all-heads grid (≈ 13 B a cell) waits for a click
FEW_HEADS = 4  # model-view heads pre-selected when all of them would draw too many lines
SINKS_HELP = (
    "Much attention goes to [CLS]/[SEP]/BOS-like special tokens as a no-op. Removing them sets those "
    "key columns to 0 and re-normalises each row over the remaining tokens (a GPT-2-style model "
    "without BOS uses its first real word as the sink, which stays)."
)
MERGE_HELP = (
    "A word's weight as a key is the sum over its pieces (attention to any piece goes to the word); "
    "as a query it is the mean over its pieces (each piece is one view of where the word looks). "
    "Special tokens are dropped, so merged rows sum to less than 1 unless sinks are removed."
)

chrome.page_setup("Attention")
st.title("Who attends to whom?")
st.markdown(
    "Every layer of a Transformer has several attention **heads**. Each head gives every token "
    "(the **query**, a row) a set of weights over the tokens it reads from (the **keys**, the "
    "columns); each row sums to 1. BERT-style encoders read in both directions; GPT-style "
    "causal models read only to the left, so the upper triangle is empty (grey). "
    "Layers and heads are numbered from 0."
)

device = pickers.device_picker()
models = pickers.model_picker()
text, second = inputs.sentence_input("The bank of the river was muddy after the storm.")
exercise.on_page("Attention", device, text)  # a question about the sentence in view

inputs.require_models(models)
text, second = inputs.require_pair(text, second)


# Kept in the library's one byte-bounded cache, per analysis input, so moving a slider does
# not recompute statistics or rebuild megabytes of bertviz HTML. Every view is built for the
# page's Layer and Head (bertviz's own menus are hidden or fixed), so one control drives all.
def cached_head_view(ident, layer, head, drop_sinks, record):
    return cached(("head_view", ident, layer, head, drop_sinks),
                  lambda: head_view_html(record, layer=layer, heads=[head], layers=[layer], drop_sinks=drop_sinks))


def cached_model_view(ident, layers, heads, opened, drop_sinks, record):
    return cached(("model_view", ident, layers, heads, opened, drop_sinks),
                  lambda: model_view_html(record, layers=list(layers), heads=list(heads), opened=opened,
                                          drop_sinks=drop_sinks))


def cached_neuron_view(ident, layer, head, record):
    return cached(("neuron_view", ident, layer, head),
                  lambda: neuron_view_html(record, layer=layer, head=head, every_head=False))


def tokenization_note(key: str, record) -> str:
    """What the tokens are: the tokenizer's algorithm and the marks it leaves in the tokens."""
    tokenizer = get_model(key, device, None, pickers.precision()).tokenizer  # already loaded: analyze() came first
    algorithm = type(getattr(getattr(tokenizer, "backend_tokenizer", None), "model", None)).__name__
    if algorithm == "BPE" and is_byte_level(tokenizer):
        kind = "byte-level BPE sub-words: ␣ marks a piece that starts with a space; a character " \
               "split across pieces (emoji, CJK) shows as <0x..> bytes"
    elif algorithm == "WordPiece":
        kind = "WordPiece sub-words: ## marks a piece that continues the previous one"
    elif algorithm == "Unigram":
        kind = "SentencePiece (Unigram) sub-words: ␣ marks a piece that starts a word"
    else:
        kind = f"{algorithm} sub-words"
    specials = list(dict.fromkeys(t for t, s in zip(record.tokens, record.special_mask) if s))
    added = f"; special tokens {', '.join(specials)}" if specials else "; no special tokens added"
    return f"Tokens: {kind}{added}."


def axis_labels(record, merge: bool) -> list[str]:
    """The tokens, or with `merge` the words they belong to (when the text has any)."""
    words = present_words(record.word_ids)
    return [record.words[i].text for i in words] if merge and words.size else list(record.tokens)


def prepare(att, record, drop_sinks: bool, merge: bool):
    """The matrices [..., T, T] as the toggles ask, with their axis labels."""
    if drop_sinks:
        att = drop_special_sinks(att, record.special_mask)
    if merge and present_words(record.word_ids).size:
        att = merge_to_words(att, record.word_ids)
    return att, axis_labels(record, merge)


def default_bertviz_heads(record) -> list[int]:
    """The model view's heads: all when one layer of them fits under MAX_SVG_LINES, else the
    first few that fit."""
    fit = MAX_SVG_LINES // max(1, record.n_tokens**2)
    return list(range(record.n_heads if record.n_heads <= fit else max(1, min(FEW_HEADS, fit))))


def frame(html: str, height: int, alt: str) -> None:
    # st.iframe is components.v1.html's successor (an iframe with srcdoc, scrolling on);
    # the old name shows a deprecation warning in the page.
    st.iframe(html, height=min(height, MAX_IFRAME_HEIGHT), alt=alt)


def too_many_lines(view: str, lines: int, remedy: str) -> None:
    st.info(
        f"The bertviz {view} would draw {lines:,} SVG lines (more than {MAX_SVG_LINES:,}), which "
        f"stalls a browser, so it is skipped: {remedy}. The heatmap below shows the picked layer "
        "and head; the other tabs have every head."
    )


def show_model(key: str, record, ident) -> None:
    causal = record.family is Family.CAUSAL_LM
    n_tokens, n_layers, n_heads = record.n_tokens, record.n_layers, record.n_heads
    st.markdown(
        f"**{record.family.label}** · {n_tokens} tokens · {n_layers} layers × {n_heads} heads · {record.precision}"
        + (" · causal: each token attends only to itself and earlier tokens" if causal else "")
    )
    st.caption(tokenization_note(key, record))

    c_layer, c_head, c_sinks, c_merge = st.columns([2, 2, 3, 3], vertical_alignment="bottom")
    layer = c_layer.selectbox("Layer", range(n_layers), index=n_layers // 2, key=f"att_layer_{key}", bind=BIND)
    head = c_head.selectbox("Head", range(n_heads), key=f"att_head_{key}", bind=BIND)
    drop_sinks = c_sinks.toggle("Remove special-token sinks", key=f"att_sinks_{key}", bind=BIND, help=SINKS_HELP)
    merge = c_merge.toggle("Merge sub-words into words", key=f"att_merge_{key}", bind=BIND, help=MERGE_HELP)
    st.caption("Layer, Head and the sinks toggle drive every view below, bertviz's included (its "
               "neuron view shows the raw scores); merging changes the heatmap and line tabs.")
    head_title = f"layer {layer}, head {head}"
    sinks_note = ", special-token sinks removed" if drop_sinks else ""

    # Every figure is built once per input and view (`shared`: all it depends on) and shown
    # to every session that asks for the same: a class on one lesson link builds each once.
    def heatmap(where, chart_key: str, view: tuple, matrix, title: str) -> None:
        """A [T, T] matrix, `matrix()`, as the toggles ask, drawn as a heatmap."""
        chrome.chart(where, lambda: head_heatmap(*prepare(matrix(), record, drop_sinks, merge), causal=causal,
                                                 title=title),
                     key=chart_key, shared=(*view, ident, drop_sinks, merge))

    def head_chart(where, chart_key: str) -> None:
        heatmap(where, chart_key, ("head", layer, head), lambda: record.attention(layer, head), head_title)

    tabs = st.tabs([
        "bertviz head view", "bertviz model view", "bertviz neuron view", "All heads of a layer",
        "One head", "Head summary", "Mean & rollout",
    ], key=f"att_view_{key}", bind=BIND)
    with tabs[0]:
        lines = svg_line_count(record, "head")
        if lines > MAX_SVG_LINES:
            too_many_lines("head view", lines, "it draws every head of a layer at once; shorten the "
                           "text, or use the model view with a few heads")
            head_chart(st, f"att_hv_fallback_{key}")
        else:
            st.caption(f"{head_title}{sinks_note}. Hover a token to see its attention; click a colour "
                       "to add that head, double-click it to show only it."
                       + (" Pair: the menu filters sentence A / B." if record.text_pair else ""))
            html = cached_head_view(ident, layer, head, drop_sinks, record)
            frame(html, suggested_height(record, "head"), f"bertviz head view of {key}")
    with tabs[1]:
        fitting = default_bertviz_heads(record)
        # Keyed by the default too: a longer text resets the choice to heads that fit.
        picked = st.multiselect("Heads in the model view", range(n_heads), default=fitting,
                                key=f"att_mv_heads_{key}_{len(fitting)}", bind=BIND, help="The Head above is always in.")
        heads = sorted({*picked, head})
        all_layers = list(range(n_layers))
        layers = all_layers if svg_line_count(record, "model", all_layers, heads) <= MAX_SVG_LINES else [layer]
        lines = svg_line_count(record, "model", layers, heads)
        if lines > MAX_SVG_LINES:
            too_many_lines("model view", lines, "pick fewer heads, or shorten the text")
            head_chart(st, f"att_mv_fallback_{key}")
        else:
            if len(layers) < n_layers:
                st.caption(f"Long input: only layer {layer} is drawn (pick the layer above).")
            st.caption(f"Every layer × head{sinks_note}; {head_title} opens enlarged. Click a "
                       "thumbnail to enlarge it instead.")
            html = cached_model_view(ident, tuple(layers), tuple(heads), (layer, head), drop_sinks, record)
            frame(html, suggested_height(record, "model", layers), f"bertviz model view of {key}")
    with tabs[2]:
        if supports_neuron_view(record):
            st.caption(f"The query and key vectors of {head_title} (blue positive, orange negative), "
                       "with raw attention (sinks kept). Hover a token on the left, then click the ⊕ "
                       "to see q × k and the softmax for it.")
            frame(cached_neuron_view(ident, layer, head, record), neuron_view_height(record),
                  f"bertviz neuron view of {key}")
        else:
            st.info(neuron_view_unavailable_reason(record))
    with tabs[3]:
        cells = n_heads * n_tokens**2
        draw = cells <= GRID_CELLS or st.checkbox(
            f"Draw all {n_heads} heads anyway (about {cells * 13 / 1e6:.0f} MB of figure data)",
            key=f"att_grid_anyway_{key}",
        )
        if draw:
            chrome.chart(st, lambda: layer_heads_grid(*prepare(record.attention(layer), record, drop_sinks, merge),
                                                      causal=causal, layer=layer),
                         key=f"att_grid_{key}", shared=("grid", ident, layer, drop_sinks, merge))
        else:
            st.info(f"{n_tokens} tokens × {n_heads} heads is a heavy figure: pick one head in the "
                    "“One head” tab, or tick the box.")
    with tabs[4]:
        head_chart(st, f"att_headfig_{key}")
        n = len(axis_labels(record, merge))
        k = st.number_input(
            "Line view: the k strongest edges", 1, n * n, n * n if n <= LONG_INPUT else 3 * n,
            key=f"att_k_{key}_{n}", bind=BIND, help=f"Above {LONG_INPUT} tokens all {n}² lines are unreadable: "
            "only the strongest are drawn.",
        )
        chrome.chart(st, lambda: attention_lines(*prepare(record.attention(layer, head), record, drop_sinks, merge),
                                                 k=int(k)),
                     key=f"att_lines_{key}", shared=("lines", ident, layer, head, drop_sinks, merge, int(k)))
    with tabs[5]:
        name = st.selectbox("Statistic", list(STATISTICS), format_func=STATISTICS.get, key=f"att_stat_{key}", bind=BIND)
        values = head_statistics(record)[name]
        if np.isnan(values).all():
            st.info("This input has none of those tokens (no [SEP]/EOS, or no punctuation).")
        else:
            chrome.chart(st, lambda: head_summary_heatmap(values, name), key=f"att_summary_{key}",
                         shared=("summary", ident, name))
        st.caption("Each cell: one head's mean over all query rows (see the library's "
                   "head_statistics for the exact definitions).")
    with tabs[6]:
        st.caption(
            f"**Mean over heads** of layer {layer}. **Rollout** (Abnar & Zuidema 2020): layers 0…{layer} "
            "multiplied, each as ½ · mean over heads + ½ · identity for the residual connection: how "
            "much each input token (column) has flowed into each position (row) by that layer."
        )
        left, right = st.columns(2)
        heatmap(left, f"att_mean_{key}", ("mean", layer), lambda: mean_over_heads(record, layer),
                f"mean over heads, layer {layer}")
        heatmap(right, f"att_rollout_{key}", ("rollout", layer), lambda: rollout(record, layer),
                f"rollout to layer {layer}")


tabs = st.tabs(models, key="att_model", bind=BIND) if len(models) > 1 else [st.container()]
for tab, key in zip(tabs, models):
    with tab:
        spec = cat.CATALOG.get(key)
        if len(models) == 1:
            st.subheader(key)
        if spec is not None and not registry.method("attention-maps").applies(spec):
            # Known before loading anything (an ELMo biLM is an LSTM: no attention weights at all).
            st.info(registry.method("attention-maps").missing(spec))
            continue
        record = running.analyze(key, text, second, device)
        if record is None:
            continue
        if not record.has_attention:
            st.info(f"{key} ({record.family.label}) returns no attention weights.")
            continue
        show_model(key, record, running.input_key(record, device))
