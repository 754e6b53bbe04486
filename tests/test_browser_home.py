"""The app in a real browser: it starts, Home shows the token table and the figure."""

import pytest

from browser import browser_page, streamlit_server, type_sentence

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_home_shows_tokens_and_figure_for_a_typed_sentence():
    with streamlit_server() as url, browser_page() as page:
        page.goto(url, timeout=60_000)
        type_sentence(page, "A bank by the river 😀 <b>bold?</b>")
        page.wait_for_function(
            "document.querySelectorAll('.js-plotly-plot .main-svg').length >= 2", timeout=120_000
        )
        # the status panel's table sits in a closed expander: wait for a visible token table
        page.locator('[data-testid="stDataFrame"]:visible').first.wait_for(timeout=60_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        # the typed HTML is shown as text in the figure, never rendered as markup
        ticks = [t.text_content() for t in page.locator(".js-plotly-plot .xtick text").all()]
        assert "<" in ticks and "bold" in ticks
        assert page.locator(".js-plotly-plot .xtick tspan[style*='bold']").count() == 0
        assert page.foreign_requests == []
        assert page.page_errors == []
