"""Projector mode in a real browser at 1280×720, on every page: every figure's text is at least
18 px, tables and bertviz are enlarged, no label, tab, button, model chip or lesson link is cut,
and a rerun shows the "Working…" badge."""

import pytest

from urllib.parse import urlencode

from browser import browser_page, rerun, streamlit_server, wait_for_idle

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PLOTS = "n => document.querySelectorAll('.js-plotly-plot .main-svg').length >= n"
# Every text plotly draws, by kind (axis titles, ticks, titles, legend, colorbars, annotations).
FONTS = """() => [...document.querySelectorAll('.js-plotly-plot .main-svg text')].map(t => ({
  kind: (t.getAttribute('class') || '') + ' ' + (t.closest('g[class]')?.getAttribute('class') || ''),
  px: parseFloat(getComputedStyle(t).fontSize), text: t.textContent}))"""
CUT = """() => [...document.querySelectorAll([
    '[data-testid="stWidgetLabel"]', '[data-testid="stSidebarNavLink"] span', '.stMarkdownEllipsis',
    '[data-testid="stMultiSelect"] [data-tag] > span', '[data-testid="stPageLink"] a', '[data-testid="stPageLink"] p',
    '[role="tab"] p', '[data-testid="stButton"] p', '[data-testid="stRadio"] label p', '[data-testid="stExpander"] summary p',
    '[data-testid="stSelectbox"] input[role="combobox"]', '[data-testid="stTabs"] [role="tablist"]', 'h1', 'h2', 'h3'].join(','))]
  .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
  .map(e => `${(e.value ?? e.textContent).trim().slice(0, 60)}: ${e.scrollWidth} > ${e.clientWidth}`)"""
ZOOMED = """sel => [...document.querySelectorAll(sel)].map(e => {
  const box = e.closest('[data-testid="stElementContainer"]');
  const column = box.parentElement.getBoundingClientRect(), own = box.getBoundingClientRect();
  return {zoom: getComputedStyle(box).zoom, inside: own.right <= column.right + 1};
})"""
# Whether the script ran since this was armed: a rerun can start and end within one task, so
# the observer also reads each mutation's old value (the state may be "notRunning" again by then).
# Every change is seen: the state attribute changing, or (a rerun short enough to miss) the
# element that carries it being put back with "running" already set (childList).
ARM_BADGE = """() => { window.__ran = false;
  const running = () => document.querySelector('[data-test-script-state="running"]') !== null;
  new MutationObserver(records => { for (const r of records)
      if (r.oldValue === 'running' || running()) window.__ran = true; })
  .observe(document.body, {subtree: true, childList: true, attributes: true, attributeOldValue: true,
                           attributeFilter: ['data-test-script-state']}); }"""
# The page's rule that shows "Working…" over the app while its script runs.
BADGE_RULE = """() => [...document.styleSheets].some(sheet => [...sheet.cssRules].some(rule =>
  (rule.selectorText || '').includes('data-test-script-state="running"') && rule.style.content.includes('Working')))"""


@pytest.fixture(scope="module")
def server():
    with streamlit_server() as url:
        yield url


def _projector_on(page, n_plots: int, attempts: int = 3) -> None:
    toggle = page.get_by_text("Projector mode")
    for attempt in range(attempts):
        page.evaluate(ARM_BADGE)
        rerun(page, toggle.click)
        # A rerun quicker than a frame (the Exercises page, no figures) may never render its
        # "running" state; switch off and on again so that one run is seen (_check_projector
        # still requires it).
        if page.evaluate("window.__ran") or attempt == attempts - 1:
            break
        rerun(page, toggle.click)
    page.wait_for_function(PLOTS, arg=n_plots, timeout=120_000)
    page.wait_for_function("() => [...document.querySelectorAll('.js-plotly-plot .main-svg text')]"
                           ".every(t => parseFloat(getComputedStyle(t).fontSize) >= 18)", timeout=30_000)


def _check_projector(page, figures: bool = True) -> None:
    texts = page.evaluate(FONTS)
    kinds = " ".join(t["kind"] for t in texts)
    assert not figures or all(k in kinds for k in ("xtick", "ytick", "gtitle")), kinds[:300]
    assert [t for t in texts if t["px"] < 18] == []
    assert page.evaluate(CUT) == []
    assert page.evaluate("window.__ran") and page.evaluate(BADGE_RULE)  # the badge showed while it ran
    assert page.locator('[data-testid="stException"]').count() == 0


def _open(page, url: str, n_plots: int) -> None:
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(url, timeout=60_000)
    wait_for_idle(page)
    page.wait_for_function(PLOTS, arg=n_plots, timeout=180_000)


def test_projector_mode_on_home(server):
    with browser_page() as page:
        _open(page, server, 3)  # MiniLM, SmolLM2 and the ELMo test model
        _projector_on(page, 3)
        _check_projector(page)
        tables = page.evaluate(ZOOMED, '[data-testid="stDataFrame"]')
        assert tables and all(t["zoom"] == "1.3" and t["inside"] for t in tables)
        lessons = page.locator(".st-key-ctx_lessons [data-testid='stPageLink'] a")
        assert lessons.count() >= 5


def test_projector_mode_on_the_attention_page(server):
    with browser_page() as page:
        _open(page, f"{server}/Attention", 1)
        page.frame_locator("iframe").first.locator("svg").first.wait_for(state="attached", timeout=60_000)
        _projector_on(page, 1)
        _check_projector(page)
        frames = page.evaluate(ZOOMED, '[data-testid="stIFrame"]')
        assert frames and all(f["zoom"] == "1.3" for f in frames)


# The other pages, each on a link that makes it draw (tiny random models where the embedded
# defaults have no such head): path, query, figures to wait for, a button to press first.
PAGES = {
    "Polysemy_lab": (lambda m: {"model": "all-MiniLM-L6-v2", "lab_projection": "PCA"}, 2, None),
    "Contextuality": (lambda m: {"model": "all-MiniLM-L6-v2", "cx_n": "8"}, 2, "Run"),
    "Masked_LM": (lambda m: {"model": m["bert-mlm"], "text": "The capital of France is [MASK]."}, 1, None),
    "ELMo": (lambda m: {}, 2, None),
    "Next_token": (lambda m: {"model": m["gpt2"]}, 1, None),
    "Question_answering": (lambda m: {"model": m["bert-qa"]}, 1, None),
    "Why": (lambda m: {"model": m["gpt2"]}, 1, None),
    "Exercises": (lambda m: {"ex": "prev-head"}, 0, None),
}


@pytest.mark.parametrize("path", list(PAGES))
def test_projector_mode_on_every_other_page(server, tiny_models, path):
    query, n_plots, button = PAGES[path]
    with browser_page() as page:
        _open(page, f"{server}/{path}?{urlencode(query(tiny_models), doseq=True)}", 0)
        if button:
            rerun(page, lambda: page.get_by_role("button", name=button, exact=True).click())
        if path == "Exercises":  # answer, then reveal: the verdict and its table are what a class reads
            rerun(page, lambda: page.locator('[data-testid="stMain"] [role="radiogroup"] label').first.click())
            rerun(page, lambda: page.get_by_role("button", name="Reveal the model's answer").click())
        page.wait_for_function(PLOTS, arg=n_plots, timeout=180_000)
        _projector_on(page, n_plots)
        _check_projector(page, figures=n_plots > 0)
