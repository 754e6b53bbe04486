"""The token → word alignment against its definition, computed by brute force."""

import numpy as np
import pytest

from ctxlens.analysis.words import align_tokens_to_words, split_words
from ctxlens.backends.hf import analyze
from ctxlens.models.loading import load_hf, spec_for

TEXTS = [
    ("The bank raised its rates.", None),
    ("北京欢迎你 😀 <b>x</b>   spaced   out\n\nlines", None),
    ("don't  stop-me now!!", "Who said it? It was me."),
    ("  leading and trailing  ", "x"),
]


def brute_force(offsets, special, segments, words) -> np.ndarray:
    out = np.full(len(offsets), -1)
    for t, (a, b) in enumerate(offsets):
        if special[t]:
            continue
        for i, w in enumerate(words):
            if w.segment == segments[t] and w.start < b and w.end > a:
                out[t] = i
                break
    return out


@pytest.mark.parametrize("kind", ["bert-mlm", "gpt2", "roberta"])
def test_alignment_equals_the_brute_force_definition(tiny_models, kind):
    lm = load_hf(spec_for(tiny_models[kind]), device="cpu")
    for text, pair in TEXTS:
        record = analyze(lm, text, pair if kind != "gpt2" else None)
        words = split_words(record.text, 0) + (split_words(record.text_pair, 1) if record.text_pair else [])
        got = align_tokens_to_words(record.offsets, record.special_mask, record.segment_ids, words)
        want = brute_force(record.offsets, record.special_mask, record.segment_ids, words)
        np.testing.assert_array_equal(got, want)
        assert (got >= 0).any()
