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
