"""The Attention page in a real browser: bertviz draws offline inside its iframe, plotly draws."""

import pytest

from browser import browser_page, streamlit_server, type_sentence

pytestmark = [pytest.mark.slow, pytest.mark.browser]

HEAD_VIEW = 'iframe[title="bertviz head view of all-MiniLM-L6-v2"]'


def test_attention_page_draws_bertviz_and_plotly_offline():
    with streamlit_server() as url, browser_page() as page:
        page.goto(f"{url}/Attention", timeout=60_000)
        type_sentence(page, "The bank raised <b>rates</b> & the river rose.")

        # The head view of the first model (MiniLM, the first tab) draws one line per head
        # and token pair, plus a text element per token on both sides.
        view = page.frame_locator(HEAD_VIEW)
        view.locator("svg line").first.wait_for(state="attached", timeout=180_000)
        assert view.locator("svg line").count() > 100
        texts = [t for t in view.locator("svg text").all_text_contents() if t.strip()]
        # typed HTML arrives as the literal tokens "<", "b", ">", not as markup
        assert "<" in texts and "rates" in texts
        assert view.locator("svg b").count() == 0

        # The model view's 12 heads (970 px in bertviz) fit the column once its tab opens.
        page.get_by_role("tab", name="bertviz model view").first.click()
        model = page.frame_locator('iframe[title="bertviz model view of all-MiniLM-L6-v2"]').locator("body")
        model.locator("svg").first.wait_for(state="attached", timeout=60_000)
        page.wait_for_timeout(500)
        drawn, room = model.evaluate("b => [b.scrollWidth * parseFloat(b.style.zoom || 1), window.innerWidth]")
        assert 0 < drawn <= room + 1

        page.get_by_role("tab", name="One head").first.click()
        page.wait_for_function(
            "document.querySelectorAll('.js-plotly-plot .main-svg').length >= 1", timeout=120_000
        )
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.foreign_requests == []
        assert page.page_errors == []


def test_neuron_view_of_a_long_input_draws_the_picked_head():
    with streamlit_server() as url, browser_page() as page:
        page.goto(f"{url}/Attention", timeout=60_000)
        # About 160 MiniLM tokens: every head would be 6 x 12 x 160² > NEURON_FULL_CELLS.
        type_sentence(page, " ".join(["The bank of the river was muddy after the storm."] * 14))
        page.get_by_text("Long input: only layer").first.wait_for(state="attached", timeout=180_000)

        page.get_by_role("tab", name="bertviz neuron view").first.click()
        view = page.frame_locator('iframe[title="bertviz neuron view of all-MiniLM-L6-v2"]')
        view.locator("svg text").first.wait_for(state="attached", timeout=180_000)
        assert view.locator("svg text").count() > 2 * 150  # query and key tokens drawn
        assert view.locator("select#layer[disabled]").count() == 1
        assert page.get_by_text("Long input: only layer").count() >= 1
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.foreign_requests == []
        assert page.page_errors == []
