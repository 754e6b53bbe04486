"""The engine's guards: one byte-bounded single-flight cache, the interactive token limit,
the memory budget checked before a forward, and float32 unless half precision is asked for."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from ctxlens.cache import MemoryCache, weigh
from ctxlens.errors import InputError
from ctxlens.models import registry
from ctxlens.models.device import pick_dtype
from ctxlens.record import QUERY


def test_cache_evicts_least_recently_used_past_its_byte_budget():
    cache = MemoryCache(budget_bytes=3000)
    for key in "abc":
        cache.get_or_compute(key, lambda: np.zeros(1000, dtype=np.uint8))
    cache.get_or_compute("a", lambda: pytest.fail("a is cached"))  # a is now the most recent
    cache.get_or_compute("d", lambda: np.zeros(1000, dtype=np.uint8))
    assert cache.bytes == 3000 and len(cache) == 3
    calls = []
    cache.get_or_compute("b", lambda: calls.append("b") or np.zeros(10, dtype=np.uint8))
    assert calls == ["b"]  # b was the least recently used, so it went first


def test_a_value_bigger_than_the_budget_is_returned_but_never_kept():
    cache = MemoryCache(budget_bytes=100)
    value = cache.get_or_compute("big", lambda: np.zeros(1000, dtype=np.uint8))
    assert value.nbytes == 1000 and len(cache) == 0 and cache.bytes == 0


def test_identical_concurrent_requests_compute_once():
    cache, calls, barrier = MemoryCache(budget_bytes=10**6), [], threading.Barrier(8)

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return "result"

    def request(results):
        barrier.wait()
        results.append(cache.get_or_compute("same", slow))

    results: list = []
    threads = [threading.Thread(target=request, args=(results,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1] and results == ["result"] * 8


def test_a_failed_computation_reaches_every_waiter_and_is_not_kept():
    cache = MemoryCache(budget_bytes=10**6)
    with pytest.raises(ValueError):
        cache.get_or_compute("k", lambda: (_ for _ in ()).throw(ValueError("boom")))
    assert cache.get_or_compute("k", lambda: "fine") == "fine"


def test_weights_of_records_arrays_and_strings(tiny_models):
    record = registry.analyze_text(tiny_models["bert-mlm"], "the bank of the river", device="cpu")
    assert weigh(record) == record.nbytes >= record.acts.nbytes > 0
    assert weigh("abc") == 3 and weigh({"x": np.zeros(4, np.float64)}) == 32


def test_a_result_dataclass_weighs_what_its_fields_hold():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Result:
        vectors: np.ndarray
        labels: tuple[str, ...]

    assert weigh(Result(np.zeros((10, 4), np.float32), ("ab", "c"))) == 160 + 3


def test_interactive_limit_cuts_and_says_so(tiny_models, monkeypatch):
    monkeypatch.setenv("CTXLENS_MAX_TOKENS", "16")
    record = registry.analyze_text(tiny_models["bert-mlm"], "the bank " * 40, device="cpu")
    assert record.n_tokens == 16 and record.truncated and record.max_tokens == 16
    assert record.n_tokens_full == 82  # 80 words + [CLS] + [SEP]
    monkeypatch.setenv("CTXLENS_MAX_TOKENS", "0")
    with pytest.raises(ValueError, match="CTXLENS_MAX_TOKENS"):
        registry.analyze_text(tiny_models["bert-mlm"], "the bank " * 41, device="cpu")


def test_estimate_before_the_forward_matches_what_the_record_holds(tiny_models):
    lm = registry.get_model(tiny_models["gpt2"], "cpu")
    encoded = lm.encode(["the river bank was wet after the rain"])
    record = lm.records(encoded)[0]
    assert lm.estimate_bytes(encoded) == pytest.approx(record.acts.nbytes, rel=0.02)


def test_a_request_over_the_memory_budget_is_refused_before_the_forward(tiny_models, monkeypatch):
    monkeypatch.setattr(registry, "memory_budget_bytes", lambda: 10_000)
    forwards = []
    lm = registry.get_model(tiny_models["bert-mlm"], "cpu")
    monkeypatch.setattr(type(lm), "run", lambda *a, **k: forwards.append(1))
    with pytest.raises(InputError, match="memory budget"):
        registry.analyze_text(tiny_models["bert-mlm"], "a budget test " * 10, device="cpu")
    assert forwards == []


def test_a_cached_record_that_grows_is_weighed_again(tiny_models):
    from ctxlens.cache import CACHE

    record = registry.analyze_text(tiny_models["gpt2"], "the cat sat on the mat, weighed", device="cpu")
    before = CACHE.bytes
    record.acts.ensure(QUERY)
    assert CACHE.bytes > before


def test_precision_is_float32_unless_half_is_asked_for(monkeypatch):
    monkeypatch.delenv("CTXLENS_DTYPE", raising=False)
    assert pick_dtype("cpu") is torch.float32
    assert pick_dtype("cpu", float32_bytes=10**12) is torch.float32  # only a GPU too small goes half
    assert pick_dtype("cpu", "half") is torch.bfloat16
    monkeypatch.setenv("CTXLENS_DTYPE", "float16")
    assert pick_dtype("cpu") is torch.float16
    with pytest.raises(ValueError, match="unknown precision"):
        pick_dtype("cpu", "float8")


def test_a_half_precision_model_says_so_and_is_a_separate_model(tiny_models):
    half = registry.get_model(tiny_models["bert-mlm"], "cpu", dtype="bfloat16")
    full = registry.get_model(tiny_models["bert-mlm"], "cpu")
    assert half is not full and half.precision == "bfloat16" and full.precision == "float32"
    record = registry.analyze_text(tiny_models["bert-mlm"], "the bank", device="cpu", dtype="bfloat16")
    assert record.precision == "bfloat16" and record.hidden(0).dtype == np.float32


def test_the_characters_removed_from_input_are_exactly_unicodes_controls():
    import unicodedata

    from ctxlens.validate import clean_text

    every = "".join(map(chr, range(0x110000)))
    kept = set().union(*(clean_text("x" + every[i:i + 90_000]) for i in range(0, len(every), 90_000)))
    controls = {c for c in every if unicodedata.category(c) in ("Cc", "Cs") and c not in "\n\t"}
    assert kept.isdisjoint(controls) and len(kept) == 0x110000 - len(controls)


# --- the request's token budget (CTXLENS_REQUEST_TOKENS) and eviction before the forward -----

BUDGET_SENTENCES = [f"Sentence {i}: the bank of the river was wet after rain number {i}." for i in range(40)]


def test_a_sentence_list_past_the_request_budget_is_cut_and_says_so(tiny_models, monkeypatch):
    from ctxlens.methods.extraction import analyze_all

    name = tiny_models["bert-mlm"]
    monkeypatch.setenv("CTXLENS_REQUEST_TOKENS", "100")
    records = analyze_all(name, BUDGET_SENTENCES, device="cpu")
    cut = records.cut
    assert cut.cut and cut.n_total == 40 and cut.budget == 100 and len(records) == cut.n_read >= 1
    lengths = [len(e.input_ids) for e in registry.get_model(name, "cpu").encode(BUDGET_SENTENCES)]
    assert cut.tokens_read == sum(r.n_tokens for r in records) == sum(lengths[:cut.n_read]) <= 100
    assert cut.tokens_read + lengths[cut.n_read] > 100  # the longest prefix within the budget
    message = cut.message()
    assert "CTXLENS_REQUEST_TOKENS" in message and f"first {cut.n_read:,} of 40 sentences" in message
    # What was read is what the prefix alone gives.
    alone = analyze_all(name, BUDGET_SENTENCES[:cut.n_read], device="cpu", token_budget=10**9)
    for a, b in zip(records, alone):
        np.testing.assert_array_equal(a.hidden_states, b.hidden_states)


def test_a_sentence_list_within_the_budget_is_read_whole_and_unchanged(tiny_models):
    from ctxlens.methods.extraction import analyze_all, iter_analyses

    name = tiny_models["bert-mlm"]
    records = analyze_all(name, BUDGET_SENTENCES[:5], device="cpu")  # the default budget
    assert not records.cut.cut and records.cut.n_read == len(records) == 5
    before = [r for _, chunk in iter_analyses(name, BUDGET_SENTENCES[:5], device="cpu") for r in chunk]
    for a, b in zip(records, before):
        np.testing.assert_array_equal(a.hidden_states, b.hidden_states)


def test_several_models_read_the_same_sentences_within_the_budget(tiny_models):
    from ctxlens.methods.extraction import sentences_within_budget

    bert, gpt2 = tiny_models["bert-mlm"], tiny_models["gpt2"]
    each = {m: sentences_within_budget(m, BUDGET_SENTENCES, device="cpu", budget=120).n_read for m in (bert, gpt2)}
    both = sentences_within_budget([bert, gpt2], BUDGET_SENTENCES, device="cpu", budget=120)
    assert both.n_read == min(each.values()) and both.tokens_read <= 120
    elmo = sentences_within_budget("elmo-tiny-test", BUDGET_SENTENCES, device="cpu", budget=120)
    assert elmo.unit == "words" and "120 words in all" in elmo.message()
    read = [registry.analyze_text("elmo-tiny-test", s, device="cpu") for s in BUDGET_SENTENCES[:elmo.n_read]]
    assert elmo.tokens_read == sum(r.n_tokens for r in read) <= 120  # ELMo's tokens: its words


def test_a_long_list_is_tokenised_only_as_far_as_the_budget_reaches(tiny_models, monkeypatch):
    from ctxlens.methods import extraction

    lm = registry.get_model(tiny_models["bert-mlm"], "cpu")
    seen = []
    encode = type(lm).encode
    monkeypatch.setattr(type(lm), "encode", lambda self, texts, *a, **k: seen.extend(texts) or encode(self, texts, *a, **k))
    cut = extraction.sentences_within_budget(tiny_models["bert-mlm"], BUDGET_SENTENCES * 50, device="cpu", budget=100)
    assert cut.n_total == 2000 and len(seen) <= cut.n_read + extraction._COUNT_CHUNK


def test_the_cache_evicts_before_the_forward(tiny_models, monkeypatch):
    """A cache filled to its budget, then a new analysis: what is cached plus the new record
    never passes the budget, also while the forward runs."""
    from ctxlens import cache as cache_module
    from ctxlens.cache import CACHE

    name = tiny_models["gpt2"]
    lm = registry.get_model(name, "cpu")
    one = lm.estimate_bytes(lm.encode(["eviction test sentence number 0"]))
    budget = 3 * one + one // 2
    monkeypatch.setattr(cache_module, "memory_budget_bytes", lambda: budget)
    monkeypatch.setattr(registry, "memory_budget_bytes", lambda: budget)
    CACHE.clear()
    peaks = []
    records = type(lm).records

    def watched(self, encoded, names=None):
        out = records(self, encoded, names)
        peaks.append(CACHE.bytes + sum(r.nbytes for r in out))  # what is held once the forward ran
        return out

    monkeypatch.setattr(type(lm), "records", watched)
    for i in range(8):
        registry.analyze_text(name, f"eviction test sentence number {i}", device="cpu")
        assert CACHE.bytes <= budget
    assert len(peaks) == 8 and max(peaks) <= budget
    assert len(CACHE) == 3  # the budget holds three records; the oldest went before each forward
    CACHE.clear()


def test_a_reservation_evicts_least_recently_used_first_and_is_released():
    cache = MemoryCache(budget_bytes=3000)
    for key in "abc":
        cache.get_or_compute(key, lambda: np.zeros(1000, dtype=np.uint8))
    with cache.reserve(1500):
        assert cache.bytes == 1000 and cache.reserved == 1500  # a and b went first, c stays
        cache.get_or_compute("c", lambda: pytest.fail("c is cached"))
    assert cache.reserved == 0
