"""The Attention page's Head select drives bertviz's head view, in a real browser."""

import time

import pytest

from browser import browser_page, rerun, streamlit_server, wait_for_idle

pytestmark = [pytest.mark.slow, pytest.mark.browser]

MODEL = "all-MiniLM-L6-v2"
HEAD_VIEW = f'iframe[title="bertviz head view of {MODEL}"]'
# The heads whose lines bertviz draws visible (stroke-opacity > 0), and whether the last
# token's text ends inside the frame (not clipped at its bottom edge).
SHOWN = """svg => {
  const doc = svg.ownerDocument;
  const heads = [...doc.querySelectorAll('#attention .headAttention')]
    .filter(g => [...g.querySelectorAll('line')].some(l => +l.getAttribute('stroke-opacity') > 0))
    .map(g => +g.getAttribute('head-index'));
  const texts = doc.querySelectorAll('#left text');
  const last = texts[texts.length - 1].getBoundingClientRect().bottom;
  return {heads, fits: last <= doc.defaultView.innerHeight,
          layerMenuShown: doc.querySelector('select#layer').offsetParent !== null};
}"""


def shown(page, timeout: float = 60) -> dict:
    """What the head view shows, once its (re)loaded page has drawn."""
    deadline = time.time() + timeout
    while True:
        try:
            return page.frame_locator(HEAD_VIEW).locator("svg").first.evaluate(SHOWN, timeout=10_000)
        except Exception:  # noqa: BLE001 - the frame reloads when its HTML changes
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def test_our_head_select_picks_the_head_bertviz_shows():
    with streamlit_server() as url, browser_page() as page:
        page.goto(f"{url}/Attention?model={MODEL}", timeout=60_000)  # one model: one set of views
        page.frame_locator(HEAD_VIEW).locator("svg line").first.wait_for(state="attached", timeout=180_000)
        wait_for_idle(page)
        assert shown(page) == {"heads": [0], "fits": True, "layerMenuShown": False}

        page.get_by_label("Head", exact=True).click()
        rerun(page, lambda: page.get_by_role("option", name="5", exact=True).click())
        deadline = time.time() + 60
        while (now := shown(page))["heads"] != [5] and time.time() < deadline:
            time.sleep(0.5)
        assert now == {"heads": [5], "fits": True, "layerMenuShown": False}
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.foreign_requests == [] and page.page_errors == []
