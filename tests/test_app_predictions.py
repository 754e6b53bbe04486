"""The prediction pages under Streamlit's AppTest: Masked LM, Next token, Question answering,
with the tiny models (numbers checked against the library) and the embedded real models."""

import html
import json
from pathlib import Path

import pytest

import tiny_models as tm  # the module; `tiny_models` is the fixture of folders
from apptest import charts as _charts
from apptest import ok as _ok
from apptest import open_page, set_bound
from ctxlens.analysis.sampling import surprisal
from ctxlens.methods.corruption import corruption_demo
from ctxlens.methods.fill_mask import fill_mask
from ctxlens.methods.next_token import generate_stream, next_tokens
from ctxlens.methods.task_heads import nsp_score
from ctxlens.methods.qa import answer_question
from ctxlens.models import catalog as cat
from ctxlens.models.registry import get_model

PAGES = Path(__file__).resolve().parents[1] / "app" / "pages"
MLM_PAGE, NEXT_PAGE, QA_PAGE = (str(PAGES / f) for f in ("4_Masked_LM.py", "6_Next_token.py", "7_Question_answering.py"))
HOSTILE = "<script>alert('x')</script> <b>bold</b> **star** [link](http://x) $x$"
SMOLLM = "SmolLM2-135M-Instruct"


def _page(path, model, view=None, custom=True, **state):
    return open_page(path, model, None if custom else [], **dict([view] if view else []), **state)


def _labels(chart):
    return list(chart["data"][0]["customdata"])


def _no_raw_html(at):
    """User text never reaches markdown as live HTML: only escaped, or in code/text elements."""
    assert not any("<script>" in m.value for m in at.markdown)
    assert not any("<script>" in json.dumps(c) for c in _charts(at))


# --- Masked LM ------------------------------------------------------------------------------


def test_fill_mask_bars_are_the_librarys_fillers(tiny_models):
    folder = tiny_models["bert-mlm"]
    at = _page(MLM_PAGE, folder)
    _ok(at)
    (chart,) = _charts(at)
    lm = get_model(folder, "cpu")
    expected = fill_mask(lm, "The capital of France is [MASK].", top_k=5).slots[0].fillers
    assert _labels(chart) == [html.escape(f.text, quote=False) for f in expected]
    assert "mask 1" in chart["layout"]["title"]["text"]
    assert any("[MASK]" in c.value for c in at.main.code)  # what the model read


def test_missing_mask_is_a_clear_message_and_picking_a_word_masks_it(tiny_models):
    folder = tiny_models["bert-mlm"]
    at = _page(MLM_PAGE, folder)
    at.text_area(key="mlm_text").set_value("the cat sat on the mat.").run()
    _ok(at)
    assert any("No mask in the text" in w.value for w in at.warning)
    assert not _charts(at)

    at.radio(key="mlm_mode").set_value("Pick a word to mask").run()
    at.selectbox(key="mlm_word").set_value(1).run()  # "cat"
    _ok(at)
    assert any(c.value == "the [MASK] sat on the mat." for c in at.main.code)
    assert len(_charts(at)) == 1

    at.checkbox(key="mlm_whole_word").check().run()  # whole words: still one chart, words as fillers
    _ok(at)
    (chart,) = _charts(at)
    assert all(not label.startswith("##") for label in _labels(chart))


def test_logit_lens_has_one_row_per_mask_and_a_column_per_layer(tiny_models):
    folder = tiny_models["bert-mlm"]
    at = _page(MLM_PAGE, folder, view=("mlm_view", "Logit lens"))
    at.text_area(key="mlm_text").set_value("the [MASK] sat on the [MASK].").run()
    _ok(at)
    (lens,) = _charts(at)
    assert lens["data"][0]["type"] == "heatmap"
    assert len(lens["data"][0]["x"]) == 3  # embeddings + 2 layers
    assert len(lens["data"][0]["y"]) == 2


