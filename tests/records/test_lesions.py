"""Lesions in TensorFlow ops against the NumPy formulas of `ldct_tf.ct.lesions`."""

import numpy as np
import pytest

from ldct_tf.ct.lesions import Lesion, insert_lesion
from ldct_tf.records import lesions


@pytest.mark.parametrize("profile", ["disk", "gaussian"])
def test_lesion_patterns_match_lesions_module_on_a_zero_image(profile):
    cases = [(10.3, 7.8, 3.2, -55.0), (0.0, 15.0, 5.0, 70.0), (20.5, -2.0, 4.0, 40.0)]
    rows, cols, radii, contrasts = map(np.array, zip(*cases))
    got = lesions.lesion_patterns(16, rows, cols, radii, contrasts, profile).numpy()
    for pattern, (row, col, radius, contrast) in zip(got, cases):
        want = insert_lesion(np.zeros((16, 16)), Lesion(row, col, radius, contrast, profile))
        np.testing.assert_allclose(pattern, want, atol=1e-3)
