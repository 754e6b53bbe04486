"""Widgets that must show what the page computes, in a real browser: AppTest reads the
server's value of a widget, while a browser shows its own copy, which the server corrects
only when it sends a value with the element."""

import re

import pytest

from browser import browser_page, rerun, streamlit_server, wait_for_idle

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def server():
    with streamlit_server() as url:
        yield url


def type_into(page, label, text):
    box = page.get_by_label(label)
    box.fill(text)
    rerun(page, lambda: box.press("Control+Enter"))  # a text area sends its text on Ctrl+Enter


def test_lab_slider_shows_the_layer_of_the_charts_after_the_target_changes(server):
    def slider_and_layers():
        # Plotly draws its titles after the script has finished: wait for one to be drawn.
        page.locator("text=/layer \\d of \\d/").first.wait_for(timeout=60_000)
        thumb = page.locator('[data-testid="stSliderThumbValue"]')
        return thumb.first.inner_text(), set(re.findall(r"layer \d of \d", page.content()))

    with browser_page() as page:
        page.goto(f"{server}/Polysemy_lab?model=elmo-tiny-test", timeout=60_000)
        page.get_by_role("slider").first.wait_for(timeout=180_000)
        wait_for_idle(page)
        page.get_by_role("slider").first.focus()
        rerun(page, lambda: page.keyboard.press("End"))
        assert slider_and_layers() == ("1.00", {"layer 2 of 2"})
        target = page.get_by_label("Target word")
        target.fill("plant")
        rerun(page, lambda: target.press("Enter"))  # absent from the bank sentences: the page stops above the slider
        type_into(page, "Sentences, one per line (optionally `sense | sentence`)",
                  "factory | The plant makes cars.\nfactory | The plant closed.\n"
                  "green | Water the plant.\ngreen | The plant grew.")
        assert slider_and_layers() == ("1.00", {"layer 2 of 2"})  # was 0.50 over layer 2
        page.get_by_label("Projection").click()
        rerun(page, lambda: page.get_by_role("option", name="t-SNE").click())
        assert slider_and_layers() == ("1.00", {"layer 2 of 2"})  # the charts jumped to layer 1
        assert page.locator('[data-testid="stException"]').count() == 0


def test_elmo_sentence_picker_follows_the_edited_sentence(server):
    def picked_and_subject():
        shown = page.get_by_role("combobox", name="Sentence to look at").input_value()
        return shown, re.findall(r"other sentences \(sentence (\d+)\)", page.content())

    with browser_page() as page:
        page.goto(f"{server}/ELMo?model=elmo-tiny-test", timeout=60_000)
        page.get_by_label("Sentences, one per line").wait_for(timeout=180_000)
        wait_for_idle(page)
        type_into(page, "Sentences, one per line", "A bank.\nThe bank.\nMy bank.")
        page.get_by_role("combobox", name="Sentence to look at").click()
        rerun(page, lambda: page.get_by_role("option", name="2: The bank.").click())
        assert picked_and_subject() == ("2: The bank.", ["2"])
        type_into(page, "Sentences, one per line", "A bank.\nThe big bank.\nMy bank.")
        assert picked_and_subject() == ("2: The big bank.", ["2"])  # showed the old "2: The bank."
        rerun(page, lambda: page.get_by_role("button", name="layer 0 only (no context)").first.click())
        assert picked_and_subject() == ("2: The big bank.", ["2"])  # fell back to sentence 1
        assert page.locator('[data-testid="stException"]').count() == 0
