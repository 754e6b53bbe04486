import numpy as np
import pytest

from ctxlens.analysis.mix import mix_weights, scalar_mix

rng = np.random.default_rng(0)


def test_equal_weights_give_the_mean_times_gamma():
    layers = rng.normal(size=(13, 7, 48)).astype(np.float32)  # a BERT-like [layers + 1, T, dim]
    mixed = scalar_mix(layers, [0.3] * 13, gamma=2.5)
    assert mixed.shape == (7, 48) and mixed.dtype == np.float32
    np.testing.assert_allclose(mixed, 2.5 * layers.mean(axis=0), rtol=1e-5, atol=1e-6)


def test_one_huge_weight_selects_that_layer():
    layers = rng.normal(size=(3, 5, 32)).astype(np.float32)
    mixed = scalar_mix(layers, [0.0, 1000.0, 0.0], gamma=1.0)  # softmax must not overflow
    np.testing.assert_allclose(mixed, layers[1], rtol=0, atol=1e-6)


def test_weights_are_a_softmax():
    w = mix_weights([1.0, 2.0, 3.0])
    np.testing.assert_allclose(w, np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum())
    assert w.sum() == pytest.approx(1.0)


def test_weighted_sum_by_hand():
    layers = np.array([[[1.0, 0.0]], [[0.0, 4.0]]], dtype=np.float32)  # 2 layers, 1 token
    s = [0.0, np.log(3.0)]  # softmax → 1/4, 3/4
    np.testing.assert_allclose(scalar_mix(layers, s, 2.0), [[0.5, 6.0]], rtol=1e-6)


def test_one_weight_per_layer_is_required():
    with pytest.raises(ValueError, match="one weight per layer"):
        scalar_mix(np.zeros((3, 2, 4), np.float32), [1.0, 2.0], 1.0)
