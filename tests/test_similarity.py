import numpy as np
import pytest
from scipy.stats import ortho_group

from ctxlens.analysis import similarity
from ctxlens.analysis.similarity import cka_matrix, linear_cka

RTOL = 1e-9


def hsic_cka(x, y):
    """CKA straight from the paper's HSIC definition, independent of the module's formulas."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    kx, ky = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.trace(a @ h @ b @ h)

    return hsic(kx, ky) / np.sqrt(hsic(kx, kx) * hsic(ky, ky))


def rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


@pytest.mark.parametrize("shape", [(30, 7), (6, 40)])
def test_self_similarity_is_one(shape):
    x = rand(*shape)
    assert linear_cka(x, x) == pytest.approx(1.0, rel=RTOL)


@pytest.mark.parametrize("shape", [(30, 7), (6, 40)])
def test_invariant_to_orthogonal_scaling_and_translation(shape):
    x, y = rand(*shape, seed=1), rand(shape[0], 5, seed=2)
    base = linear_cka(x, y)
    q = ortho_group.rvs(dim=shape[1], random_state=3)
    offset = rand(shape[1], seed=4) * 10  # the same vector added to every row
    assert linear_cka(x @ q, y) == pytest.approx(base, rel=RTOL)
    assert linear_cka(3.7 * x, y) == pytest.approx(base, rel=RTOL)
    assert linear_cka(x + offset, y) == pytest.approx(base, rel=RTOL)
    assert linear_cka(x @ q * 0.01 + offset, y @ ortho_group.rvs(dim=5, random_state=5)) == pytest.approx(
        base, rel=RTOL
    )


def test_not_invariant_to_anisotropic_linear_map():
    x, y = rand(40, 6, seed=1), rand(40, 6, seed=2)
    m = np.diag([1.0, 2.0, 5.0, 10.0, 50.0, 100.0]) @ ortho_group.rvs(dim=6, random_state=3)
    assert abs(np.linalg.det(m)) > 1e-6  # invertible
    assert linear_cka(x, x @ m) < 0.9
    assert abs(linear_cka(x @ m, y) - linear_cka(x, y)) > 1e-3


@pytest.mark.parametrize("n, p, q", [(8, 3, 5), (5, 12, 9), (50, 4, 6)])
def test_equals_direct_hsic(n, p, q):
    x = rand(n, p, seed=n)
    y = rand(n, q, seed=n + 1) + x[:, :1]  # some shared structure
    assert linear_cka(x, y) == pytest.approx(hsic_cka(x, y), rel=RTOL)


def test_default_path_choice():
    assert similarity._use_gram(5, 100, 80)  # few words, wide layers
    assert not similarity._use_gram(500, 5, 4)
    # A matrix reuses each layer's Gram: 31 layers of 576 on 1,000 words favour it; 4,000 words do not fit.
    assert not similarity._use_gram(1000, 576, 576) and similarity._use_gram(1000, 576, 576, 31, 31, shared=True)
    assert not similarity._use_gram(4000, 576, 576, 31, 31, shared=True)


@pytest.mark.parametrize("n, p, q", [(6, 40, 30), (60, 4, 3)])
def test_feature_and_gram_paths_agree(monkeypatch, n, p, q):
    x = rand(n, p, seed=1)
    y = np.hstack([x[:, :2], rand(n, q - 2, seed=2)])
    a, b = rand(3, n, p, seed=3), rand(2, n, q, seed=4)
    results = {}
    for gram in (False, True):
        monkeypatch.setattr(similarity, "_use_gram", lambda *shape, gram=gram, **kw: gram)
        results[gram] = linear_cka(x, y), cka_matrix(a, b), cka_matrix(a)
    for feature, gram in zip(results[False], results[True]):
        np.testing.assert_allclose(feature, gram, rtol=RTOL)
    assert results[False][0] == pytest.approx(hsic_cka(x, y), rel=RTOL)


@pytest.mark.parametrize("n", [5, 40])  # the Gram path and the feature path
def test_cka_matrix_matches_pairwise(n):
    a, b = rand(3, n, 8, seed=1), rand(4, n, 11, seed=2)
    a[1] += a[0]  # layers that resemble each other
    m = cka_matrix(a, b)
    assert m.shape == (3, 4)
    expected = [[linear_cka(x, y) for y in b] for x in a]
    np.testing.assert_allclose(m, expected, rtol=RTOL)


@pytest.mark.parametrize("n", [5, 40])
def test_cka_matrix_self_is_symmetric_with_unit_diagonal(n):
    a = rand(4, n, 8, seed=3)
    a[2] = a[1] @ rand(8, 8, seed=4)
    m = cka_matrix(a)
    assert m.shape == (4, 4)
    assert np.array_equal(m, m.T)  # exact by construction, not up to round-off
    np.testing.assert_allclose(np.diag(m), 1.0, rtol=RTOL)
    np.testing.assert_allclose(m, [[linear_cka(x, y) for y in a] for x in a], rtol=RTOL)


def test_independent_matrices_are_far_from_one():
    values = [linear_cka(rand(500, 10, seed=s), rand(500, 12, seed=100 + s)) for s in range(5)]
    assert max(values) < 0.1
    assert min(values) >= 0.0


def test_constant_input_gives_nan():
    x = rand(10, 4)
    row = rand(6, seed=9) * 1e8  # identical rows whose mean is not exact in floating point
    const = np.tile(row, (10, 1))
    assert np.isnan(linear_cka(x, const))
    assert np.isnan(linear_cka(const, x))
    assert np.isnan(linear_cka(np.zeros((10, 3)), x))
    a = np.stack([rand(10, 6, seed=1), const, rand(10, 6, seed=2)])
    m = cka_matrix(a)
    assert np.isnan(m[1]).all() and np.isnan(m[:, 1]).all()
    assert not np.isnan(m[np.ix_([0, 2], [0, 2])]).any()
    assert np.isnan(cka_matrix(a, rand(2, 10, 3))[1]).all()


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        linear_cka(rand(5, 3), rand(6, 3))
    with pytest.raises(ValueError):
        linear_cka(rand(1, 3), rand(1, 3))
    with pytest.raises(ValueError):
        cka_matrix(rand(2, 5, 3), rand(2, 6, 3))
    with pytest.raises(ValueError):
        cka_matrix(rand(5, 3))
