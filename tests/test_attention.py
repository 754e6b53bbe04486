"""Attention arithmetic and plotly figures, on hand-built arrays with known answers."""

import math

import numpy as np
import plotly.graph_objects as go
import pytest

from ctxlens.analysis.attention import (
    STATISTICS,
    attention_rollout,
    drop_special_sinks,
    head_statistics,
    is_punctuation_token,
    mean_over_heads,
    merge_to_words,
    present_words,
    row_entropy,
)
from ctxlens.figures.attention import (
    LONG_INPUT,
    MASKED_BACKGROUND,
    attention_lines,
    axis_labels,
    head_heatmap,
    head_summary_heatmap,
    layer_heads_grid,
    safe_label,
    top_k_edges,
)

# ---------------------------------------------------------------- rollout

# Layer 1, one head. With the residual: A'1 = 0.5 * A1 + 0.5 * I.
A1 = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])
A1_RES = np.array([[1.0, 0.0, 0.0], [0.25, 0.75, 0.0], [0.0, 0.25, 0.75]])
# Layer 2, two heads whose mean is [[.5, 0, .5], [.5, .5, 0], [1, 0, 0]].
A2_HEADS = np.array([
    [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]],
    [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]],
])
A2_RES = np.array([[0.75, 0.0, 0.25], [0.25, 0.75, 0.0], [0.5, 0.0, 0.5]])
# A'2 @ A'1 by hand:
#   row 0: .75*[1,0,0] + .25*[0,.25,.75]       = [.75,   .0625, .1875]
#   row 1: .25*[1,0,0] + .75*[.25,.75,0]       = [.4375, .5625, 0    ]
#   row 2: .5*[1,0,0]  + .5*[0,.25,.75]        = [.5,    .125,  .375 ]
ROLLOUT_2 = np.array([[0.75, 0.0625, 0.1875], [0.4375, 0.5625, 0.0], [0.5, 0.125, 0.375]])


def _two_layer_att():
    layer1 = np.stack([A1, A1])  # two identical heads: mean is A1
    return np.stack([layer1, A2_HEADS]).astype(np.float32)  # [2, 2, 3, 3]


def test_rollout_matches_hand_computation():
    out = attention_rollout(_two_layer_att())
    assert out.shape == (2, 3, 3)
    np.testing.assert_allclose(out[0], A1_RES, atol=1e-7)
    np.testing.assert_allclose(out[1], ROLLOUT_2, atol=1e-7)
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, atol=1e-7)


def test_rollout_without_residual_is_product_of_head_means():
    out = attention_rollout(_two_layer_att(), add_residual=False)
    mean2 = A2_HEADS.mean(axis=0)
    np.testing.assert_allclose(out[0], A1, atol=1e-7)
    np.testing.assert_allclose(out[1], mean2 @ A1, atol=1e-7)


def test_rollout_renormalises_rows():
    # Row 1 sums to 0.2 (e.g. after dropping sinks): 0.5*0.2 + 0.5 = 0.6 -> renormalised to 1.
    att = np.array([[[[1.0, 0.0], [0.0, 0.2]]]])
    np.testing.assert_allclose(attention_rollout(att)[0], np.eye(2), atol=1e-12)


def test_mean_over_heads():
    np.testing.assert_allclose(mean_over_heads(_two_layer_att())[1], A2_HEADS.mean(axis=0), atol=1e-7)


# ---------------------------------------------------------------- head statistics

TOKENS = ("[CLS]", "the", "cat", ".", "[SEP]")
SPECIAL = np.array([True, False, False, False, True])


def _bert_heads():
    """Four heads over TOKENS with known statistics."""
    n = len(TOKENS)
    identity = np.eye(n)
    uniform = np.full((n, n), 1.0 / n)
    previous = np.eye(n, k=-1)
    previous[0, 0] = 1.0  # row 0 has no previous token: it looks at itself
    to_cls = np.zeros((n, n))
    to_cls[:, 0] = 1.0
    return np.stack([identity, uniform, previous, to_cls])[None]  # [1, 4, 5, 5]


