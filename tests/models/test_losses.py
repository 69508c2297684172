"""Tests for ldct_tf.models.losses: the masked MSE against its formula."""

import numpy as np
import pytest

from ldct_tf.models import losses


def test_masked_mse_equals_the_formula(rng):
    y, p = rng.random((2, 8, 8, 1)), rng.random((2, 8, 8, 1))
    w = rng.random((2, 8, 8, 1))
    expected = np.sum(w * (p - y) ** 2) / np.sum(w)
    assert float(losses.masked_mse(y, p, w)) == pytest.approx(expected, rel=1e-5)
    assert float(losses.masked_mse(y, p, np.ones_like(w))) == pytest.approx(
        np.mean((p - y) ** 2), rel=1e-5)
    # the scale of the weights does not matter (normalised by their sum)
    assert float(losses.masked_mse(y, p, 7 * w)) == pytest.approx(expected, rel=1e-5)


def test_sharpen_keeps_what_lies_above_the_threshold():
    a = np.array([0.0, 0.2, 0.4, 0.7, 1.0], np.float32)
    np.testing.assert_allclose(losses.sharpen(a, 0.4).numpy(), [0, 0, 0, 0.5, 1.0], atol=1e-6)
    np.testing.assert_allclose(losses.sharpen(a, 0.0).numpy(), a)
    with pytest.raises(ValueError, match="threshold"):
        losses.sharpen(a, 1.0)


def test_map_weights_sharpen_before_the_boost():
    a = np.array([0.1, 0.6, 1.0], np.float32)
    w = losses.map_weights(a, form="boost", boost=100.0, gamma=2.0, floor=0.2,
                           threshold=0.2).numpy()
    expected = 1.0 + 100.0 * (np.maximum(a - 0.2, 0.0) / 0.8) ** 2
    np.testing.assert_allclose(w, expected, rtol=1e-6)


def test_map_weights_takes_every_setting_from_the_caller():
    # `[finetune]` owns the defaults: a call that leaves one out fails instead of using another
    a = np.array([0.1, 0.6, 1.0], np.float32)
    with pytest.raises(TypeError, match="threshold"):
        losses.map_weights(a, form="boost", boost=100.0, gamma=2.0, floor=0.2)
    with pytest.raises(TypeError):
        losses.map_weights(a, "boost", boost=100.0, gamma=2.0, floor=0.2, threshold=0.0)
