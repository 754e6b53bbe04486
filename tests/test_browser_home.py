"""The app in a real browser: it starts, Home shows the token table and the figure."""

import pytest

from browser import browser_page, streamlit_server, type_sentence, wait_for_idle

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_home_shows_tokens_and_figure_for_a_typed_sentence():
    with streamlit_server() as url, browser_page() as page:
        page.goto(url, timeout=60_000)
        type_sentence(page, "A bank by the river 😀 <b>bold?</b>")
        page.wait_for_function(  # MiniLM, SmolLM2 and the ELMo test model
            "document.querySelectorAll('.js-plotly-plot .main-svg').length >= 3", timeout=120_000
        )
        wait_for_idle(page)
        # the status panel's table sits in a closed expander: wait for a visible token table
        page.locator('[data-testid="stDataFrame"]:visible').first.wait_for(timeout=60_000)
        assert page.locator('[data-testid="stException"]').count() == 0
        # the typed HTML is shown as text in the figure, never rendered as markup
        # read in one go: a figure that redraws between reads would leave a stale locator
        ticks = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot .xtick text')].map(t => t.textContent)")
        assert "<" in ticks and "bold" in ticks
        assert page.locator(".js-plotly-plot .xtick tspan[style*='bold']").count() == 0
        assert page.foreign_requests == []
        assert page.page_errors == []
