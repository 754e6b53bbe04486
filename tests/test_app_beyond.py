"""The Beyond BERT page under AppTest, offline on the embedded defaults: every section draws
or says which model it needs, and none raises. Each section's own behaviour is tested beside
its module (test_permutation, test_sentence_order, test_crosslingual, test_adapters,
test_shapes); here the page that mounts them."""

from pathlib import Path

import pytest

from apptest import charts, ok, open_page, set_bound

PAGE = str(Path(__file__).resolve().parents[1] / "app" / "pages" / "12_Beyond_BERT.py")
SECTIONS = ["XLNet: permutation LM", "NSP vs SOP", "Multilingual BERT", "Adapters", "Fine-tuning shapes"]


@pytest.fixture(scope="module")
def page(monkeypatch_module):
    return open_page(PAGE, ["all-MiniLM-L6-v2"])


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")  # no network here: the sections that need a download say so
        yield mp


def text(at) -> str:
    return "\n".join(m.value for m in [*at.markdown, *at.caption, *at.info, *at.warning])


def test_the_first_section_draws_xlnets_masks_without_a_model(page):
    ok(page)
    assert page.radio(key="bb_section").options == SECTIONS
    assert charts(page), "the four masks are drawn before any model loads"
    assert "xlnet\\-base\\-cased" in text(page) and "needs a download" in text(page)  # markdown-escaped name


@pytest.mark.parametrize("section, expected", [
    ("NSP vs SOP", "RoBERTa"),
    ("Multilingual BERT", "bert-base-multilingual-cased"),
    ("Adapters", "LoRA"),
    ("Fine-tuning shapes", "[CLS]"),
])
def test_each_section_draws_or_names_what_it_needs(page, section, expected):
    at = set_bound(page, "bb_section", section)
    ok(at)
    assert expected in text(at) or any(expected in str(t.value) for t in at.table) or any(
        expected in str(d.value) for d in at.dataframe), section
