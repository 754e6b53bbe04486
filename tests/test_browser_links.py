"""Every page's controls live in its link (issue 14, item 2), in a real browser.

For each page, a link that sets every control the page draws for it to a value other than
its default, plus the inputs carried between pages: opening it restores every control, and
the address keeps every parameter afterwards, so a copied address reopens the same view.
Lazy tabs draw only the open tab's controls, so such a page gets one link per tab. A few
real interactions (a tab click, a button, a lesson link) check that the address follows.

Only control values are compared, never numbers a model computes. Models: tiny random
folders (tests/tiny_models.py) and the embedded ones, offline.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import transformers as tf
from playwright.sync_api import TimeoutError as PlaywrightTimeout

import tiny_models as tm
from browser import LOCAL_HOSTS, browser_page, rerun, streamlit_server, wait_for_idle

pytestmark = [pytest.mark.slow, pytest.mark.browser]

TIMEOUT = 180_000
FAILED = '[data-testid="stException"], [data-testid="stAlertContentError"]'  # a traceback, an st.error
# A keyed widget's container carries the class st-key-<key>, every character outside
# [A-Za-z0-9_-] written as "-" (Streamlit's frontend). One reader for every kind of widget.
READ = r"""key => {
  const el = document.getElementsByClassName('st-key-' + key.trim().replace(/[^a-zA-Z0-9_-]/g, '-'))[0];
  if (!el) return null;
  const kind = el.getAttribute('data-testid') === 'stTabs' ? 'stTabs'
    : el.querySelector('[data-testid]')?.getAttribute('data-testid');
  if (kind === 'stSkeleton') return null;  // drawn as a skeleton while the widget's code loads
  const input = el.querySelector('input, textarea');
  switch (kind) {
    case 'stTabs':  // the first tab list is this container's own (nested tabs come later)
      return el.querySelector('[role=tablist] [role=tab][aria-selected=true]')?.innerText.trim() ?? null;
    case 'stSlider':  // slider and select_slider: the value shown on the thumb
      return el.querySelector('[data-testid=stSliderThumbValue]')?.innerText.trim() ?? null;
    case 'stCheckbox':  // checkbox and toggle
      return input.checked;
    case 'stRadio': {
      const checked = el.querySelector('input:checked');
      return checked && checked.closest('label').innerText.trim();
    }
    case 'stMultiSelect':
      return [...el.querySelectorAll('[data-tag] [title]')].map(tag => tag.getAttribute('title'));
    default:  // selectbox (its shown option), text input, text area, number input
      return input ? input.value : kind;
  }
}"""

# Option labels as the pages show them (a bound selectbox or radio keeps its shown label).
BFLOAT16 = "bfloat16 (half: faster on a GPU, numbers move)"
OWN_TOP = "P(layer's own top token)"
TYPED = "a token I type"
GRAD_X_INPUT, OCCLUSION = "Gradient × input", "Word occlusion"
PAD, ZERO = "[PAD] tokens", "zero vectors"
LAYER_HEADS, MLP = "every head of a layer", "a layer's MLP"
NSP_KIND, NOT_NEXT = "next-sentence prediction", "NotNext: B is random"
OWN_SENTENCES = "(my own sentences)"
SMOLLM = "SmolLM2-135M-Instruct"
ELMO = "elmo-tiny-test"

MASKED = "the capital of france is [MASK] ."
LAB_SENTENCES = ("money | the bank was in paris .\nmoney | the city bank sat .\n"
                 "river | the river bank was wet .\nriver | we sat on the river bank .")
QA_QUESTION = "where did the cat sit ?"
QA_CONTEXT = " ".join(["the dog sat in the house by the river ."] * 4
                      + ["the cat sat on the mat ."] + ["the bank was by the city ."] * 3)


@dataclass
class View:
    """A page opened by a link: the inputs it carries, the bound controls it sets
    (key: value in the link), and how the page shows them."""

    path: str
    carried: dict  # inputs carried between pages: model, text, pair, ...
    bound: dict  # bound controls: key -> the value the link gives (a list: repeated)
    boxes: dict = field(default_factory=dict)  # widgets showing a carried input: key -> shown
    shown: dict = field(default_factory=dict)  # bound controls shown other than as the link writes them
    later: tuple = ()  # bound controls drawn only after an interaction (checked by the test)

    def params(self) -> dict:
        return {**self.carried, **self.bound}

    def url(self, server: str) -> str:
        return f"{server}/{self.path}?{urlencode(self.params(), doseq=True)}"

    def expected(self) -> dict:
        def shown(value):
            return True if value == "true" else list(value) if isinstance(value, list) else value

        drawn = {k: shown(v) for k, v in self.bound.items() if k not in self.later}
        return {**drawn, **self.boxes, **{k: v for k, v in self.shown.items() if k not in self.later}}


def read(page, key: str):
    return page.evaluate(READ, key)


def settle(page) -> None:
    """Idle, and still idle a moment later (a bound tab or a corrected URL may rerun once)."""
    wait_for_idle(page, TIMEOUT)
    page.wait_for_timeout(300)
    wait_for_idle(page, TIMEOUT)


def open_url(page, url: str, last: str, keys=()) -> None:
    """Open `url`, wait until widget `last` (drawn late, after the models) is there, the page
    is idle, and the widgets `keys` are drawn (an idle page may still show skeletons)."""
    page.page_errors.clear()
    page.foreign_requests.clear()
    page.goto(url, timeout=60_000)
    drawn(page, [last], must=True)
    settle(page)
    drawn(page, keys)


def drawn(page, keys, must: bool = False) -> None:
    """Wait until every widget of `keys` is drawn, or the page shows an error. `must`: fail
    when one is not drawn; else give up after a while, and let the comparison that follows say
    which one is missing."""
    try:
        page.wait_for_function(f"keys => keys.every(k => ({READ})(k) !== null) || !!document.querySelector({FAILED!r})",
                               arg=list(keys), timeout=TIMEOUT if must else 30_000)
    except PlaywrightTimeout:
        if must:
            raise
    no_errors(page)


def address(page) -> dict:
    return parse_qs(urlsplit(page.url).query, keep_blank_values=True)


def check_restored(page, view: View) -> None:
    """Every control shows what the link set, and the address still holds every parameter."""
    expected = view.expected()
    assert {k: read(page, k) for k in expected} == expected
    kept = address(page)
    wanted = {k: [str(x) for x in v] if isinstance(v, list) else [str(v)] for k, v in view.params().items()}
    assert {k: kept.get(k) for k in wanted} == wanted
    no_errors(page)


def no_errors(page) -> None:
    assert page.locator(FAILED).all_inner_texts() == []
    assert page.page_errors == [] and page.foreign_requests == []


def round_trip(page, server: str, view: View, fresh: bool = False) -> None:
    """Open the view's link and check it; `fresh`: then open the address the app kept in a
    new page (a new session) and check it again."""
    open_url(page, view.url(server), last(view), view.expected())
    check_restored(page, view)
    if fresh:
        with copied(page, last(view), view.expected()) as other:
            check_restored(other, view)


@contextlib.contextmanager
def copied(page, last: str, keys):
    """The page's address, as a user would copy it, opened in a new browser page."""
    other = page.context.browser.new_page(viewport=page.viewport_size)
    other.page_errors, other.foreign_requests = [], []
    other.on("pageerror", lambda err: other.page_errors.append(str(err)))

    def on_request(request):  # as browser_page records them
        url = urlsplit(request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname not in LOCAL_HOSTS:
            other.foreign_requests.append(request.url)

    other.on("request", on_request)
    try:
        open_url(other, page.url, last, keys)
        yield other
    finally:
        other.close()


def last(view: View) -> str:
    return [k for k in view.bound if k not in view.later][-1]


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server():
    with streamlit_server() as url:
        yield url


@pytest.fixture(scope="module")
def page():
    with browser_page() as p:
        yield p


@pytest.fixture(scope="module")
def models(tiny_models, tmp_path_factory) -> dict[str, str]:
    """Tiny folders by kind: a bare encoder, BERT with its MLM and NSP heads, QA, GPT-2, and
    a token classifier (labels O, B-LOC, I-LOC)."""
    tok = tm.save_bert_head(tmp_path_factory.mktemp("links") / "tok", tf.BertForTokenClassification,
                            id2label={0: "O", 1: "B-LOC", 2: "I-LOC"})
    return {**{k: tiny_models[k] for k in ("bert-bare", "bert-nsp", "bert-qa", "gpt2")}, "tok": str(tok)}


# --- Home and the lessons -----------------------------------------------------------------


def test_home_link_restores_its_controls_and_a_lesson_opens_its_tab(server, page, models):
    view = View("", {"model": [models["bert-bare"]], "text": "the cat sat", "pair": "the dog sat"},
                {"ex_on_Home": "true"},
                boxes={"w_text": "the cat sat", "w_text_pair_on": True, "w_text_pair": "the dog sat"})
    round_trip(page, server, view)
    # A lesson link carries a bound control: Few-shot GPT opens the Next token page on its tab.
    page.get_by_role("link", name="Few-shot GPT").click()
    page.wait_for_url("**/Next_token**", timeout=60_000)
    drawn(page, ["nt_preset"], must=True)
    settle(page)
    drawn(page, ["nt_view"])
    assert read(page, "nt_view") == "Few-shot lab"
    assert address(page)["nt_view"] == ["Few-shot lab"] and address(page)["model"] == [SMOLLM]
    no_errors(page)


# --- Attention ------------------------------------------------------------------------------


def attention_view(models) -> View:
    bert, gpt2 = models["bert-bare"], models["gpt2"]
    bound = {"att_model": gpt2, "ex_on_Attention": "true"}
    # "the cat sat": 3 words once merged, so the line view's k is keyed _3; 2 heads fit.
    for key, tab in ((bert, "One head"), (gpt2, "Mean & rollout")):
        bound |= {f"att_layer_{key}": "0", f"att_head_{key}": "1", f"att_sinks_{key}": "true",
                  f"att_merge_{key}": "true", f"att_view_{key}": tab, f"att_mv_heads_{key}_2": ["1"],
                  f"att_k_{key}_3": "4", f"att_stat_{key}": "Attention to self"}
    return View("Attention", {"model": [bert, gpt2], "text": "the cat sat"}, bound, boxes={"w_text": "the cat sat"})


def test_attention_link_round_trips_and_a_tab_click_is_kept(server, page, models):
    view = attention_view(models)
    round_trip(page, server, view, fresh=True)
    gpt2 = models["gpt2"]
    tabs = page.locator(f".st-key-att_view_{re.sub(r'[^A-Za-z0-9_-]', '-', gpt2)}")
    rerun(page, lambda: tabs.get_by_role("tab", name="bertviz neuron view", exact=True).click(), TIMEOUT)
    page.wait_for_function("location.search.includes('neuron')", timeout=60_000)
    settle(page)
    assert address(page)[f"att_view_{gpt2}"] == ["bertviz neuron view"]
    assert read(page, f"att_view_{gpt2}") == "bertviz neuron view"


# --- Polysemy lab ---------------------------------------------------------------------------


def test_polysemy_lab_link_round_trips_and_a_tab_click_is_kept(server, page, models):
    bert, gpt2 = models["bert-bare"], models["gpt2"]
    view = View(
        "Polysemy_lab",
        {"model": [bert, gpt2], "preset": OWN_SENTENCES, "target": "bank", "sentences": LAB_SENTENCES},
        {"ex_on_Polysemy lab": "true", "lab_which": "first in each sentence", "lab_pooling": "last",
         "lab_projection": "t-SNE", "lab_seed": "7", "lab_depth": "0.25", "lab_cosine_model": gpt2,
         "lab_why_model": gpt2, "lab_why_occ": "3. [river] the river bank was wet ."},
        boxes={"lab_preset": OWN_SENTENCES, "lab_target": "bank", "lab_text": LAB_SENTENCES},
    )
    round_trip(page, server, view, fresh=True)
    # Back to the first model's tab, the default: its parameter leaves the address.
    rerun(page, lambda: page.locator(".st-key-lab_cosine_model").get_by_role("tab", name=bert, exact=True).click(),
          TIMEOUT)
    page.wait_for_function("!location.search.includes('lab_cosine_model')", timeout=60_000)
    settle(page)
    assert read(page, "lab_cosine_model") == bert
    assert address(page)["lab_projection"] == ["t-SNE"]
    no_errors(page)


# --- Contextuality ----------------------------------------------------------------------------


def test_contextuality_link_round_trips_its_tab_after_run(server, page, models):
    text = "the cat sat .\nthe dog sat .\nthe cat ran ."
    view = View("Contextuality", {"model": [models["bert-bare"]]},
                {"ex_on_Contextuality": "true", "cx_source": "My own sentences", "cx_text": text, "cx_n": "2",
                 "cx_pooling": "first", "cx_view": "Minus the anisotropy baseline"},
                later=("cx_view",))
    round_trip(page, server, view)
    # The charts (and their tabs) wait for Run: the tab the link named opens then.
    rerun(page, lambda: page.get_by_role("button", name="Run", exact=True).click(), TIMEOUT)
    drawn(page, ["cx_view"], must=True)
    settle(page)
    assert read(page, "cx_view") == "Minus the anisotropy baseline"
    check_restored(page, view)


# --- Masked LM: one link per lazy tab -------------------------------------------------------


def mlm_views(models) -> dict[str, View]:
    model = {"model": [models["bert-nsp"]]}
    why = {"mlm_view": "Why?", "mlm_why_method": GRAD_X_INPUT, "mlm_why_baseline": PAD, "mlm_why_steps": "8",
           "mlm_why_ko_kind": LAYER_HEADS, "mlm_why_ko_layer": "1", "mlm_why_ko_head": "1"}
    return {
        "fill": View("Masked_LM", {**model, "text": "the cat sat on the mat", "pair": "the dog sat"},
                     {"mlm_top_k": "3", "mlm_mode": "Pick a word to mask", "mlm_whole_word": "true",
                      "mlm_word": "2: sat"},
                     boxes={"mlm_text": "the cat sat on the mat", "mlm_text_pair": "the dog sat"}),
        "lens": View("Masked_LM", {**model, "text": MASKED},
                     {"w_dtype": BFLOAT16, "mlm_top_k": "3", "mlm_view": "Logit lens", "mlm_lens_value": OWN_TOP}),
        "corruption": View("Masked_LM", {**model, "text": MASKED},
                           {"mlm_top_k": "3", "mlm_view": "80/10/10 corruption", "mlm_corrupt": "the dog sat on the mat",
                            "mlm_seed": "5", "mlm_rate": "0.3"}, shown={"mlm_rate": "0.30"}),
        "why-prediction": View("Masked_LM", {**model, "text": MASKED},
                               {"mlm_top_k": "3", "mlm_why_target_mode": TYPED, "mlm_why_token": "paris",
                                "mlm_why_contrast": "city", **why}),
        "why-nsp": View("Masked_LM", {**model, "text": "the man sat .", "pair": "the cat sat ."},
                        {"mlm_top_k": "3", "mlm_why_kind": NSP_KIND, "mlm_why_nsp": NOT_NEXT, **why}),
    }


@pytest.mark.parametrize("name", ["fill", "lens", "corruption", "why-prediction", "why-nsp"])
def test_masked_lm_link_round_trips(server, page, models, name):
    round_trip(page, server, mlm_views(models)[name])


# --- ELMo ----------------------------------------------------------------------------------


def test_elmo_link_round_trips_and_a_mix_preset_survives_the_copied_address(server, page, models):
    other = models["bert-bare"]
    label = f"{Path(other).name} (folder)"  # the comparison picker names a local folder so
    sentences = "the bank sat .\nthe river bank .\nthe cat sat ."
    mix = f"mix_{ELMO}"
    view = View("ELMo", {"model": [ELMO, other], "sentences": sentences},
                {"ex_on_ELMo": "true", "elmo_compare": label, "elmo_pooling": "last",
                 f"{mix}_s0": "-5", f"{mix}_s1": "1.5", f"{mix}_s2": "-0.5", f"{mix}_gamma": "2.5",
                 "elmo_sentence": "2: the river bank .", "elmo_view": f"{other} (same mix)"},
                boxes={"elmo_text": sentences},
                shown={f"{mix}_s0": "-5.00", f"{mix}_s1": "1.50", f"{mix}_s2": "-0.50", f"{mix}_gamma": "2.50"})
    round_trip(page, server, view, fresh=True)
    # A preset writes the sliders (s = -5, -5, 5; γ = 1): the copied address keeps all of them
    # (a slider's URL value equal to its minimum was dropped, and came back as 0).
    rerun(page, lambda: page.get_by_role("tab", name=ELMO, exact=True).click(), TIMEOUT)
    rerun(page, lambda: page.get_by_role("button", name="top layer only", exact=True).click(), TIMEOUT)
    settle(page)
    preset = {f"{mix}_s0": "-5.00", f"{mix}_s1": "-5.00", f"{mix}_s2": "5.00", f"{mix}_gamma": "1.00",
              "elmo_compare": label, "elmo_view": ELMO}
    assert {k: read(page, k) for k in preset} == preset
    with copied(page, f"{mix}_gamma", preset) as reopened:
        assert {k: read(reopened, k) for k in preset} == preset
        no_errors(reopened)


# --- Next token: one link per lazy tab ------------------------------------------------------


def next_token_views(models) -> dict[str, View]:
    carried = {"model": [models["gpt2"]], "text": "the capital of france is"}
    return {
        "generate": View("Next_token", carried,
                         {"ex_on_Next token": "true", "nt_top_k": "4", "nt_view": "Generate", "nt_temperature": "1.2",
                          "nt_sample_top_k": "7", "nt_top_p": "0.5", "nt_max_new": "5", "nt_seed": "3"},
                         boxes={"nt_text": "the capital of france is"},
                         shown={"nt_temperature": "1.20", "nt_top_p": "0.50"}),
        "lens": View("Next_token", carried, {"nt_top_k": "4", "nt_view": "Logit lens", "nt_lens_value": OWN_TOP}),
        "few-shot": View("Next_token", carried, {"nt_top_k": "4", "nt_view": "Few-shot lab",
                                                 "nt_preset": "Country → capital"}),
        # The tiny GPT-2 has no [MASK] or [PAD]: its only baseline is zero vectors.
        "why": View("Next_token", carried,
                    {"nt_top_k": "4", "nt_view": "Why?", "nt_why_target_mode": TYPED, "nt_why_token": "Paris",
                     "nt_why_contrast": "cat", "nt_why_method": OCCLUSION, "nt_why_steps": "16",
                     "nt_why_ko_kind": MLP, "nt_why_ko_layer": "1", "nt_why_ko_head": "1"}),
    }


@pytest.mark.parametrize("name", ["generate", "lens", "few-shot", "why"])
def test_next_token_link_round_trips(server, page, models, name):
    round_trip(page, server, next_token_views(models)[name])


def test_next_token_tab_click_writes_the_address(server, page, models):
    view = next_token_views(models)["lens"]
    open_url(page, view.url(server), "nt_lens_value")
    rerun(page, lambda: page.locator(".st-key-nt_view").get_by_role("tab", name="Surprisal", exact=True).click(), TIMEOUT)
    page.wait_for_function("location.search.includes('nt_view=Surprisal')", timeout=60_000)
    settle(page)
    assert read(page, "nt_view") == "Surprisal"
    assert address(page)["nt_top_k"] == ["4"]
    no_errors(page)


# --- Question answering -------------------------------------------------------------------


def qa_view(models, **bound) -> View:
    return View("Question_answering", {"model": [models["bert-qa"]], "question": QA_QUESTION, "context": QA_CONTEXT},
                {"qa_top_k": "5", "qa_max_len": "10", "qa_stride": "8", "qa_window": "40", **bound},
                boxes={"qa_question": QA_QUESTION, "qa_context": QA_CONTEXT})


def test_question_answering_link_round_trips_the_window_shown(server, page, models):
    # The window selectbox defaults to the best answer's window, which the model decides:
    # read it from a first link, then link to another window.
    open_url(page, qa_view(models).url(server), "qa_window_shown")
    best = read(page, "qa_window_shown")
    other = "window 1" if best == "window 0" else "window 0"
    round_trip(page, server, qa_view(models, qa_window_shown=other), fresh=True)


def test_question_answering_why_link_round_trips_and_a_moved_slider_is_kept(server, page, models):
    round_trip(page, server, qa_view(
        models, qa_view="Why?", qa_why_qa_part="its start", qa_why_method=GRAD_X_INPUT, qa_why_baseline=ZERO,
        qa_why_steps="8", qa_why_ko_kind=LAYER_HEADS, qa_why_ko_layer="1", qa_why_ko_head="1"))
    page.locator(".st-key-qa_top_k").get_by_role("slider").focus()
    rerun(page, lambda: page.keyboard.press("ArrowRight"), TIMEOUT)
    page.wait_for_function("location.search.includes('qa_top_k=6')", timeout=60_000)
    settle(page)
    assert read(page, "qa_top_k") == "6"
    assert address(page)["qa_view"] == ["Why?"] and address(page)["qa_why_qa_part"] == ["its start"]
    no_errors(page)


# --- Why? ----------------------------------------------------------------------------------


def why_views(models) -> dict[str, View]:
    ig = {"why_method": OCCLUSION, "why_baseline": PAD, "why_steps": "16", "why_ko_kind": LAYER_HEADS,
          "why_ko_layer": "1", "why_ko_head": "1"}
    return {
        "prediction": View("Why", {"model": [models["bert-nsp"]], "text": MASKED},
                           {"ex_on_Why?": "true", "why_target_mode": TYPED, "why_token": "paris",
                            "why_contrast": "city", **ig}, boxes={"why_text": MASKED}),
        "nsp": View("Why", {"model": [models["bert-nsp"]], "text": "the man sat .", "pair": "the cat sat ."},
                    {"why_kind": NSP_KIND, "why_nsp": NOT_NEXT, **ig},
                    boxes={"why_text": "the man sat .", "why_pair": "the cat sat ."}),
        "answer": View("Why", {"model": [models["bert-qa"]], "question": QA_QUESTION, "context": "the cat sat on the mat ."},
                       {"why_qa_part": "its end", **ig},
                       boxes={"why_text": QA_QUESTION, "why_pair": "the cat sat on the mat ."}),
        # [CLS] the cat sat in paris . [SEP]: token 5 is "paris".
        "token-class": View("Why", {"model": [models["tok"]], "text": "the cat sat in paris ."},
                            {"why_label": "B-LOC", "why_label_contrast": "I-LOC", "why_label_token": "5: paris", **ig}),
    }


@pytest.mark.parametrize("name", ["prediction", "nsp", "answer", "token-class"])
def test_why_link_round_trips(server, page, models, name):
    round_trip(page, server, why_views(models)[name])


# --- Exercises ------------------------------------------------------------------------------


def test_exercise_link_opens_its_exercise(server, page):
    view = View("Exercises", {"ex": "elmo"}, {}, boxes={"ex_pick": "ELMo: elmo"})
    open_url(page, view.url(server), "ex_pick")
    page.get_by_text("How many vectors does ELMo give").wait_for(timeout=TIMEOUT)
    check_restored(page, view)
