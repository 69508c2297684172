"""Image-quality and detection metrics against formulas written here."""

import numpy as np
import pytest

from ldct_tf import metrics


def test_auc_equals_the_pairwise_count(rng):
    scores = rng.integers(0, 5, 40).astype(float)  # many ties
    labels = rng.integers(0, 2, 40)
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairs = [(p > n) + 0.5 * (p == n) for p in pos for n in neg]
    assert metrics.auc(scores, labels) == pytest.approx(np.mean(pairs))


def test_auc_extremes_and_missing_class():
    assert metrics.auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert metrics.auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert np.isnan(metrics.auc([0.1, 0.2], [1, 1]))


def test_youden_threshold_separates_separable_scores():
    t = metrics.youden_threshold([0.1, 0.3, 0.6, 0.9], [0, 0, 1, 1])
    assert 0.3 < t <= 0.6


def test_noise_index_of_white_noise_in_uniform_tissue(rng):
    image = 40.0 + rng.normal(0.0, 12.0, (128, 128))
    # the mode of the sample SD of 81 normal values sits just below sigma
    assert metrics.noise_index_hu(image) == pytest.approx(12.0, rel=0.08)
    assert metrics.noise_index_hu(np.full((64, 64), -1000.0)) is None
