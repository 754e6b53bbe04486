"""Offline bertviz pages: no network, hostile tokens stay text, and they render in Chromium."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from ctxlens.figures.bertviz_html import (
    MAX_SVG_LINES,
    head_view_html,
    json_for_script,
    model_view_html,
    neuron_view_unavailable_reason,
    sentence_b_start,
    suggested_height,
    svg_line_count,
    vendored_scripts,
)
from ctxlens.record import Activations, Analysis, Family

CHROMIUM = Path("/usr/bin/chromium")
HOSTILE = (
    "[CLS]",
    "</script><script>alert(1)</script>",
    '<img src=x onerror="window.__pwned=1;alert(2)">',
    "<b>&amp;\"'",
    "[SEP]",
    "<!--",
    "[SEP]",
)
# Every URL a page may contain: SVG/XML namespace names and licence comments in d3,
# bertviz's source comment. None of them is loaded.
ALLOWED_URLS = ("http://www.w3.org/", "https://d3js.org", "https://github.com/tensorflow/tensor2tensor/")
CDN_HOSTS = ("cdnjs", "cloudflare", "jsdelivr", "unpkg", "googleapis", "code.jquery", "requirejs.org")


def make_record(tokens=HOSTILE, layers=2, heads=3, pair_at=4, family=Family.MASKED_LM, with_attention=True):
    n = len(tokens)
    att = np.random.default_rng(0).dirichlet(np.ones(n), size=(layers, heads, n)).astype(np.float32)
    segments = np.array([0 if pair_at is None or i < pair_at else 1 for i in range(n)])
    return Analysis(
        model_key="test",
        family=family,
        text="first",
        text_pair="second" if pair_at is not None else None,
        tokens=tuple(tokens),
        token_ids=np.arange(n),
        offsets=np.zeros((n, 2), dtype=np.int64),
        word_ids=np.full(n, -1),
        special_mask=np.array([t.startswith("[") for t in tokens]),
        segment_ids=segments,
        words=(),
        acts=Activations.from_arrays(np.zeros((layers + 1, n, 4), dtype=np.float32),
                                     att if with_attention else None),
    )


def params_of(page: str) -> dict:
    """The JSON bertviz's script reads, decoded as the browser would."""
    start = page.index("const params = ") + len("const params = ")
    value, _ = json.JSONDecoder().raw_decode(page, start)
    return value


@pytest.fixture(scope="module")
def pages():
    record = make_record()
    return {"head": head_view_html(record), "model": model_view_html(record)}


@pytest.mark.parametrize("view", ["head", "model"])
def test_page_loads_nothing_from_the_network(pages, view):
    page = pages[view]
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.IGNORECASE)
    # jQuery's own source mentions "<link" in a regex; check the markup around it.
    assert page.count(vendored_scripts()) == 1
    assert not re.search(r"<link\b|<iframe\b|<img\b", page.replace(vendored_scripts(), ""), re.IGNORECASE)
    lowered = page.lower()
    assert not [host for host in CDN_HOSTS if host in lowered]
    urls = re.findall(r"https?://[^\s\"'<>)]*", page)
    assert all(url.startswith(ALLOWED_URLS) for url in urls), set(urls)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "require.config" not in page


@pytest.mark.parametrize("view", ["head", "model"])
def test_hostile_tokens_are_escaped_but_round_trip(pages, view):
    page = pages[view]
    for token in HOSTILE[1:4] + ("<!--",):
        assert token not in page
    assert "\\u003c/script\\u003e\\u003cscript\\u003e" in page
    data = params_of(page)["attention"][0]
    assert data["left_text"] == list(HOSTILE) == data["right_text"]  # shown exactly as typed


def test_sentence_pair_views_split_at_second_segment(pages):
    record = make_record()
    assert sentence_b_start(record) == 4
    assert sentence_b_start(make_record(pair_at=None)) is None
    attention = params_of(pages["head"])["attention"]
    assert [a["name"] for a in attention][1:] == [
        "Sentence A -> Sentence A", "Sentence B -> Sentence B",
        "Sentence A -> Sentence B", "Sentence B -> Sentence A",
    ]
    a_to_b = attention[3]
    assert a_to_b["left_text"] == list(HOSTILE[:4]) and a_to_b["right_text"] == list(HOSTILE[4:])
    assert np.array(a_to_b["attn"]).shape == (2, 3, 4, 3)


