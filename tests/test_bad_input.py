"""Whatever a student types, every page answers with a message or a result, never a crash,
and keeps working for the next input."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[1] / "app"

BAD_TEXTS = {
    "empty": "",
    "whitespace": "  \n\t  ",
    "10k chars": "The bank by the river. " * 435,
    "emoji": "😀🎉👍🏽 bank 🏦",
    "cjk": "北京的银行在河边。",
    "rtl": "البنك على ضفة النهر. שלום",
    "control": "bank\x00\x07\x1b[31m river\x7f",
    "html": "<script>alert('x')</script><img src=x onerror=alert(1)> & \"bank\"",
    "only masks": "[MASK] [MASK] [MASK]",
}

# page file, the key of its main text box, the model kind from tests/tiny_models.py
PAGES = [
    ("Home.py", "w_text", "gpt2"),
    ("pages/1_Attention.py", "w_text", "bert-mlm"),
    ("pages/4_Masked_LM.py", "mlm_text", "bert-mlm"),
    ("pages/6_Next_token.py", "nt_text", "gpt2"),
    ("pages/5_ELMo.py", "elmo_text", None),
    ("pages/2_Polysemy_lab.py", "lab_text", "bert-mlm"),
    ("pages/7_Question_answering.py", "qa_context", "bert-qa"),
]


def _messages(at) -> list[str]:
    return [m.value for kind in (at.error, at.warning, at.info) for m in kind]


@pytest.mark.parametrize("page, box, kind", PAGES, ids=[p[0] for p in PAGES])
def test_bad_inputs_give_messages_and_the_page_recovers(tiny_models, page, box, kind):
    model = tiny_models[kind] if kind else "elmo-tiny-test"
    at = AppTest.from_file(str(APP / page), default_timeout=120)
    at.session_state["ctx_models"] = [model]
    at.session_state["ctx_extra_models"] = [model] if kind else []
    at.run()
    assert not at.exception
    good = at.text_area(key=box).value
    for name, text in BAD_TEXTS.items():
        at.text_area(key=box).set_value(text).run()
        assert not at.exception, f"{page} crashed on {name}: {at.exception}"
        if not text.strip():
            assert _messages(at), f"{page} said nothing about {name} input"
    at.text_area(key=box).set_value(good).run()  # the next ordinary input works again
    assert not at.exception and not at.error


def test_unknown_model_id_is_a_message_on_every_page(tiny_models):
    for page, _, _ in PAGES[:4]:
        at = AppTest.from_file(str(APP / page), default_timeout=120)
        at.session_state["ctx_models"] = ["no-such-org/no-such-model"]
        at.session_state["ctx_extra_models"] = ["no-such-org/no-such-model"]
        at.run()
        assert not at.exception
        assert any("no-such-org/no-such-model" in m for m in _messages(at)), page


def test_truncated_weights_are_a_message_and_the_app_keeps_working(tiny_models, tmp_path):
    import shutil

    broken = tmp_path / "broken-bert"
    shutil.copytree(tiny_models["bert-mlm"], broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:2000])
    good = tiny_models["gpt2"]
    at = AppTest.from_file(str(APP / "Home.py"), default_timeout=120)
    at.session_state["ctx_models"] = [str(broken), good]
    at.session_state["ctx_extra_models"] = [str(broken), good]
    at.run()
    assert not at.exception
    assert any("corrupt or truncated" in m for m in _messages(at))
    assert any("token" in df.value.columns for df in at.dataframe)  # the other model still works


def test_a_download_that_fails_is_a_message(monkeypatch, tmp_path):
    """The network failing when a download starts (the hub unreachable or refusing)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: connection refused
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("CTXLENS_CACHE", str(tmp_path / "cache"))
    at = AppTest.from_file(str(APP / "Home.py"), default_timeout=120)
    at.session_state["ctx_models"] = ["distilgpt2"]
    at.run()
    assert not at.exception
    assert any("distilgpt2" in m and "no network" in m for m in _messages(at))


def test_truncated_elmo_hdf5_is_a_message_in_the_page(monkeypatch, tmp_path):
    from ctxlens.models.elmo_catalog import elmo_entry, elmo_paths, tiny_elmo_paths

    monkeypatch.setenv("CTXLENS_CACHE", str(tmp_path))
    options, weights = elmo_paths(elmo_entry("elmo-small"), tmp_path / "elmo")
    options.parent.mkdir(parents=True)
    tiny_options, tiny_weights = tiny_elmo_paths()
    options.write_bytes(tiny_options.read_bytes())
    weights.write_bytes(tiny_weights.read_bytes()[:4096])  # a download cut short
    at = AppTest.from_file(str(APP / "pages/5_ELMo.py"), default_timeout=120)
    at.session_state["ctx_models"] = ["elmo-small"]
    at.run()
    assert not at.exception
    assert any("elmo-small" in m and ("corrupt" in m or "truncated" in m) for m in _messages(at)), _messages(at)