def test_head_statistics_known_values():
    stats = head_statistics(_bert_heads(), SPECIAL, TOKENS)
    assert set(stats) == set(STATISTICS)
    assert all(v.shape == (1, 4) for v in stats.values())
    expected = {  # per head: identity, uniform, previous-token, all-to-[CLS]
        "entropy": [0.0, math.log(5), 0.0, 0.0],
        "first": [0.2, 0.2, 0.4, 1.0],  # previous: rows 0 and 1 look at position 0
        "sep": [0.2, 0.2, 0.0, 0.0],  # only [SEP] at position 4 counts
        "self": [1.0, 0.2, 0.2, 0.2],
        "prev": [0.0, 0.2, 1.0, 0.25],  # all-to-[CLS]: only row 1 has prev == 0
        "next": [0.0, 0.2, 0.0, 0.0],
        "punct": [0.2, 0.2, 0.2, 0.0],  # "." at 3: identity row 3, previous row 4
    }
    for name, values in expected.items():
        np.testing.assert_allclose(stats[name][0], values, atol=1e-12, err_msg=name)


def test_head_statistics_causal_without_eos_or_punctuation():
    tokens = ("The", "␣cat", "␣sat")
    causal_uniform = np.tril(np.ones((3, 3))) / np.arange(1, 4)[:, None]
    stats = head_statistics(causal_uniform[None, None], np.zeros(3, bool), tokens)
    assert np.isnan(stats["sep"][0, 0])  # no EOS: undefined, not "the last token"
    assert np.isnan(stats["punct"][0, 0])
    np.testing.assert_allclose(stats["entropy"][0, 0], (0 + math.log(2) + math.log(3)) / 3)
    np.testing.assert_allclose(stats["first"][0, 0], (1 + 1 / 2 + 1 / 3) / 3)
    np.testing.assert_allclose(stats["prev"][0, 0], (1 / 2 + 1 / 3) / 2)
    assert stats["next"][0, 0] == 0.0


def test_head_statistics_rejects_mismatched_tokens():
    with pytest.raises(ValueError):
        head_statistics(_bert_heads(), SPECIAL, TOKENS[:-1])


def test_row_entropy_ignores_zeros():
    np.testing.assert_allclose(row_entropy(np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])), [math.log(2), 0.0])


@pytest.mark.parametrize("token,expected", [
    (".", True), ("␣,", True), ("##.", True), ("Ġ?!", True), ("…", True),
    ("a.", False), ("␣", False), ("cat", False), ("$", False), ("", False),
])
def test_is_punctuation_token(token, expected):
    assert is_punctuation_token(token) is expected


# ---------------------------------------------------------------- sinks and words

def test_drop_special_sinks_zeroes_and_renormalises():
    att = np.array([
        [0.5, 0.25, 0.25],
        [1.0, 0.0, 0.0],  # all mass on the special token: row becomes zero, not NaN
        [0.2, 0.6, 0.2],
    ])
    original = att.copy()
    out = drop_special_sinks(att[None, None], np.array([True, False, False]))
    assert out.shape == (1, 1, 3, 3)
    np.testing.assert_allclose(out[0, 0], [[0, 0.5, 0.5], [0, 0, 0], [0, 0.75, 0.25]])
    np.testing.assert_array_equal(att, original)


def test_merge_to_words_sums_keys_and_averages_queries():
    # [CLS] play ##ing foot ##ball [SEP]
    word_ids = np.array([-1, 0, 0, 1, 1, -1])
    att = np.array([
        [0.5, 0.1, 0.1, 0.1, 0.1, 0.1],
        [0.1, 0.2, 0.3, 0.1, 0.1, 0.2],  # play:   words [0.5, 0.2]
        [0.0, 0.4, 0.2, 0.2, 0.0, 0.2],  # ##ing:  words [0.6, 0.2]
        [0.2, 0.1, 0.1, 0.3, 0.2, 0.1],  # foot:   words [0.2, 0.5]
        [0.0, 0.0, 0.0, 0.5, 0.5, 0.0],  # ##ball: words [0.0, 1.0]
        [0.1, 0.1, 0.1, 0.1, 0.1, 0.5],
    ])
    expected = np.array([[0.55, 0.2], [0.1, 0.75]])  # query rows: mean of the pieces
    np.testing.assert_allclose(merge_to_words(att, word_ids), expected, atol=1e-12)
    stacked = np.stack([att, att * 2])[None]  # leading axes are kept
    out = merge_to_words(stacked, word_ids)
    assert out.shape == (1, 2, 2, 2)
    np.testing.assert_allclose(out[0, 1], 2 * expected, atol=1e-12)


def test_merge_to_words_skips_absent_word_ids():
    word_ids = np.array([-1, 0, 3, 3])
    att = np.full((4, 4), 0.25)
    np.testing.assert_array_equal(present_words(word_ids), [0, 3])
    np.testing.assert_allclose(merge_to_words(att, word_ids), [[0.25, 0.5], [0.25, 0.5]])


