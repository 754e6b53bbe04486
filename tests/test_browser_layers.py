"""The layer story and the corpus search in a real browser, on MiniLM (the fast embedded
model): they run, their figures are drawn and visible, nothing breaks, no request leaves
localhost; the layer story also in projector mode."""

import pytest

from browser import browser_page, rerun, streamlit_server, wait_for_idle
from test_browser_projector import CUT  # labels, select boxes, tabs, buttons cut short

pytestmark = [pytest.mark.slow, pytest.mark.browser]

MODEL = "model=all-MiniLM-L6-v2"
VISIBLE_PLOTS = ("n => [...document.querySelectorAll('.js-plotly-plot .main-svg')]"
                 ".filter(e => e.getBoundingClientRect().width > 0).length >= n")
SMALL_TEXT = """() => [...document.querySelectorAll('.js-plotly-plot .main-svg text')]
  .filter(t => t.getBoundingClientRect().width > 0 && t.textContent.trim())
  .filter(t => parseFloat(getComputedStyle(t).fontSize) < 18).map(t => t.textContent)"""
PROBE = "Failed to load resource: the server responded with a status of 404"  # Streamlit's page probes


@pytest.fixture(scope="module")
def server():
    with streamlit_server() as url:
        yield url


def _open(page, url):
    page.goto(url, timeout=60_000)
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=120_000)
    wait_for_idle(page)


def _plots(page, n=1):
    page.wait_for_function(VISIBLE_PLOTS, arg=n, timeout=300_000)


def _clean(page):
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
    assert page.foreign_requests == [] and page.page_errors == []
    assert [e for e in page.console_errors if not e.startswith(PROBE)] == []


def _tab(page, name):
    rerun(page, lambda: page.get_by_role("tab", name=name).click())


def test_layer_story_runs_and_draws_every_tab(server):
    with browser_page() as page:
        _open(page, f"{server}/Layer_story?{MODEL}")
        assert page.get_by_text("Press Run to tell the story").count() == 1
        rerun(page, lambda: page.get_by_role("button", name="Run").click(), timeout=600_000)
        _plots(page)
        assert page.get_by_text("part of speech is most selectively readable").is_visible()
        _tab(page, "Probes")
        _plots(page)
        assert page.get_by_text("Silver labels").is_visible()
        _tab(page, "Model vs model")
        _plots(page)
        assert page.locator(".js-plotly-plot .heatmaplayer").first.is_visible()
        _clean(page)


def test_corpus_search_draws_marked_neighbours(server):
    with browser_page() as page:
        _open(page, f"{server}/Corpus_search?{MODEL}")
        _plots(page)
        marks = page.locator("table.ctx-neighbours mark")
        assert marks.count() == 10 and marks.first.is_visible()
        assert page.get_by_text("The 10 nearest occurrences at layer 3").is_visible()
        _clean(page)


def test_layer_story_in_projector_mode(server):
    with browser_page() as page:
        page.set_viewport_size({"width": 1280, "height": 720})
        _open(page, f"{server}/Layer_story?{MODEL}")
        rerun(page, lambda: page.get_by_text("Projector mode").click())
        rerun(page, lambda: page.get_by_role("button", name="Run").click(), timeout=600_000)
        for tab in ("Story", "Probes", "Model vs model"):
            if tab != "Story":  # the tab shown first: a click on it would not rerun
                _tab(page, tab)
            _plots(page)
            assert page.evaluate(SMALL_TEXT) == [], tab
            assert page.evaluate(CUT) == [], tab
        _clean(page)
