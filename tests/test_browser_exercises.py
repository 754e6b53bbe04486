"""Each exercise in a real browser, on the models this machine has offline: a teacher's link
opens it, a student picks an answer, and the reveal says the model's answer and whether the
guess was right."""

import pytest

from browser import browser_page, rerun, streamlit_server, wait_for_idle
from ctxlens.methods.exercises import EXERCISES

pytestmark = [pytest.mark.slow, pytest.mark.browser]

VERDICT = '[data-testid="stMain"] [data-testid="stAlert"]'


@pytest.fixture(scope="module")
def server():
    with streamlit_server() as url:
        yield url


@pytest.mark.parametrize("key", list(EXERCISES))
def test_an_exercise_link_can_be_answered_and_reveals(server, key):
    with browser_page() as page:
        page.goto(f"{server}/Exercises?ex={key}", timeout=60_000)
        wait_for_idle(page)
        choices = page.locator('[data-testid="stMain"] [role="radiogroup"] label')
        choices.first.wait_for(timeout=240_000)
        assert choices.count() >= 2
        reveal = page.get_by_role("button", name="Reveal the model's answer")
        assert reveal.is_disabled()  # nothing to reveal before a guess
        guess = choices.last.inner_text().strip()
        rerun(page, lambda: choices.last.click())
        rerun(page, lambda: reveal.click())
        verdict = page.locator(VERDICT).filter(has_text="The model's answer").inner_text()
        assert verdict.startswith("Right") or f"you said {guess}" in verdict
        assert page.locator('[data-testid="stException"]').count() == 0
        assert page.foreign_requests == [] and page.page_errors == []