# ---------------------------------------------------------------- figures

HOSTILE = ("[CLS]", "<b>", "a&b", "the", "the")


def test_safe_labels_escape_html_and_stay_unique():
    assert safe_label("<b>x</b> & y") == "&lt;b&gt;x&lt;/b&gt; &amp; y"
    labels = axis_labels(HOSTILE)
    assert len(set(labels)) == len(HOSTILE)  # repeated "the" keeps two rows
    assert labels[1] == "1:&lt;b&gt;" and labels[2] == "2:a&amp;b"


def test_head_heatmap_masks_causal_upper_triangle():
    n = len(HOSTILE)
    att = np.tril(np.ones((n, n))) / np.arange(1, n + 1)[:, None]
    fig = head_heatmap(att, HOSTILE, causal=True, title="layer 0 <head> 1")
    assert len(fig.data) == 1 and isinstance(fig.data[0], go.Heatmap)
    z = np.array(fig.data[0].z, dtype=float)
    assert np.isnan(z[np.triu_indices(n, k=1)]).all()  # masked cells are gaps, not zeros
    np.testing.assert_allclose(z[np.tril_indices(n)], att[np.tril_indices(n)])
    assert fig.layout.plot_bgcolor == MASKED_BACKGROUND
    assert "<b>" not in list(fig.data[0].x) and "1:&lt;b&gt;" in list(fig.data[0].x)
    assert fig.layout.title.text == "layer 0 &lt;head&gt; 1"
    assert not np.isnan(np.array(head_heatmap(att, HOSTILE).data[0].z, dtype=float)).any()


def test_layer_heads_grid_has_one_heatmap_per_head():
    att = np.random.default_rng(0).dirichlet(np.ones(5), size=(6, 5))  # [H=6, T, T]
    fig = layer_heads_grid(att, HOSTILE, layer=3, cols=4)
    assert len(fig.data) == 6
    assert all(isinstance(t, go.Heatmap) and t.coloraxis == "coloraxis" for t in fig.data)
    assert [a.text for a in fig.layout.annotations] == [f"head {h}" for h in range(6)]
    layout = fig.layout.to_plotly_json()
    assert sorted(k for k in layout if k.startswith("yaxis")) == sorted(
        ["yaxis"] + [f"yaxis{i}" for i in range(2, 9)]
    )  # 2 rows × 4 cols
    assert {t.yaxis for t in fig.data} == {"y", "y2", "y3", "y4", "y5", "y6"}
    assert fig.layout.title.text == "layer 3: all heads"


def test_head_summary_heatmap_hover_and_blank_nan():
    values = np.array([[0.1, 0.2, 0.3], [np.nan, 0.5, 0.6]])
    fig = head_summary_heatmap(values, "sep")
    (trace,) = fig.data
    assert trace.hovertemplate.startswith("layer %{y}, head %{x}: %{z")
    assert list(trace.x) == [0, 1, 2] and list(trace.y) == [0, 1]
    assert np.isnan(np.array(trace.z, dtype=float)[1, 0]) and trace.hoverongaps is False
    assert fig.layout.title.text == "Attention to [SEP]/EOS"


def test_top_k_edges_orders_and_skips_masked():
    att = np.array([[0.7, np.nan, 0.0], [0.1, 0.9, np.nan], [0.3, 0.3, 0.4]])
    assert top_k_edges(att, 3) == [(1, 1, 0.9), (0, 0, 0.7), (2, 2, 0.4)]
    assert len(top_k_edges(att, 100)) == 6  # only positive, finite weights
    assert top_k_edges(att, 0) == []


def test_attention_lines_bins_edges_by_weight():
    att = np.array([[1.0, 0.0], [0.5, 0.5]])
    fig = attention_lines(att, ("<s>", "a"))
    # Weight 1.0 -> level 5, 0.5 -> level 3: two line traces, then two label traces.
    assert [t.mode for t in fig.data] == ["lines", "lines", "text", "text"]
    assert list(fig.data[2].text) == ["&lt;s&gt;", "a"]
    assert len(attention_lines(att, ("<s>", "a"), k=1).data) == 3


def test_attention_lines_long_input_defaults_to_top_k():
    n = LONG_INPUT + 2
    att = np.random.default_rng(1).dirichlet(np.ones(n), size=n)
    fig = attention_lines(att, [f"t{i}" for i in range(n)])
    n_segments = sum(sum(v is None for v in t.x) for t in fig.data if t.mode == "lines")
    assert n_segments == 3 * n
