"""The Why page in a real browser, on the embedded defaults: SmolLM2 explains its next token
for the default text with the shaded sentence and the word bars, and nothing breaks."""

import pytest

from browser import browser_page, streamlit_server, wait_for_idle

pytestmark = [pytest.mark.slow, pytest.mark.browser]
PROBE = "Failed to load resource: the server responded with a status of 404"  # Streamlit's page probes


def test_why_page_shades_the_default_text_and_draws_the_bars():
    with streamlit_server() as url, browser_page() as page:
        page.goto(f"{url}/Why", timeout=60_000)
        page.wait_for_selector('[data-testid="stMain"] h1', timeout=180_000)
        wait_for_idle(page, 300_000)
        shaded = page.locator(".ctx-shaded").first
        shaded.wait_for(timeout=300_000)
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0",
                               timeout=180_000)
        assert "France" in shaded.inner_text()
        assert page.locator(".ctx-shaded span[title^='France:']").count() == 1
        assert page.locator(".js-plotly-plot .xtick text", has_text="France").count() == 1
        main = page.locator('[data-testid="stMain"]').inner_text()
        assert "Paris" in main and "Sum of the attributions" in main
        assert page.locator('[data-testid="stException"]').count() == 0
        assert "Traceback" not in main
        assert page.foreign_requests == [] and page.page_errors == []
        assert [e for e in page.console_errors if not e.startswith(PROBE)] == []
