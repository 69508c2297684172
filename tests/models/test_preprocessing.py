"""The HU <-> network-range mapping, for NumPy and TensorFlow alike."""

import numpy as np
import pytest
import tensorflow as tf

from ldct_tf.models.preprocessing import denormalize_hu, normalize_hu


def test_normalize_matches_formula_and_clips():
    hu = np.array([-2000.0, -1024.0, 0.0, 1000.0, 3072.0, 5000.0], np.float32)
    expected = (np.clip(hu, -1024.0, 3072.0) + 1024.0) / 4096.0
    np.testing.assert_allclose(normalize_hu(hu), expected, rtol=1e-6)
    assert normalize_hu(hu).dtype == np.float32


def test_numpy_and_tensor_agree_and_round_trip(rng):
    hu = rng.uniform(-1024, 3072, (4, 8, 8)).astype(np.float32)
    as_tensor = normalize_hu(tf.constant(hu))
    assert isinstance(as_tensor, tf.Tensor)
    np.testing.assert_allclose(as_tensor.numpy(), normalize_hu(hu), rtol=1e-6)
    np.testing.assert_allclose(denormalize_hu(normalize_hu(hu)), hu, atol=1e-3)
    np.testing.assert_allclose(denormalize_hu(as_tensor).numpy(), hu, atol=1e-3)


def test_integer_tensors_are_accepted():
    out = normalize_hu(tf.constant([[-1024, 3072]], tf.int16))
    np.testing.assert_allclose(out.numpy(), [[0.0, 1.0]])


def test_python_scalars():
    assert float(normalize_hu(0.0)) == pytest.approx(1024.0 / 4096.0)