def test_corruption_table_follows_the_library_and_the_seed(tiny_models):
    folder = tiny_models["bert-mlm"]
    at = _page(MLM_PAGE, folder, view=("mlm_view", "80/10/10 corruption"))
    _ok(at)
    table = next(df.value for df in at.dataframe if "what happened" in df.value.columns)
    # The typed text has a [MASK]: the demo runs on its example sentence.
    source = next(t for t in at.text_input if t.label == "Sentence to corrupt").value
    assert source.startswith("The quick brown fox")
    demo = corruption_demo(get_model(folder, "cpu"), source, 0)
    assert table.loc[table["in the loss"], "position"].tolist() == demo.positions.tolist()
    assert table.loc[table["in the loss"], "top predictions"].str.len().gt(0).all()
    assert table.loc[~table["in the loss"], "what happened"].eq("").all()

    at.number_input(key="mlm_seed").set_value(7).run()
    _ok(at)
    again = next(df.value for df in at.dataframe if "what happened" in df.value.columns)
    demo7 = corruption_demo(get_model(folder, "cpu"), source, 7)
    assert again.loc[again["in the loss"], "position"].tolist() == demo7.positions.tolist()


def test_nsp_shows_p_is_next_and_the_segment_layout(tiny_models):
    folder = tiny_models["bert-nsp"]
    at = _page(MLM_PAGE, folder, view=("mlm_view", "Next sentence"))
    assert any("second sentence" in i.value for i in at.info)
    at.checkbox(key="mlm_text_pair_on").check().run()
    at.text_area(key="mlm_text_pair").set_value("The city is big.").run()
    _ok(at)
    nsp = nsp_score(get_model(folder, "cpu"), "The capital of France is [MASK].", "The city is big.")
    assert at.metric[0].value == f"{nsp.p_is_next:.1%}"
    layout = next(df.value for df in at.dataframe if "segment id" in df.value.index)
    assert layout.loc["token"].tolist() == list(nsp.tokens)
    assert layout.loc["segment id"].tolist() == [str(s) for s in nsp.segment_ids]
    assert layout.loc["segment id"].tolist()[0] == "0" and layout.loc["segment id"].tolist()[-1] == "1"


def test_an_mlm_without_nsp_head_names_the_models_that_have_one(tiny_models):
    at = _page(MLM_PAGE, tiny_models["bert-mlm"], view=("mlm_view", "Next sentence"))
    _ok(at)
    assert any("needs a trained head for next-sentence prediction" in i.value and "bert-base-uncased" in i.value
               for i in at.info)


def test_fine_tuning_heads_show_sentence_and_token_labels(tmp_path):
    folders = tm.save_classifiers(tmp_path)

    at = _page(MLM_PAGE, folders["bert-seq"], view=("mlm_view", "Fine-tuning heads"))
    _ok(at)
    (chart,) = at.get("vega_lite_chart")
    assert "probability" in chart.proto.spec
    at = _page(MLM_PAGE, folders["bert-tok"], view=("mlm_view", "Fine-tuning heads"))
    _ok(at)
    words = next(df.value for df in at.dataframe if "label" in df.value.columns)
    assert words["word"].tolist() == ["The", "capital", "of", "France", "is", "[", "MASK", "]", "."]
    assert set(words["label"]) <= {"O", "B-LOC", "I-LOC"}
    # Its MLM view is refused: the checkpoint has no MLM head, so no random fillers.
    set_bound(at, "mlm_view", "Fill the mask")
    assert any("needs a trained head for masked-token prediction" in e.value for e in at.error)
    assert not _charts(at)


def test_minilm_is_refused_naming_models_with_an_mlm_head():
    at = _page(MLM_PAGE, "all-MiniLM-L6-v2", custom=False)
    assert not at.exception
    (error,) = at.error
    assert "all-MiniLM-L6-v2" in error.value and "needs a trained head for masked-token prediction" in error.value
    assert "bert-base-uncased" in error.value and "roberta-base" in error.value
    assert any("HF_HUB_OFFLINE" in c.value for c in at.caption)
    assert not _charts(at)  # its random output is never shown
    at.session_state["mlm_view"] = "Logit lens"
    at.run()
    assert any("masked-token prediction" in e.value for e in at.error) and not _charts(at)


