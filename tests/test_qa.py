"""Extractive QA: span decoding against brute force, windows, exact character offsets."""

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf
import transformers as tf

from ctxlens.analysis import qa
from ctxlens.methods import qa as qa_method
from ctxlens.errors import CapabilityMissing, InputError
from ctxlens.figures import predictions as F
from ctxlens.backends.hf import analyze
from ctxlens.models.loading import load_hf, spec_for


def _brute_force(start, end, mask, max_len):
    spans = []
    for i in range(len(start)):
        for j in range(i, min(len(start), i + max_len)):
            if mask[i : j + 1].all():
                spans.append((-(start[i] + end[j]), i, j))
    return [(i, j, -s) for s, i, j in sorted(spans)]


def _random_case(rng):
    n = int(rng.integers(3, 40))
    if rng.random() < 0.5:  # [CLS] question [SEP] context [SEP] padding
        q, c = int(rng.integers(1, 6)), int(rng.integers(0, n))
        mask = np.zeros(n + q + 4, dtype=bool)
        mask[q + 2 : q + 2 + c] = True
    else:  # any pattern, to check that a span never crosses a non-context token
        mask = rng.random(n) < 0.7
    return rng.normal(size=len(mask)), rng.normal(size=len(mask)), mask


def test_decode_spans_equals_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(400):
        start, end, mask = _random_case(rng)
        max_len, top_k = int(rng.integers(1, 8)), int(rng.integers(1, 10))
        got = qa.decode_spans(start, end, mask, max_len, top_k)
        expected = _brute_force(start, end, mask, max_len)[:top_k]
        assert [(s.start, s.end) for s in got] == [(i, j) for i, j, _ in expected]
        np.testing.assert_allclose([s.score for s in got], [v for _, _, v in expected])


def test_span_scores_are_nan_exactly_where_spans_are_invalid():
    rng = np.random.default_rng(1)
    for _ in range(50):
        start, end, mask = _random_case(rng)
        scores = qa.span_scores(start, end, mask, 4)
        valid = {(i, j) for i, j, _ in _brute_force(start, end, mask, 4)}
        assert {tuple(map(int, ij)) for ij in np.argwhere(np.isfinite(scores))} == valid


def test_no_context_no_spans():
    assert qa.decode_spans(np.ones(5), np.ones(5), np.zeros(5, bool)) == []


# --- on the tiny models ---------------------------------------------------------------------

QUESTION = "What is the capital of France?"
LONG_CONTEXT = (
    "Le café est près de la gare, à côté du musée. 北京 is a big city 🎉 with a river. "
    "The river bank was wet after the rain. She went to the bank to deposit money. " * 3
    + "The capital of France is Paris. "
    + "A cat sat on the mat with a dog 😀, and naïve Zoë played the game at the house. " * 2
)


@pytest.fixture(scope="module")
def bert_qa(tiny_models):
    return load_hf(spec_for(tiny_models["bert-qa"]), device="cpu")


def _rig(folder, start_word, end_word, dst):
    """A BERT QA model whose start logit peaks at `start_word` and end logit at `end_word`.

    With the attention and feed-forward outputs zeroed and no position or segment
    embeddings, every layer returns LayerNorm(word embedding); the QA head's rows are the
    normalised embeddings of the two words, so each logit is largest at its word.
    """
    model = tf.BertForQuestionAnswering.from_pretrained(folder).eval()
    tok = tf.AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        emb = model.bert.embeddings
        emb.position_embeddings.weight.zero_()
        emb.token_type_embeddings.weight.zero_()
        for layer in model.bert.encoder.layer:
            for dense in (layer.attention.output.dense, layer.output.dense):
                dense.weight.zero_()
                dense.bias.zero_()
        words = emb.word_embeddings.weight
        for row, word in enumerate((start_word, end_word)):
            vector = words[tok.convert_tokens_to_ids(word)]
            model.qa_outputs.weight[row] = nnf.layer_norm(vector, (words.shape[1],))
        model.qa_outputs.bias.zero_()
    model.save_pretrained(dst)
    tok.save_pretrained(dst)
    return load_hf(spec_for(str(dst)), device="cpu")


