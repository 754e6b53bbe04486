import numpy as np
import pytest

from ctxlens.analysis import neighbours
from ctxlens.analysis.neighbours import nearest
from ctxlens.errors import InputError


def rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


def brute_force(index, queries, k, exclude=None):
    """Normalise, take every dot product, sort by cosine then row index (stable), skipping unusable rows."""
    norms = np.linalg.norm(index, axis=1)
    usable = norms > 0 if exclude is None else (norms > 0) & ~exclude
    unit = index / np.where(norms > 0, norms, 1.0)[:, None]
    sims = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ unit.T
    ids, cos = [], []
    for row in sims:
        order = [i for i in np.lexsort((np.arange(len(row)), -row)) if usable[i]][:k]
        ids.append(order)
        cos.append(row[order])
    return np.array(ids), np.array(cos)


@pytest.mark.parametrize("k", [1, 3, 10, 57])
@pytest.mark.parametrize("n_queries", [1, 4, 25])
def test_matches_brute_force(k, n_queries):
    index, queries = rand(200, 16, seed=k), rand(n_queries, 16, seed=100 + n_queries)
    ids, cos = nearest(index, queries, k)
    want_ids, want_cos = brute_force(index, queries, k)
    assert ids.shape == cos.shape == (n_queries, k)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(cos, want_cos, rtol=0, atol=1e-9)
    assert (np.diff(cos, axis=1) <= 0).all()


def test_single_query_vector_is_one_row():
    index = rand(30, 5)
    ids, cos = nearest(index, index[7] * 2.5, k=3)
    assert ids.shape == cos.shape == (1, 3)
    assert ids[0, 0] == 7
    assert cos[0, 0] == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_array_equal(ids, brute_force(index, index[7:8], 3)[0])


def test_exclude_mask_is_honoured():
    index, queries = rand(50, 8, seed=1), rand(6, 8, seed=2)
    exclude = np.zeros(50, dtype=bool)
    exclude[nearest(index, queries, 1)[0][:, 0]] = True  # every query's best match
    exclude[::5] = True
    ids, cos = nearest(index, queries, 10, exclude=exclude)
    assert not exclude[ids].any()
    want_ids, want_cos = brute_force(index, queries, 10, exclude)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(cos, want_cos, rtol=0, atol=1e-9)


def test_zero_rows_are_never_returned():
    index = rand(20, 4, seed=3)
    index[[0, 5, 11]] = 0.0
    ids, cos = nearest(index, rand(5, 4, seed=4), k=20)
    assert ids.shape == (5, 17)
    assert not np.isin(ids, [0, 5, 11]).any()
    assert np.isfinite(cos).all()


def test_ties_are_ordered_by_row_index():
    base = rand(12, 6, seed=5)
    dup = base[3]
    # Exact duplicates (some rescaled: same cosine) scattered among the rows, more than k + EXTRA of them,
    # so the tie at the k-th place outlasts the first fetch and must be fetched again.
    positions = [1, 4, 6, 9, 13, 15, 16, 20, 22, 25, 28, 30]
    k = 3
    assert len(positions) > k + neighbours.EXTRA
    index = rand(32, 6, seed=6)
    for i, p in enumerate(positions):
        index[p] = dup * (1 + i % 3)
    # The first rows are a hair lower (well within TIE), so sklearn ranks them last among the tied rows.
    index[positions[:k]] += 1e-6 * rand(k, 6, seed=7) * np.linalg.norm(dup)
    ids, cos = nearest(index, dup, k=k)
    np.testing.assert_array_equal(ids[0], positions[:k])
    np.testing.assert_allclose(cos[0], 1.0, atol=1e-9)
    ids, _ = nearest(index, np.stack([dup, -dup]), k=len(positions) + 2)
    np.testing.assert_array_equal(ids[0, : len(positions)], positions)
    assert set(ids[1]).isdisjoint(positions)


def test_near_ties_within_tolerance_go_by_index():
    q = np.array([1.0, 0.0])
    index = np.array([[1.0, 0.0], [1.0, 1e-4], [1.0, 0.0], [0.0, 1.0]])  # cos of row 1 is 1 - 5e-9
    ids, cos = nearest(index, q, k=3)
    np.testing.assert_array_equal(ids[0], [0, 1, 2])
    assert cos[0, 1] < 1.0


def test_k_larger_than_usable_rows_returns_all():
    index = rand(7, 3, seed=8)
    index[2] = 0.0
    exclude = np.zeros(7, dtype=bool)
    exclude[4] = True
    ids, cos = nearest(index, rand(2, 3, seed=9), k=100, exclude=exclude)
    assert ids.shape == cos.shape == (2, 5)
    for row in ids:
        assert sorted(row) == [0, 1, 3, 5, 6]
    all_excluded = nearest(index, rand(3, seed=1), k=3, exclude=np.ones(7, dtype=bool))
    assert all_excluded[0].shape == (1, 0)


def test_bad_input_raises():
    index = rand(10, 4)
    with pytest.raises(InputError):
        nearest(index, rand(4), k=0)
    with pytest.raises(InputError):
        nearest(index, rand(2, 5), k=3)
    with pytest.raises(InputError):
        nearest(np.empty((0, 4)), rand(4), k=3)
    with pytest.raises(InputError):
        nearest(index, np.zeros(4), k=3)
    with pytest.raises(InputError):
        nearest(index, rand(4), k=3, exclude=np.array([1, 2]))
