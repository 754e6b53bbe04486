"""A 100,000-character paste in a real browser, with both embedded defaults: Home and
Attention answer with a message about the cut, and the same server then answers a short
sentence (the paste neither crashes it nor leaves it stuck)."""

import re
import time

import pytest

from browser import browser_page, streamlit_server, type_sentence, wait_for_idle

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PASTE = ("The bank of the river was muddy after the storm. 北京欢迎你 😀 <b>x</b> " * 2000)[:100_000]


def _type(page, text):
    start = time.time()
    type_sentence(page, text)
    print(f"{len(text):,} characters answered in {time.time() - start:.1f} s")


def _warnings(page) -> str:
    return " ".join(page.locator('[data-testid="stAlert"]').all_text_contents())


def test_a_huge_paste_is_cut_with_a_message_and_the_server_still_answers():
    with streamlit_server() as url, browser_page() as page:
        for path in ("", "/Attention"):
            page.goto(url + path, timeout=120_000)
            wait_for_idle(page)
            _type(page, PASTE)
            said = _warnings(page)
            assert "only the first 512" in said and "interactive views analyse at most 512" in said, said
            assert page.locator('[data-testid="stException"]').count() == 0
        _type(page, "A short sentence about a bank.")
        assert "only the first" not in _warnings(page)
        assert page.locator('[data-testid="stException"]').count() == 0
        shown = page.get_by_text(re.compile(r"· \d+ tokens ·")).all_text_contents()
        assert shown and not any("512 tokens" in s for s in shown), shown
        assert page.page_errors == []
