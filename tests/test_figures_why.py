"""The why figures: escaping, a colour scale symmetric around 0, shapes."""

import re
from html import unescape
from types import SimpleNamespace

import numpy as np
import pandas as pd
import plotly.colors as pc

from ctxlens.figures.export import figure_table
from ctxlens.figures.why import (
    DIVERGING,
    NOT_SCORED,
    agreement_heatmap,
    head_importance_heatmap,
    score_colour,
    shaded_sentence_html,
    word_bars,
    word_table,
)
from ctxlens.methods.targets import TOKEN, Target

NEUTRAL = "rgb(247, 247, 247)"  # RdBu's middle


def _attribution(words, scores):
    return SimpleNamespace(words=tuple(words), word_scores=np.asarray(scores, dtype=np.float32),
                           target=Target(TOKEN, "␣Paris", 1, 4), method="occlusion", options=())


def _backgrounds(html):
    return re.findall(r'<span title="[^"]*" style="background:([^;]+);', html)


def test_shaded_sentence_escapes_every_word_and_keeps_the_text_between():
    text = "Say <script>alert('x')</script> & **bold** $x$"
    words = ["Say", "<", "script", ">", "alert", "(", "'", "x", "'", ")", "<", "/", "script", ">", "&", "*", "*",
             "bold", "*", "*", "$", "x", "$"]
    html = shaded_sentence_html([(w, float(i)) for i, w in enumerate(words)], text)
    assert "<script>" not in html and "</script>" not in html and "**" not in html and "$x" not in html
    assert "&lt;" in html and "&gt;" in html and "&amp;" in html
    assert "\n" not in html
    assert len(_backgrounds(html)) == len(words)
    plain = re.sub(r"<[^>]+>", "", html.split('<div style="font-size:0.8em')[0])
    assert unescape(plain) == text  # every character of the text, once, in order


def test_a_score_of_zero_is_neutral_and_the_scale_is_symmetric():
    html = shaded_sentence_html([("for", 2.0), ("none", 0.0), ("against", -2.0)], "for none against")
    up, zero, down = _backgrounds(html)
    assert zero == NEUTRAL == score_colour(0.0, 5.0)
    r_up, _, b_up = map(int, up[4:-1].split(","))
    r_down, _, b_down = map(int, down[4:-1].split(","))
    assert r_up > b_up and b_down > r_down  # red for, blue against
    # ±max |score| are the scale's two ends, and ±s lie as far from its middle on either side.
    at = lambda x: pc.sample_colorscale(DIVERGING, [x])[0]  # noqa: E731
    assert (up, down) == (at(1.0), at(0.0))
    assert (score_colour(1.0, 2.0), score_colour(-1.0, 2.0)) == (at(0.75), at(0.25))
    assert score_colour(float("nan"), 1.0) == NOT_SCORED


def test_title_holds_the_score_and_a_highlight_is_outlined():
    html = shaded_sentence_html([("bank", 0.5), ("river", -0.25)], "the bank of the river", highlight=0)
    assert 'title="bank: +0.5"' in html and 'title="river: -0.25"' in html
    assert html.count("outline") == 1


def test_newlines_and_long_tails():
    html = shaded_sentence_html([("a", 1.0)], "a\n\nb" + "c" * 500)
    assert "\n" not in html and "<br><br>" in html and "…" in html


def test_word_bars_escape_labels_and_centre_the_colours():
    fig = word_bars(_attribution(["<b>", "cat", "sat"], [1.0, np.nan, -3.0]))
    bar = fig.data[0]
    assert list(fig.layout.xaxis.ticktext) == ["&lt;b&gt;", "cat", "sat"]
    assert bar.marker.cmin == -bar.marker.cmax == -3.0
    assert list(bar.text) == ["", "n/a", ""]
    assert "Paris" in fig.layout.title.text
    assert len(figure_table(fig)) == 3


def test_head_importance_heatmap_shape_and_centre():
    change = np.array([[0.5, -2.0, 0.0], [1.0, 0.2, -0.1]])
    fig = head_importance_heatmap(change)
    heat = fig.data[0]
    assert np.asarray(heat.z).shape == (2, 3)
    assert heat.zmin == -heat.zmax == -2.0


def test_agreement_heatmap_writes_values_and_na():
    names = ["a", "b", "c"]
    agreement = pd.DataFrame([[1.0, 0.5, np.nan], [0.5, 1.0, -0.25], [np.nan, -0.25, 1.0]], index=names,
                             columns=names)
    heat = agreement_heatmap(agreement).data[0]
    assert heat.text[0] == ["1.00", "0.50", "n/a"] and heat.text[1][2] == "-0.25"
    assert (heat.zmin, heat.zmax) == (-1, 1)


def test_word_table_has_words_scores_and_what_was_explained():
    frame = word_table(_attribution(["the", "cat"], [0.5, -0.5]))
    assert frame["word"].tolist() == ["the", "cat"] and frame["score"].tolist() == [0.5, -0.5]
    assert set(frame["target"]) == {"␣Paris"}
