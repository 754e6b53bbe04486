"""The lessons on Home: five links, each opening its page on a prepared example.

Each target page is run with the query parameters its Home link sets (read from the link
itself); only `model` is swapped for a tiny model where the real one would be slow or absent.
"""

from pathlib import Path
from urllib.parse import parse_qs

import pytest
from streamlit.testing.v1 import AppTest

from apptest import set_bound

from ctxlens.analysis.polysemy import load_presets

APP = Path(__file__).resolve().parents[1] / "app"


@pytest.fixture(scope="module")
def lessons() -> dict[str, tuple[str, dict[str, list[str]]]]:
    """Home's lesson links: label -> (page name, query parameters)."""
    at = AppTest.from_file(str(APP / "Home.py"), default_timeout=180)
    at.session_state["ctx_models"] = []  # the links come before the model outputs
    at.run()
    assert not at.exception
    return {link.proto.label: (link.proto.page, parse_qs(link.proto.query_string))
            for link in at.get("page_link")}


def _open(lessons, label, page_file, **override):
    page, params = lessons[label]
    assert page_file.endswith(f"_{page}.py")
    at = AppTest.from_file(str(APP / "pages" / page_file), default_timeout=180)
    for name, values in {**params, **override}.items():
        at.query_params[name] = values
    return at.run(), params


def _ok(at):
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def test_home_shows_five_lessons(lessons):
    # Offline, the BERT lesson is followed by what runs instead (test_app_classroom.py).
    lessons = {label: v for label, v in lessons.items() if not label.startswith("What does GPT predict?")}
    assert list(lessons) == ["What does BERT predict?", "Two banks", "Who attends to whom?",
                             "Few-shot GPT", "ELMo's three layers"]
    assert [page for page, _ in lessons.values()] == ["Masked_LM", "Polysemy_lab", "Attention", "Next_token", "ELMo"]


def test_bert_lesson_fills_its_mask(lessons, tiny_models):
    folder = tiny_models["bert-mlm"]
    at, params = _open(lessons, "What does BERT predict?", "4_Masked_LM.py", model=[folder])
    _ok(at)
    assert params["model"] == ["bert-base-uncased"]
    assert "[MASK]" in params["text"][0]
    assert at.text_area(key="mlm_text").value == params["text"][0]
    assert any(params["text"][0] in c.value for c in at.main.code)  # what the model read


def test_bert_lesson_picks_bert(lessons):
    from ui.state import unavailable

    at, _ = _open(lessons, "What does BERT predict?", "4_Masked_LM.py")
    assert not at.exception
    picker = next(s for s in at.sidebar.selectbox if s.label == "Masked language model")
    if unavailable("bert-base-uncased"):  # offline, not downloaded: the session's models stay
        assert any("bert-base-uncased" in w.value for w in at.warning)
    else:
        assert picker.value == "bert-base-uncased"  # offered for download when online


def test_two_banks_lesson_selects_the_bank_preset_once(lessons, tiny_models):
    folder = tiny_models["bert-bare"]
    at = AppTest.from_file(str(APP / "pages" / "2_Polysemy_lab.py"), default_timeout=180)
    at.session_state["ctx_models"] = [folder]
    at.session_state["ctx_extra_models"] = [folder]
    at.run()
    at.selectbox(key="lab_preset").set_value("spring").run()
    assert at.text_input(key="lab_target").value == "spring"

    _, params = lessons["Two banks"]
    at.query_params.clear()  # the lesson link arrives: a new address
    at.query_params["preset"] = params["preset"]
    at.run()
    _ok(at)
    bank = load_presets()["bank"]
    assert at.selectbox(key="lab_preset").value == "bank"
    assert at.text_input(key="lab_target").value == bank.target
    assert at.text_area(key="lab_text").value == bank.as_text()

    at.selectbox(key="lab_preset").set_value("bat").run()  # the user's later choice stays
    assert at.selectbox(key="lab_preset").value == "bat"
    assert at.text_input(key="lab_target").value == "bat"


def test_attention_lesson_opens_on_its_sentence(lessons, tiny_models):
    folder = tiny_models["bert-bare"]
    at, params = _open(lessons, "Who attends to whom?", "1_Attention.py", model=[folder])
    _ok(at)
    assert params["model"] == ["all-MiniLM-L6-v2", "SmolLM2-135M-Instruct"]
    assert at.text_area(key="w_text").value == "The animal didn't cross the street because it was too tired."


def test_few_shot_lesson_opens_the_few_shot_lab(lessons, tiny_models):
    folder = tiny_models["gpt2"]
    at, params = _open(lessons, "Few-shot GPT", "6_Next_token.py", model=[folder])
    assert not at.exception
    assert params["model"] == ["SmolLM2-135M-Instruct"]
    assert at.session_state["nt_view"] == "Few-shot lab"
    assert at.selectbox(key="nt_preset").value == "antonyms"  # only the open section runs

    set_bound(at, "nt_view", "Surprisal")  # the user's later choice stays
    assert not at.exception
    assert at.session_state["nt_view"] == "Surprisal"
    assert "nt_preset" not in [s.key for s in at.selectbox]


def test_elmo_lesson_compares_a_shared_word(lessons):
    at, params = _open(lessons, "ELMo's three layers", "5_ELMo.py", model=["elmo-tiny-test"])
    _ok(at)
    sentences = params["sentences"][0]
    assert len(sentences.splitlines()) == 3
    assert at.text_area(key="elmo_text").value == sentences
    cross = next(df.value for df in at.dataframe if "mix" in df.value.columns)
    assert any("bank ↔ sentence 2" in row for row in cross.index)

    at.text_area(key="elmo_text").set_value("Dogs bark.\nCats purr.").run()  # the user's text stays
    assert at.text_area(key="elmo_text").value == "Dogs bark.\nCats purr."
