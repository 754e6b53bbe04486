"""The ELMo page under Streamlit's AppTest: the tiny ELMo, the mix sliders, an offline real ELMo."""

import sys
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[1] / "app"
PAGE = str(APP / "pages" / "5_ELMo.py")
sys.path.insert(0, str(APP))  # `streamlit run app/Home.py` puts app/ on the path for `from ui import ...`
TWO_SENTENCES = "The bank was closed.\nWe sat on the bank of the river."
WEIGHTS = "weight softmax(s)_j"


def _page(models, text=TWO_SENTENCES, extra=()):
    at = AppTest.from_file(PAGE, default_timeout=180)
    at.session_state["ctx_models"] = list(models)
    at.session_state["ctx_extra_models"] = list(extra)
    at.run()
    at.text_area(key="elmo_text").set_value(text).run()
    return at


def _frame(at, column):
    return next(df.value for df in at.dataframe if column in df.value.columns)


def test_tiny_elmo_two_sentences_and_the_mix_sliders():
    at = _page(["elmo-tiny-test"])
    assert not at.exception and not at.error
    assert any("tiny test model with random weights" in w.value for w in at.warning)
    np.testing.assert_allclose(_frame(at, WEIGHTS)[WEIGHTS], [1 / 3] * 3)
    cross = _frame(at, "mix")
    assert list(cross.columns) == ["0", "1", "2", "mix"]
    bank = cross.loc["1: bank ↔ sentence 2, 4: bank"]
    assert bank["0"] == pytest.approx(1.0, abs=1e-5)  # layer 0 is context-free
    assert bank["2"] < 0.999  # the LSTM layers see the sentence

    at.slider(key="mix_elmo-tiny-test_s2").set_value(3.0).run()
    at.slider(key="mix_elmo-tiny-test_gamma").set_value(2.0).run()
    assert not at.exception
    table = _frame(at, WEIGHTS)
    expected = np.exp([0.0, 0.0, 3.0]) / np.exp([0.0, 0.0, 3.0]).sum()
    np.testing.assert_allclose(table[WEIGHTS], expected, rtol=1e-6)
    np.testing.assert_allclose(table["γ · weight"], 2.0 * expected, rtol=1e-6)
    assert _frame(at, "mix").loc["1: bank ↔ sentence 2, 4: bank", "mix"] != pytest.approx(bank["mix"])

    at.button(key="mix_elmo-tiny-test_preset_layer 0 only (no context)").click().run()
    mixed = _frame(at, "mix").loc["1: bank ↔ sentence 2, 4: bank", "mix"]
    assert mixed == pytest.approx(1.0, abs=1e-3)  # the mix is then (almost) layer 0


def test_no_repeated_words_is_said():
    at = _page(["elmo-tiny-test"], "Dogs bark.\nCats purr.")
    assert not at.exception and not at.error
    assert any("No repeated words" in i.value for i in at.info)


def test_the_same_mix_on_a_bert_model(tiny_models):
    folder = tiny_models["bert-mlm"]
    at = _page(["elmo-tiny-test"], extra=[folder])
    at.sidebar.selectbox(key="elmo_compare").set_value(folder).run()
    assert not at.exception and not at.error
    assert [t.label for t in at.tabs] == ["elmo-tiny-test", f"{folder} (same mix)"]
    assert any("transformer layers" in c.value for c in at.caption)
    assert len([df for df in at.dataframe if "mix" in df.value.columns]) == 2  # both share "bank"

    at.slider(key="mix_elmo-tiny-test_s0").set_value(2.0).run()  # ELMo's sliders drive both tabs
    assert not at.exception
    assert not [k for k in at.slider if k.key.startswith(f"mix_{folder}")]
    elmo_w, bert_w = [df.value[WEIGHTS] for df in at.dataframe if WEIGHTS in df.value.columns]
    np.testing.assert_allclose(elmo_w, np.exp([2.0, 0, 0]) / np.exp([2.0, 0, 0]).sum())
    np.testing.assert_allclose(bert_w, elmo_w)  # three layers each: the same s


def test_unavailable_real_elmo_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CTXLENS_CACHE", str(tmp_path))
    at = _page(["elmo-small"])
    assert not at.exception
    assert any("elmo-small" in e.value and "offline" in e.value for e in at.error)


def _subject(at):
    """The number of the sentence the page's comparison is about."""
    heading = next(h.value for h in at.subheader if "other sentences" in h.value)
    return int(heading.rsplit("sentence ", 1)[1].rstrip(")"))


def test_sentence_picker_follows_edited_sentences():
    at = _page(["elmo-tiny-test"], "A bank.\nThe bank.\nMy bank.")
    at.selectbox(key="elmo_sentence").select_index(1).run()
    held = at.selectbox(key="elmo_sentence").proto.options[1]  # the label the browser shows

    def shown():
        """The browser keeps its label unless the server sends one with the element."""
        proto = at.selectbox(key="elmo_sentence").proto
        return proto.raw_value if proto.set_value else held

    at.text_area(key="elmo_text").set_value("A bank.\nThe big bank.\nMy bank.").run()  # edit it
    assert not at.exception and not at.error
    assert at.selectbox(key="elmo_sentence").options == ["1: A bank.", "2: The big bank.", "3: My bank."]
    assert shown() == "2: The big bank." and _subject(at) == 2
    held = shown()

    at.text_area(key="elmo_text").set_value("New bank.\nA bank.\nThe big bank.\nMy bank.").run()
    assert shown() == "3: The big bank." and _subject(at) == 3  # a line added above it
    held = shown()

    at.text_area(key="elmo_text").set_value("One bank.\nTwo banks.").run()  # fewer lines
    assert not at.exception and not at.error
    assert shown() == "2: Two banks." and _subject(at) == 2


def test_sentence_picker_after_the_box_was_emptied():
    text = "A bank.\nThe bank.\nMy bank."
    at = _page(["elmo-tiny-test"], text)
    at.selectbox(key="elmo_sentence").select_index(2).run()
    at.text_area(key="elmo_text").set_value("").run()  # the page stops: no picker drawn
    assert not at.exception and not [s for s in at.selectbox if s.key == "elmo_sentence"]
    at.text_area(key="elmo_text").set_value(text).run()
    assert not at.exception and not at.error
    # The browser draws the picker afresh: it shows what the server sends, else the first.
    proto = at.selectbox(key="elmo_sentence").proto
    shown = proto.raw_value if proto.set_value else proto.options[proto.default]
    assert shown == "3: My bank." and _subject(at) == 3
