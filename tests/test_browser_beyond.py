"""The Beyond BERT page in a real browser, offline on the embedded defaults: each section draws
or says which model it needs, the live LoRA fine-tune runs to its before/after accuracy, nothing
breaks and no request leaves localhost; one section in projector mode too."""

import pytest

from browser import browser_page, rerun, streamlit_server, wait_for_idle

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SECTIONS = {  # radio label → text each shows offline
    "XLNet: permutation LM": "XLNet content",
    "NSP vs SOP": "RoBERTa",
    "Multilingual BERT": "bert-base-multilingual-cased",
    "Adapters": "LoRA",
    "Fine-tuning shapes": "[CLS]",
}
PROBE = "Failed to load resource: the server responded with a status of 404"  # Streamlit's page probes


@pytest.fixture(scope="module")
def server():
    with streamlit_server({"HF_HUB_OFFLINE": "1"}) as url:
        yield url


def _open(page, url):
    page.goto(url, timeout=60_000)
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=120_000)
    wait_for_idle(page)


def _clean(page):
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.foreign_requests == [] and page.page_errors == []
    assert [e for e in page.console_errors if not e.startswith(PROBE)] == []


def test_every_section_draws_or_names_its_model(server):
    with browser_page() as page:
        _open(page, f"{server}/Beyond_BERT?model=all-MiniLM-L6-v2")
        for section, shown in SECTIONS.items():
            rerun(page, lambda: page.get_by_text(section, exact=True).click())
            page.get_by_text(shown).first.wait_for(timeout=60_000)
            _clean(page)


def test_the_lora_demo_trains_in_the_browser(server):
    with browser_page() as page:
        _open(page, f"{server}/Beyond_BERT?bb_section=Adapters&model=all-MiniLM-L6-v2")
        rerun(page, lambda: page.get_by_role("button", name="Train", exact=True).click(), timeout=300_000)
        page.get_by_text("Full fine-tuning would train").wait_for(timeout=60_000)
        assert page.locator(".js-plotly-plot .main-svg").count() >= 2  # the components and the loss
        _clean(page)


def test_the_masks_in_projector_mode(server):
    with browser_page() as page:
        _open(page, f"{server}/Beyond_BERT?model=all-MiniLM-L6-v2")
        rerun(page, lambda: page.get_by_text("Projector mode").click())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0",
                               timeout=120_000)
        _clean(page)
