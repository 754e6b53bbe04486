"""Every page in a real browser, on the embedded defaults: it draws, nothing breaks, and
no request leaves localhost."""

import pytest

from browser import browser_page, streamlit_server, wait_for_idle

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PAGES = ["", "Attention", "Polysemy_lab", "Contextuality", "Masked_LM", "ELMo", "Next_token", "Question_answering",
         "Beyond_BERT"]
# Pages whose default input (embedded models, default text) draws plotly figures at once;
# the others wait for a button, or (offline) for a model that needs a download.
DRAWS_AT_ONCE = {"", "Attention", "ELMo", "Next_token", "Polysemy_lab", "Beyond_BERT"}  # XLNet's masks need no model
# Streamlit's client probes <page>/_stcore/... before the root path: harmless 404s.
PROBE = "Failed to load resource: the server responded with a status of 404"


def wait_until_idle(page, timeout_ms=180_000):
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=timeout_ms)  # every page has a title
    wait_for_idle(page, timeout_ms)


@pytest.fixture(scope="module")
def server():
    with streamlit_server() as url:
        yield url


@pytest.mark.parametrize("path", PAGES)
def test_page_draws_without_errors(server, path):
    with browser_page() as page:
        page.goto(f"{server}/{path}", timeout=60_000)
        wait_until_idle(page)
        if path in DRAWS_AT_ONCE:
            page.wait_for_function(
                "document.querySelectorAll('.js-plotly-plot .main-svg').length > 0", timeout=180_000
            )
        if path == "Attention":
            bertviz = page.frame_locator("iframe").first.locator("svg line, svg path")
            bertviz.first.wait_for(state="attached", timeout=60_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.locator('[data-testid="stMain"]').inner_text().strip()
        assert page.foreign_requests == []
        assert page.page_errors == []
        assert [e for e in page.console_errors if not e.startswith(PROBE)] == []


def test_a_lesson_link_opens_its_page_on_the_prepared_example(server):
    with browser_page() as page:
        page.goto(server, timeout=60_000)
        wait_until_idle(page)
        page.get_by_role("link", name="Two banks").click()
        page.wait_for_url("**/Polysemy_lab**", timeout=60_000)
        wait_until_idle(page)
        page.wait_for_function(
            "document.querySelectorAll('.js-plotly-plot .main-svg').length > 0", timeout=180_000
        )
        assert "preset=bank" in page.url
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.foreign_requests == [] and page.page_errors == []