def test_online_the_refusal_offers_downloads(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # model_status only looks in the local cache
    at = _page(MLM_PAGE, "all-MiniLM-L6-v2", custom=False)
    assert not at.exception
    labels = [b.label for b in at.button]
    assert any(label.startswith(("Download and use bert-base-uncased", "Use bert-base-uncased"))
               for label in labels)


def test_masked_page_escapes_hostile_text(tiny_models):
    at = _page(MLM_PAGE, tiny_models["bert-mlm"])
    at.text_area(key="mlm_text").set_value("[MASK] " + HOSTILE).run()
    _ok(at)
    assert len(_charts(at)) == 1
    assert any(HOSTILE in c.value for c in at.main.code)
    _no_raw_html(at)


# --- Next token -----------------------------------------------------------------------------


def test_next_token_views_with_tiny_gpt2(tiny_models):
    folder = tiny_models["gpt2"]
    lm = get_model(folder, "cpu")
    text = "The capital of France is"
    at = _page(NEXT_PAGE, folder)
    _ok(at)
    (bars,) = _charts(at)
    expected = next_tokens(lm, text, 10).candidates
    assert _labels(bars) == [html.escape(f.text, quote=False) for f in expected]

    at.session_state["nt_view"] = "Surprisal"
    at.run()
    _ok(at)
    (strip,) = _charts(at)
    s = surprisal(next_tokens(lm, text).record)
    assert f"{s.total_bits:.2f} bits" in next(m.value for m in at.markdown if "negative log-likelihood" in m.value)
    assert strip["data"][0]["type"] == "heatmap"

    at.session_state["nt_view"] = "Logit lens"
    at.run()
    _ok(at)
    (lens,) = _charts(at)
    assert len(lens["data"][0]["x"]) == 3

    at.session_state["nt_view"] = "Few-shot lab"
    at.run()  # the tiny model reads 64 tokens: the prompts do not fit, which is said
    assert not at.exception
    assert any("64-token limit" in w.value for w in at.warning)


def test_generation_is_streamed_and_seeded(tiny_models):
    folder = tiny_models["gpt2"]
    at = _page(NEXT_PAGE, folder, view=("nt_view", "Generate"))
    _ok(at)
    at.number_input(key="nt_max_new").set_value(12).run()
    at.button(key="nt_generate").click().run()
    _ok(at)
    expected = "".join(generate_stream(get_model(folder, "cpu"), "The capital of France is", 12, 0.7, 50, 0.95, 0))
    assert at.session_state["nt_generated"][1] == expected
    assert any(c.value == "The capital of France is" + expected for c in at.main.code)
    at.slider(key="nt_temperature").set_value(1.0).run()  # another setting: the old text goes
    assert not any(c.value.startswith("The capital of France is") for c in at.main.code)


def test_a_masked_lm_on_the_next_token_page_is_refused_and_smollm2_offered(tiny_models):
    at = _page(NEXT_PAGE, tiny_models["bert-mlm"])
    assert any("needs a trained head for next-token prediction" in e.value for e in at.error)
    assert not _charts(at)
    at.button(key=f"use_{cat.NEXT_TOKEN}_{SMOLLM}").click().run()
    _ok(at)
    assert at.session_state["ctx_models"][0] == SMOLLM
    assert "Paris" in json.dumps(_charts(at)[0])


def test_smollm2_predicts_paris_and_few_shot_helps():
    at = _page(NEXT_PAGE, SMOLLM, custom=False)
    _ok(at)
    (bars,) = _charts(at)
    assert _labels(bars)[0] == "␣Paris"
    at.session_state["nt_view"] = "Few-shot lab"
    at.session_state["nt_preset"] = "capitals"
    at.run()
    _ok(at)
    (few,) = _charts(at)
    probs = few["data"][0]["y"]
    assert len(probs) == 3 and max(probs[1:]) > probs[0]
    prompts = [c.value for c in at.main.code]
    assert len(prompts) == 3 and len(prompts[2]) > len(prompts[1]) > len(prompts[0])


def test_next_token_page_escapes_hostile_text(tiny_models):
    at = _page(NEXT_PAGE, tiny_models["gpt2"])
    at.text_area(key="nt_text").set_value(HOSTILE).run()
    _ok(at)
    at.session_state["nt_view"] = "Generate"
    at.run()
    at.button(key="nt_generate").click().run()
    _ok(at)
    _no_raw_html(at)


# --- Question answering ---------------------------------------------------------------------


def test_qa_with_the_tiny_bert_qa(tiny_models):
    folder = tiny_models["bert-qa"]
    at = _page(QA_PAGE, folder)
    _ok(at)
    bars, spans = _charts(at)
    assert [t["name"] for t in bars["data"]] == ["start", "end"]
    assert spans["data"][0]["type"] == "heatmap"
    context = at.text_area(key="qa_context").value
    table = next(df.value for df in at.dataframe if "answer" in df.value.columns)
    result = answer_question(get_model(folder, "cpu"), at.text_input(key="qa_question").value, context, 3, 30, 64)
    assert table["answer"].tolist() == [a.text for a in result.answers]
    for answer, chars in zip(table["answer"], table["characters"]):
        a, b = (int(x) for x in chars.split("–"))
        assert context[a:b] == answer  # exact characters of the context
    assert [m.label for m in at.metric] == ["Best span score", "No-answer score ([CLS] start + end)"]


def test_qa_long_context_is_read_in_windows(tiny_models):
    at = _page(QA_PAGE, tiny_models["bert-qa"])
    at.text_area(key="qa_context").set_value(" ".join(["The cat sat on the mat by the door."] * 12)).run()
    _ok(at)
    assert any("overlapping windows" in i.value for i in at.info)
    windows = next(df.value for df in at.dataframe if "no-answer score" in df.value.columns)
    assert len(windows) > 2
    at.selectbox(key="qa_window_shown").set_value(len(windows) - 1).run()
    _ok(at)
    assert len(_charts(at)) == 2


def test_no_qa_model_offline_names_the_catalog_models():
    at = _page(QA_PAGE, "distilbert-base-cased-distilled-squad", custom=False)
    assert not at.exception and not at.error
    (warning,) = at.warning
    assert "deepset/roberta-base-squad2" in warning.value and "download" in warning.value
    assert not _charts(at)


def test_qa_page_escapes_hostile_text(tiny_models):
    at = _page(QA_PAGE, tiny_models["bert-qa"])
    at.text_input(key="qa_question").set_value(HOSTILE).run()
    at.text_area(key="qa_context").set_value("The cat sat. " + HOSTILE).run()
    _ok(at)
    _no_raw_html(at)


@pytest.mark.parametrize("page", [MLM_PAGE, NEXT_PAGE])
def test_empty_text_is_a_message(tiny_models, page):
    kind = "bert-mlm" if page == MLM_PAGE else "gpt2"
    at = _page(page, tiny_models[kind])
    at.text_area[0].set_value("  ").run()
    assert not at.exception
    assert any("empty" in w.value for w in at.warning)


def test_a_long_text_fills_the_masks_that_were_read_and_says_what_was_cut(tiny_models):
    at = _page(MLM_PAGE, tiny_models["bert-mlm"])
    at.text_area(key="mlm_text").set_value("The [MASK] sat. " + "the cat sat on the mat " * 40 + "[MASK]").run()
    _ok(at)
    assert len(_charts(at)) == 1
    (warning,) = [w.value for w in at.warning]
    assert "only the first" in warning and "1 [MASK] past the cut are not filled" in warning


def test_an_offline_page_without_a_usable_model_leaves_the_sessions_models_alone():
    """The QA page offline: no QA model can run, so its fallback pick is shown with the
    page's message but never replaces the models the other pages use."""
    at = open_page(QA_PAGE, ["all-MiniLM-L6-v2", "SmolLM2-135M-Instruct"], extra=[])
    assert not at.exception
    assert at.session_state["ctx_models"] == ["all-MiniLM-L6-v2", "SmolLM2-135M-Instruct"]