def test_rigged_model_finds_the_exact_characters_in_a_later_window(tiny_models, tmp_path):
    lm = _rig(tiny_models["bert-qa"], "capital", "paris", tmp_path / "rigged")
    result = qa_method.answer_question(lm, QUESTION, LONG_CONTEXT, top_k=3, max_answer_len=8, stride=8, max_tokens=32)
    best = result.answers[0]
    a = LONG_CONTEXT.index("capital of France")
    b = LONG_CONTEXT.index("Paris.") + len("Paris")
    assert (best.char_start, best.char_end) == (a, b)
    assert best.text == "capital of France is Paris"
    assert best.window > 0 and len(result.windows) > 3
    assert not result.no_answer_preferred
    # The question also says "capital": question tokens are never part of a span.
    assert all(result.windows[x.window].context_mask[x.token_start] for x in result.answers)


def test_rigged_no_answer(tiny_models, tmp_path):
    lm = _rig(tiny_models["bert-qa"], "[CLS]", "[CLS]", tmp_path / "null")
    result = qa_method.answer_question(lm, QUESTION, "The river bank was wet.", max_tokens=32)
    assert result.no_answer_preferred
    assert result.null_score == pytest.approx(min(w.null_score for w in result.windows))


def test_answers_map_to_exact_substrings_across_windows(bert_qa):
    result = qa_method.answer_question(
        bert_qa, QUESTION, LONG_CONTEXT, top_k=5, max_answer_len=6, stride=8, max_tokens=32
    )
    assert len(result.windows) > 3 and len(result.answers) == 5
    scores = [x.score for x in result.answers]
    assert scores == sorted(scores, reverse=True)
    assert len({(x.char_start, x.char_end) for x in result.answers}) == 5
    for x in result.answers:
        w = result.windows[x.window]
        assert x.text == LONG_CONTEXT[x.char_start : x.char_end] and x.text == x.text.strip()
        assert (x.char_start, x.char_end) == (w.offsets[x.token_start, 0], w.offsets[x.token_end, 1])
        assert 0 <= x.token_end - x.token_start < 6 and 0 < x.prob <= 1
        assert w.context_mask[x.token_start : x.token_end + 1].all()


