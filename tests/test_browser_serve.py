"""The app on the classroom server (CTXLENS_SERVER), in a real browser: Home and Attention draw
from the server's models; with the server down a page says so, and recovers once it is back."""

from urllib.parse import urlencode

import pytest

from browser import browser_page, streamlit_server, type_sentence, wait_for_idle

pytestmark = [pytest.mark.slow, pytest.mark.browser]

FIGURE = ".js-plotly-plot .main-svg"
FAILED = '[data-testid="stException"]'
DOWN = "is not answering"


def figures(page, at_least: int) -> None:
    page.wait_for_function(f"document.querySelectorAll('{FIGURE}').length >= {at_least}", timeout=120_000)


def test_pages_draw_from_the_server_and_recover_when_it_comes_back(classroom_server, tiny_models):
    models = [tiny_models["bert-mlm"], tiny_models["gpt2"]]
    query = urlencode([("model", m) for m in models] + [("text", "The bank of the river was wet.")])
    with streamlit_server({"CTXLENS_SERVER": classroom_server.url}) as url, browser_page() as page:
        page.goto(f"{url}/?{query}", timeout=60_000)
        wait_for_idle(page)
        figures(page, 2)  # one per model
        page.goto(f"{url}/Attention?{query}", timeout=60_000)
        wait_for_idle(page)
        figures(page, 1)
        page.locator('[data-testid="stIFrame"]').first.wait_for(timeout=60_000)  # bertviz's view
        assert page.locator(FAILED).count() == 0

        classroom_server.stop()
        type_sentence(page, "A new sentence while the server is down.")
        page.get_by_text(DOWN).first.wait_for(timeout=60_000)
        assert page.locator(FAILED).count() == 0

        classroom_server.start()
        type_sentence(page, "The server is back for this sentence.")
        wait_for_idle(page)
        figures(page, 1)
        assert page.get_by_text(DOWN).count() == 0
        assert page.locator(FAILED).count() == 0
        assert page.foreign_requests == [] and page.page_errors == []