def test_attention_values_are_rounded_and_complete(pages):
    record = make_record()
    attn = np.array(params_of(pages["head"])["attention"][0]["attn"])
    np.testing.assert_allclose(attn, record.attentions, atol=5e-4)
    assert "0.00000" not in pages["head"]  # float32 noise is not serialised
    assert pages["head"].count("const params = {") == 1  # bertviz's duplicate in a comment is gone


def test_layer_and_head_selection_reaches_bertviz():
    record = make_record(layers=3, heads=4)
    head = params_of(head_view_html(record, layer=2, heads=[1], layers=[0, 2]))
    assert head["include_layers"] == [0, 2] and head["layer"] == 2 and head["heads"] == [1]
    assert np.array(head["attention"][0]["attn"]).shape[:2] == (2, 4)
    model = params_of(model_view_html(record, layers=[1], heads=[0, 3], display_mode="dark"))
    assert np.array(model["attention"][0]["attn"]).shape[:2] == (1, 2)
    assert model["display_mode"] == "dark"


def test_json_for_script_round_trips_without_markup():
    value = {"t": ["</script>", "a&b", "<!--", "\u2028"]}
    text = json_for_script(value)
    assert not set("<>&") & set(text) and "\u2028" not in text
    assert json.loads(text) == value


def test_elmo_has_no_attention_views():
    record = make_record(family=Family.ELMO, with_attention=False)
    with pytest.raises(ValueError, match="no attention"):
        head_view_html(record)
    assert "no attention heads" in neuron_view_unavailable_reason(record)
    assert svg_line_count(record, "model") == 0


def test_neuron_view_explains_why_it_is_unavailable():
    message = neuron_view_unavailable_reason(make_record())
    assert "queries and keys" in message and "not available" in message


def test_size_helpers():
    record = make_record(layers=2, heads=3)  # 7 tokens
    assert svg_line_count(record, "head") == 3 * 49
    assert svg_line_count(record, "model") == 2 * 3 * 49
    assert svg_line_count(record, "model", layers=[0], heads=[1]) == 49
    big = make_record(tokens=[f"t{i}" for i in range(130)], layers=12, heads=12, pair_at=None)
    assert svg_line_count(big, "model") > MAX_SVG_LINES
    assert suggested_height(record, "head") == int(30 + 22.5 * 7 + 60)
    assert suggested_height(big, "model") > suggested_height(record, "model")
    with pytest.raises(ValueError):
        svg_line_count(record, "neuron")


# ---------------------------------------------------------------- real browser

@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed at /usr/bin/chromium")
def test_views_render_offline_in_chromium(pages):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"],
        )
        try:
            for view, page_html in pages.items():
                page = browser.new_page()
                errors, requests, dialogs = [], [], []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.on("console", lambda m: m.type == "error" and errors.append(m.text))
                page.on("request", lambda r: requests.append(r.url))
                page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
                page.set_content(page_html)
                # wait_for_function would eval a string, which the page's CSP forbids.
                page.wait_for_selector("svg line", state="attached", timeout=5000)
                if view == "head":
                    page.locator("svg text").nth(1).hover()  # draws the per-head boxes
                    page.select_option("#filter", "3")  # Sentence A -> Sentence B
                    texts = page.locator("svg text").all_text_contents()
                else:
                    box = page.locator("#attn_background_0_0").bounding_box()
                    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                    texts = page.locator("svg text.token").all_text_contents()
                page.wait_for_timeout(100)
                assert page.locator("svg line").count() > 0, view
                assert HOSTILE[1] in texts and HOSTILE[2] in texts, (view, texts)  # literal text
                assert page.evaluate("window.__pwned === undefined"), view
                assert page.locator("img, b").count() == 0, view  # no element from token text
                assert not errors and not dialogs, (view, errors, dialogs)
                assert all(u.startswith(("about:", "data:", "http://localhost", "http://127.0.0.1"))
                           for u in requests), (view, requests)
                page.close()
        finally:
            browser.close()


def test_views_fetch_only_the_layers_and_heads_they_draw(tiny_models):
    from ctxlens.backends.hf import analyze
    from ctxlens.models.loading import load_hf, spec_for

    record = analyze(load_hf(spec_for(tiny_models["bert-mlm"]), device="cpu"), "the river bank was wet")
    layer_bytes = record.attention(0).nbytes
    start = record.acts.bytes_moved
    head_view_html(record, layer=1, layers=[1])
    assert record.acts.bytes_moved - start == layer_bytes  # one layer, every head
    start = record.acts.bytes_moved
    model_view_html(record, layers=[1], heads=[0])
    assert record.acts.bytes_moved - start == layer_bytes // record.n_heads  # one head of one layer
