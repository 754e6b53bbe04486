"""The one cache of computed activations and results: bounded in bytes, single-flight.

Entries are weighed by their `nbytes` (records: their activations on the device; numpy
arrays; strings) and evicted least recently used once the total passes the budget
(`CTXLENS_MEMORY_MB`). A computation that knows its size beforehand (a forward: its record's
estimated bytes) reserves it first (`reserve`), so the entries it will displace are evicted
before it runs rather than after: what is cached plus what is being computed stays within
the budget. Identical concurrent requests compute once: the later callers wait for the first
one's result instead of running the same forward again.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections import OrderedDict
from concurrent.futures import Future
from contextlib import contextmanager

from .backends.limits import memory_budget_bytes


def weigh(value) -> int:
    """Bytes a cached value holds (records and arrays say so themselves; containers,
    dataclasses and plotly figures are the sum of their parts)."""
    size = getattr(value, "nbytes", None)
    if isinstance(size, int):
        return size
    if isinstance(value, (str, bytes)):
        return len(value)
    if hasattr(value, "to_plotly_json"):  # a plotly figure: what it holds, as plain data
        return weigh(value.to_plotly_json())
    if isinstance(value, dict):
        return sum(weigh(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(weigh(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # results: their fields' bytes
        return sum(weigh(getattr(value, f.name)) for f in dataclasses.fields(value))
    return sys.getsizeof(value)


class MemoryCache:
    def __init__(self, budget_bytes: int | None = None):
        self._budget = budget_bytes
        self._items: OrderedDict = OrderedDict()  # key -> (value, bytes)
        self._pending: dict = {}  # key -> Future of the computation under way
        self._lock = threading.Lock()
        self.bytes = 0
        self.reserved = 0  # bytes of computations under way (see `reserve`)

    @property
    def budget(self) -> int:
        return self._budget if self._budget is not None else memory_budget_bytes()

    def get_or_compute(self, key, compute):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
            future = self._pending.get(key)
            owner = future is None
            if owner:
                future = self._pending[key] = Future()
        if not owner:
            return future.result()  # raises the first caller's error too
        try:
            value = compute()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._pending.pop(key, None)
        self._store(key, value)
        future.set_result(value)
        return value

    def peek(self, key):
        """The cached value of `key`, or None (nothing is computed or waited for)."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key][0]

    def _store(self, key, value) -> None:
        size = weigh(value)
        with self._lock:
            if size > self.budget:
                return  # bigger than the whole budget: returned to its caller, never kept
            self._items[key] = (value, size)
            self.bytes += size
            self._evict(self.budget - self.reserved, keep=1)  # the new entry stays: its caller uses it now

    @contextmanager
    def reserve(self, nbytes: int):
        """Make room for `nbytes` about to be computed, then hold it while the block runs:
        least recently used entries are evicted first, until what is cached plus what every
        computation under way reserved fits the budget (or nothing is left to evict)."""
        with self._lock:
            self.reserved += nbytes
            self._evict(self.budget - self.reserved)
        try:
            yield
        finally:
            with self._lock:
                self.reserved -= nbytes

    def _evict(self, target: int, keep: int = 0) -> None:
        """Evict least recently used entries until `bytes` <= target or `keep` entries remain
        (the caller holds the lock)."""
        while self.bytes > target and len(self._items) > keep:
            _, (_, freed) = self._items.popitem(last=False)
            self.bytes -= freed

    def reweigh(self, key) -> None:
        """A cached record grew (a lazy name was computed): count its new size."""
        with self._lock:
            if key not in self._items:
                return
            value, old = self._items[key]
            new = weigh(value)
            self._items[key] = (value, new)
            self.bytes += new - old
            self._evict(self.budget - self.reserved, keep=1)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)


CACHE = MemoryCache()


def cached(key, compute):
    """Every result worth keeping goes through here: one budget for the whole process."""
    return CACHE.get_or_compute(key, compute)