def test_windows_cover_the_context_and_overlap_by_the_stride(bert_qa):
    result = qa_method.answer_question(bert_qa, QUESTION, LONG_CONTEXT, stride=8, max_tokens=32)
    tok = bert_qa.tokenizer
    full = tok(LONG_CONTEXT, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    seen = set()
    for w in result.windows:
        assert len(w.tokens) <= 32 and w.tokens[0] == "[CLS]"
        seen |= {tuple(w.offsets[p]) for p in w.context_positions}
    assert seen == {tuple(o) for o in full}
    for a, b in zip(result.windows, result.windows[1:]):
        tail = [tuple(a.offsets[p]) for p in a.context_positions[-8:]]
        head = [tuple(b.offsets[p]) for p in b.context_positions[:8]]
        assert tail == head
        assert a.char_range[0] < b.char_range[0]
    # Non-ASCII characters sit where the offsets say.
    i = LONG_CONTEXT.index("café")
    pieces = [o for o in full if i <= o[0] < i + 4]  # c ##a ##f ##e: accents are stripped
    assert pieces[0][0] == i and LONG_CONTEXT[pieces[-1][0] : pieces[-1][1]] == "é"
    assert any(LONG_CONTEXT[a:b] == "北" for a, b in seen) and any(LONG_CONTEXT[a:b] == "🎉" for a, b in seen)


def test_one_window_equals_the_shared_adapter(bert_qa):
    context = "The capital of France is Paris, a city on a river."
    result = qa_method.answer_question(bert_qa, QUESTION, context)
    (window,) = result.windows
    record = analyze(bert_qa, QUESTION, context)
    np.testing.assert_allclose(window.start_logits, record.head.start_logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(window.end_logits, record.head.end_logits, rtol=1e-5, atol=1e-6)
    assert window.tokens == record.tokens
    matrix = window.span_matrix()
    c = len(window.context_positions)
    assert matrix.shape == (c, c) and np.isnan(matrix[np.tril_indices(c, -1)]).all()
    best = result.answers[0]
    i = list(window.context_positions).index(best.token_start)
    j = list(window.context_positions).index(best.token_end)
    assert matrix[i, j] == pytest.approx(best.score) and np.nanmax(matrix) == pytest.approx(best.score)


def test_qa_errors(bert_qa, tiny_models):
    with pytest.raises(CapabilityMissing, match="distilbert-base-cased-distilled-squad"):
        qa_method.answer_question(load_hf(spec_for(tiny_models["bert-mlm"]), device="cpu"), QUESTION, "Paris.")
    with pytest.raises(InputError, match="question is too long"):
        qa_method.answer_question(bert_qa, "who " * 40, "Paris.", max_tokens=32)


def test_qa_figures_escape_tokens(bert_qa):
    result = qa_method.answer_question(bert_qa, QUESTION, "The <b> capital & Paris.")
    (window,) = result.windows
    bars = F.qa_start_end_bars(window)
    heat = F.span_matrix_heatmap(window)
    labels = list(bars.data[0].x)
    assert any("&lt;" in label for label in labels) and any("&amp;" in label for label in labels)
    assert not any("<" in label for label in labels)
    assert list(heat.data[0].x) == labels
    bars.to_json(), heat.to_json()


# --- the request's token budget (CTXLENS_REQUEST_TOKENS) ------------------------------------------


class _CountingTokenizer:
    """The tokenizer, noting the length of every context it was asked to tokenise."""

    def __init__(self, tok):
        self._tok, self.contexts = tok, []

    def __call__(self, *args, **kwargs):
        if len(args) > 1:
            self.contexts.append(len(args[1]))
        return self._tok(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._tok, name)


def _same_windows(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.tokens == y.tokens
        np.testing.assert_array_equal(x.offsets, y.offsets)
        np.testing.assert_allclose(x.start_logits, y.start_logits, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(x.end_logits, y.end_logits, rtol=1e-5, atol=1e-6)


def test_the_request_budget_cuts_the_windows_and_says_where(bert_qa, monkeypatch):
    context = LONG_CONTEXT * 40  # about 20,000 characters
    whole = qa_method.answer_question(bert_qa, QUESTION, context, stride=8, max_tokens=32, token_budget=10**9)
    counting = _CountingTokenizer(bert_qa.tokenizer)
    monkeypatch.setattr(bert_qa, "tokenizer", counting)
    result = qa_method.answer_question(bert_qa, QUESTION, context, stride=8, max_tokens=32, token_budget=100)
    assert len(result.windows) == 3 == 100 // 32 and len(whole.windows) > 100
    _same_windows(result.windows, whole.windows[:3])  # the first windows of the whole context
    assert result.cut and result.read_to == result.windows[-1].char_range[1] < len(context) // 10
    assert all(x.char_end <= result.read_to for x in result.answers)
    assert max(counting.contexts) < len(context) // 10  # the rest was never tokenised
    message = qa_method.budget_message("tiny-qa", result)
    assert "CTXLENS_REQUEST_TOKENS" in message and "3 windows of 32 tokens" in message
    assert f"first {result.read_to:,} of {len(context):,} characters" in message


def test_a_context_within_the_budget_is_read_whole_and_unchanged(bert_qa, monkeypatch):
    monkeypatch.setenv("CTXLENS_REQUEST_TOKENS", "1000")
    result = qa_method.answer_question(bert_qa, QUESTION, LONG_CONTEXT, stride=8, max_tokens=32)
    unbounded = qa_method.answer_question(bert_qa, QUESTION, LONG_CONTEXT, stride=8, max_tokens=32, token_budget=10**9)
    assert not result.cut and result.read_to is None and result.token_budget == 1000
    assert qa_method.budget_message("tiny-qa", result) == ""
    _same_windows(result.windows, unbounded.windows)
    assert result.answers == unbounded.answers
    # Exactly as many windows as the budget allows is not a cut either.
    n = len(unbounded.windows)
    exact = qa_method.answer_question(bert_qa, QUESTION, LONG_CONTEXT, stride=8, max_tokens=32, token_budget=32 * n)
    assert not exact.cut and len(exact.windows) == n
    fewer = qa_method.answer_question(bert_qa, QUESTION, LONG_CONTEXT, stride=8, max_tokens=32, token_budget=32 * (n - 1))
    assert fewer.cut and len(fewer.windows) == n - 1
