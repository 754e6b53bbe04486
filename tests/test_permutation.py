"""XLNet and permutation language modelling: the masks against their definition, typed and
shuffled orders, the predictions against a direct transformers call, and the notes' tab.

The tiny XLNet is built here: transformers' own XLNetTokenizer (a Unigram model, the format
of xlnet-base-cased's tokenizer.json) over a small vocabulary, and an XLNetLMHeadModel of
d_model 32, saved and loaded through the project's loader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from apptest import open_tab
import torch
import transformers as tf

from ctxlens.analysis import permutation as P
from ctxlens.errors import CapabilityMissing, InputError, ModelUnavailable
from ctxlens.figures.permutation import BERT, CONTENT, GPT, QUERY, masks_figure
from ctxlens.methods import permutation as M
from tiny_models import WORDS, save_gpt2

XLNET_SPECIALS = ["<unk>", "<s>", "</s>", "<cls>", "<sep>", "<pad>", "<mask>", "<eod>", "<eop>"]
TEXT = "The cat sat on the mat."
CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,?!'<>/"


def save_xlnet(folder):
    """A tiny XLNet LM with a real XLNet (Unigram) tokenizer, as save_pretrained writes them."""
    torch.manual_seed(0)
    words = [(f"▁{w}", -2.0) for w in WORDS] + [(f"▁{w.title()}", -2.5) for w in WORDS]
    vocab = [(s, 0.0) for s in XLNET_SPECIALS] + words + [(c, -6.0) for c in CHARS] + [("▁", -4.0)]
    tokenizer = tf.XLNetTokenizer(vocab=vocab, unk_id=0)
    config = tf.XLNetConfig(vocab_size=len(tokenizer), d_model=32, n_layer=2, n_head=2, d_inner=64,
                            pad_token_id=tokenizer.pad_token_id)
    tf.XLNetLMHeadModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def xlnet_folder(tmp_path_factory):
    return str(save_xlnet(tmp_path_factory.mktemp("xlnet")))


@pytest.fixture(scope="module")
def lm(xlnet_folder):
    return M.load_xlnet(xlnet_folder, "cpu")


# --- masks ----------------------------------------------------------------------------------

ORDER = (3, 0, 4, 1, 2)


def test_masks_equal_the_definition_for_a_given_order():
    n = len(ORDER)
    content, query = P.content_mask(ORDER), P.query_mask(ORDER)
    for i in range(n):
        for j in range(n):  # the definition written out: j sees-able iff it comes (at or) before i in the order
            assert content[i, j] == (ORDER.index(j) <= ORDER.index(i)), (i, j)
            assert query[i, j] == (ORDER.index(j) < ORDER.index(i)), (i, j)
    assert content.diagonal().all() and not query.diagonal().any()  # content includes itself, query excludes
    assert (content & ~np.eye(n, dtype=bool) == query).all()
    # by hand: 3 comes first (its query stream sees nothing), 2 last (it sees all the others)
    assert not query[3].any() and query[2].tolist() == [True, True, False, True, True]
    assert query[4].tolist() == [True, False, False, True, False]  # 4 is predicted after 3 and 0
    assert P.visible_before(ORDER, 4) == (3, 0)
    assert [int(query[p].sum()) for p in ORDER] == list(range(n))


def test_bert_sees_all_gpt_is_lower_triangular_and_equals_the_reading_order():
    assert P.bert_mask(4).all() and P.bert_mask(4).shape == (4, 4)
    gpt = P.gpt_mask(4)
    assert all(gpt[i, j] == (j <= i) for i in range(4) for j in range(4))
    assert (P.content_mask(P.left_to_right(4)) == gpt).all()


def test_shuffles_are_seeded_permutations():
    for n in (1, 2, 7):
        for seed in range(10):
            order = P.shuffled_order(n, seed)
            assert sorted(order) == list(range(n)) and order == P.shuffled_order(n, seed)
    assert len({P.shuffled_order(7, seed) for seed in range(10)}) > 1  # the seed matters
    with pytest.raises(InputError, match="seed"):
        P.shuffled_order(5, -1)


TOKENS = ("␣The", "␣cat", "␣sat", "␣on", "␣the", "␣mat", ".")


@pytest.mark.parametrize("typed, message", [
    ("", "empty"),
    ("   ", "empty"),
    ("0 1 2", "leaves out position 3, 4, 5, 6"),
    ("0 1 2 3 4 5 7", "Position 7 is out of range: the sentence has 7 tokens, numbered 0–6"),
    ("-1 0 1 2 3 4 5", "Position -1 is out of range"),
    ("0 1 2 3 4 5 5", "Position 5 appears more than once"),
    ("0 1 2 3 4 5 6 6", "Position 6 appears more than once"),
    ("The cat sat on the mat dog", "'dog' is not a token of the sentence"),
    ("the the the cat sat on mat", "'the' comes 2 time"),
])
def test_bad_typed_orders_say_why(typed, message):
    with pytest.raises(InputError, match=message):
        P.parse_order(typed, TOKENS)


def test_typed_orders_as_positions_or_tokens():
    assert P.parse_order("6 5 4 3 2 1 0", TOKENS) == (6, 5, 4, 3, 2, 1, 0)
    assert P.parse_order("6, 5,4 ,3 2 1 0", TOKENS) == (6, 5, 4, 3, 2, 1, 0)
    # a word names its first unused occurrence (exact case first), a number a position
    assert P.parse_order("mat the the . 1 sat on", TOKENS) == (5, 4, 0, 6, 1, 2, 3)
    assert P.parse_order("␣mat The the . cat sat on", TOKENS) == (5, 0, 4, 6, 1, 2, 3)
    with pytest.raises(InputError, match="no tokens"):
        P.parse_order("0", ())


def test_perm_mask_and_target_mapping_are_the_definition_in_transformers_sense():
    order, positions, length = (2, 0, 1), (0, 1, 2), 5  # three words, then <sep> <cls>
    perm = P.xlnet_perm_mask(order, length, positions)
    assert perm.shape == (1, 5, 5) and perm.dtype == np.float32
    for i in range(length):
        for j in range(length):
            if i < 3 and j < 3:  # 1 = may NOT attend: j does not come strictly before i
                expected = 0.0 if order.index(j) < order.index(i) else 1.0
            else:  # specials: seen by all, seeing only each other
                expected = 1.0 if (i >= 3 and j < 3) else 0.0
            assert perm[0, i, j] == expected, (i, j)
    mapping = P.xlnet_target_mapping(1, length)
    assert mapping.shape == (1, 1, 5) and mapping[0, 0].tolist() == [0, 1, 0, 0, 0]
    assert P.reference_orders(3, 1) == {"target first": (1, 0, 2), "left to right": (0, 1, 2),
                                        "target last": (0, 2, 1)}


# --- the model ------------------------------------------------------------------------------


def test_tokens_are_the_words_without_the_trailing_sep_cls(lm):
    seq = M.xlnet_tokens(lm, TEXT)
    assert seq.tokens == TOKENS
    assert seq.positions == tuple(range(7)) and seq.length == 9
    assert seq.input_ids[-2:] == (lm.tokenizer.sep_token_id, lm.tokenizer.cls_token_id)


def _direct_logits(folder, text, order, target):
    """transformers alone: perm_mask and target_mapping written from the definition by loops."""
    tokenizer = tf.AutoTokenizer.from_pretrained(folder)
    model = tf.XLNetLMHeadModel.from_pretrained(folder).eval()
    enc = tokenizer(text, return_tensors="pt")
    length = enc["input_ids"].shape[1]
    n = length - 2  # <sep> <cls> last
    perm_mask = torch.zeros(1, length, length)
    for i in range(length):
        for j in range(n):
            if i >= n or order.index(j) >= order.index(i):
                perm_mask[0, i, j] = 1.0
    target_mapping = torch.zeros(1, 1, length)
    target_mapping[0, 0, target] = 1.0
    with torch.no_grad():
        out = model(**enc, perm_mask=perm_mask, target_mapping=target_mapping)
    return out.logits[0, 0].numpy()


def test_prediction_equals_a_direct_transformers_call(lm, xlnet_folder):
    order, target = (3, 0, 5, 1, 6, 2, 4), 2
    result = M.predict_in_order(lm, TEXT, order, target, top_k=5)
    assert np.allclose(result.logits, _direct_logits(xlnet_folder, TEXT, order, target), atol=1e-5)
    assert result.visible == (3, 0, 5, 1, 6) and result.target == 2
    probs = torch.softmax(torch.from_numpy(result.logits), -1)
    top = probs.topk(5)
    assert [f.token_ids[0] for f in result.candidates] == top.indices.tolist()
    assert np.allclose([f.prob for f in result.candidates], top.values.numpy(), atol=1e-6)
    assert result.actual.text == "␣sat" and np.isclose(result.actual.prob, float(probs[result.actual.token_ids[0]]))
    assert 1 <= result.actual_rank <= len(probs)


def test_the_prediction_sees_exactly_the_tokens_before_it_in_the_order(lm):
    order, target = (3, 0, 2, 1, 4, 5, 6), 2  # "sat" sees "on" and "The"; "cat" comes after it
    base = M.predict_in_order(lm, TEXT, order, target).logits
    after = M.predict_in_order(lm, "The dog sat on the mat.", order, target).logits  # cat → dog: after
    own = M.predict_in_order(lm, "The cat played on the mat.", order, target).logits  # the target's own word
    before = M.predict_in_order(lm, "The cat sat at the mat.", order, target).logits  # on → at: before
    assert np.allclose(base, after, atol=1e-5) and np.allclose(base, own, atol=1e-5)
    assert np.abs(base - before).max() > 1e-4


def test_the_prediction_changes_when_the_order_changes_what_it_sees(lm):
    target = 2
    first = M.predict_in_order(lm, TEXT, (2, 0, 1, 3, 4, 5, 6), target).logits  # sees no word
    last = M.predict_in_order(lm, TEXT, (0, 1, 3, 4, 5, 6, 2), target).logits  # sees every other word
    reordered = M.predict_in_order(lm, TEXT, (1, 0, 3, 4, 5, 6, 2), target).logits  # the same set, other order
    assert np.abs(first - last).max() > 1e-4
    assert np.allclose(last, reordered, atol=1e-5)  # only the set before it matters, not its order


def test_bad_inputs_to_the_method(lm):
    with pytest.raises(InputError, match="leaves out"):
        M.predict_in_order(lm, TEXT, (0, 1, 2), 1)
    with pytest.raises(InputError, match="out of range"):
        M.predict_in_order(lm, TEXT, tuple(range(7)), 9)
    with pytest.raises(InputError, match="top_k"):
        M.predict_in_order(lm, TEXT, tuple(range(7)), 1, top_k=0)
    with pytest.raises(InputError, match="at most"):
        M.xlnet_tokens(lm, " ".join(["cat"] * (M.MAX_TOKENS + 1)))


def test_a_model_that_is_not_an_xlnet_is_refused(tmp_path):
    folder = save_gpt2(tmp_path / "gpt2")
    with pytest.raises(CapabilityMissing, match="two-stream attention"):
        M.load_xlnet(str(folder), "cpu")


def test_xlnet_base_cased_offline_names_the_model():
    from ctxlens.models.loading import resolve_local

    if resolve_local(M.XLNET_SPEC.source) is not None:
        pytest.skip("xlnet-base-cased is in this machine's cache")
    with pytest.raises(ModelUnavailable, match="xlnet-base-cased.*HF_HUB_OFFLINE"):
        M.load_xlnet("xlnet-base-cased", "cpu")


# --- figure ---------------------------------------------------------------------------------


def test_masks_figure_shows_the_four_masks_side_by_side_with_escaped_tokens():
    tokens = ("<b>", "cat", "sat", "<b>")
    order = (2, 0, 3, 1)
    fig = masks_figure(tokens, order, target=3)
    assert [t.name for t in fig.data] == [CONTENT, QUERY, BERT, GPT]
    expected = [P.content_mask(order), P.query_mask(order), P.bert_mask(4), P.gpt_mask(4)]
    for trace, mask in zip(fig.data, expected):
        assert np.array_equal(np.asarray(trace.z), mask.astype(float))
    assert len({t.xaxis for t in fig.data}) == 4  # one panel each
    assert list(fig.layout.yaxis.ticktext) == ["0:&lt;b&gt;", "1:cat", "2:sat", "3:&lt;b&gt;"]
    assert len(fig.layout.shapes) == 2  # the target's row, in XLNet's two panels
    assert "&lt;b&gt;" in fig.data[1].customdata[3][0] and "<b>" not in str(fig.data[1].customdata)


# --- the notes' tab -------------------------------------------------------------------------


def _rows(chart) -> list[str]:
    return json.loads(chart.proto.spec)["layout"]["yaxis"]["ticktext"]


def test_tab_offline_says_what_it_needs_and_still_draws_the_masks():
    from ctxlens.models.loading import resolve_local

    if resolve_local(M.XLNET_SPEC.source) is not None:
        pytest.skip("xlnet-base-cased is in this machine's cache")
    at = open_tab("notes_xlnet", 120).run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    said = [i.value.replace("\\", "") for i in at.info]  # the markdown source, escapes dropped
    assert any("need **xlnet-base-cased**" in s and "HF_HUB_OFFLINE is set" in s for s in said), said
    charts = at.get("plotly_chart")
    assert len(charts) == 1  # the masks, over the words
    assert _rows(charts[0])[:5] == ["0:The", "1:cat", "2:sat", "3:on", "4:the"]


def test_tab_with_the_tiny_xlnet_shows_masks_and_predictions(xlnet_folder, lm):
    at = open_tab("notes_xlnet", 120, xl_model=xlnet_folder, xl_how="Shuffled (seeded)", xl_seed=3).run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert len(at.get("plotly_chart")) == 2  # masks and the top-k bars
    order = P.shuffled_order(7, 3)
    assert any(m.value.startswith("**Order:** " + f"{order[0]}:") for m in at.markdown)
    assert _rows(at.get("plotly_chart")[0])[5] == "5:␣mat"  # XLNet's own tokens now
    table = at.dataframe[0].value
    assert list(table["order"]) == ["target first", "left to right", "target last"]
    assert list(table["sees"]) == [0, 5, 6]  # target "mat" (5): nothing, the five to its left, the six others


def test_tab_with_a_bad_typed_order_warns_and_does_not_crash(xlnet_folder, lm):
    at = open_tab("notes_xlnet", 120, xl_model=xlnet_folder, xl_how="Typed", xl_order="0 1 1 2 3 4 5").run()
    assert not at.exception and not at.error
    assert any("appears more than once" in w.value for w in at.warning)
