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
