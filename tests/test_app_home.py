"""Home under Streamlit's AppTest: a tiny model, the embedded defaults, bad input."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

HOME = str(Path(__file__).resolve().parents[1] / "app" / "Home.py")


def _home(models, extra=()):
    at = AppTest.from_file(HOME, default_timeout=180)
    at.session_state["ctx_models"] = list(models)
    at.session_state["ctx_extra_models"] = list(extra)
    return at


def test_home_with_a_tiny_model(tiny_models):
    folder = tiny_models["bert-mlm"]
    at = _home([folder], [folder]).run()
    assert not at.exception and not at.error
    tables = [df.value for df in at.dataframe]
    token_table = next(t for t in tables if "token" in t.columns)
    assert token_table["token"].tolist()[0] == "[CLS]"
    assert "bank" in token_table["word"].tolist()


def test_home_with_the_default_models():
    at = _home(["all-MiniLM-L6-v2", "SmolLM2-135M-Instruct"]).run()
    assert not at.exception and not at.error
    token_tables = [df.value for df in at.dataframe if "token" in df.value.columns]
    assert len(token_tables) == 2
    assert token_tables[0]["token"].iloc[0] == "[CLS]"  # WordPiece next to byte-level BPE
    assert any(t.startswith("␣") for t in token_tables[1]["token"])


@pytest.mark.parametrize(
    "text",
    ["", "   \n ", " ".join(["word"] * 5000), "😀🎉 emoji only", "北京欢迎你", "<script>alert('x')</script>"],
)
def test_bad_input_gives_a_message_or_a_result(tiny_models, text):
    folder = tiny_models["gpt2"]
    at = _home([folder], [folder]).run()
    at.text_area[0].set_value(text).run()
    assert not at.exception and not at.error
    if not text.strip():
        assert any("empty" in w.value for w in at.warning)
    elif len(text) > 1000:
        assert any("only the first" in w.value for w in at.warning)
    else:
        assert any("token" in df.value.columns for df in at.dataframe)


def test_unknown_model_is_a_message_not_a_crash():
    at = _home(["no-such/model-xyz"], ["no-such/model-xyz"]).run()
    assert not at.exception
    assert any("no-such/model-xyz" in e.value for e in at.error)


def test_url_query_reproduces_models_and_text(tiny_models):
    folder = tiny_models["bert-mlm"]
    at = AppTest.from_file(HOME, default_timeout=180)
    at.query_params["model"] = [folder]
    at.query_params["text"] = "the cat sat on the mat."
    at.run()
    assert not at.exception and not at.error
    assert at.text_area[0].value == "the cat sat on the mat."
    table = next(df.value for df in at.dataframe if "token" in df.value.columns)
    assert table["word"].tolist()[1:4] == ["the", "cat", "sat"]
    at.text_area[0].set_value("a dog sat.").run()
    assert at.query_params["text"] == "a dog sat."


def test_projector_mode_adds_large_font_styles(tiny_models):
    folder = tiny_models["bert-mlm"]
    at = _home([folder], [folder]).run()
    at.sidebar.toggle(key="w_projector").set_value(True).run()
    assert not at.exception
    assert any("font-size: 22px" in m.value for m in at.markdown)


def test_figures_download_under_a_meaningful_name_in_the_chosen_format(tiny_models):
    import json

    folder = tiny_models["bert-mlm"]
    at = _home([folder], [folder]).run()
    at.sidebar.radio(key="w_export_format").set_value("svg").run()
    assert not at.exception
    config = json.loads(at.get("plotly_chart")[0].proto.config)
    assert config["toImageButtonOptions"]["format"] == "svg"
    assert config["toImageButtonOptions"]["filename"].startswith("ctxlens_norms_")


def test_copy_link_shows_the_current_inputs(tiny_models):
    folder = tiny_models["bert-mlm"]
    at = _home([folder], [folder]).run()
    at.text_area[0].set_value("a cat sat.").run()
    links = [c.value for c in at.sidebar.code]
    assert any("text=a+cat+sat." in link for link in links)
