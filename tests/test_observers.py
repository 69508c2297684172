"""CHO against the closed-form ideal channelized observer; bootstrap coverage."""

import numpy as np
import pytest
from scipy import stats

from ldct_tf import bootstrap, observers


def _disk(size, radius, contrast):
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[:size, :size]
    return contrast * (np.hypot(yy - c, xx - c) <= radius)


def test_cho_on_white_noise_matches_the_analytic_dprime():
    rng = np.random.default_rng(0)
    size, sd, n = 25, 20.0, 1500
    signal = _disk(size, 4.0, 6.0)
    channels = observers.laguerre_gauss_channels(size, width_px=2 / 3 * 8.0)
    expected = observers.ideal_channelized_dprime(signal, channels, sd)
    background = rng.normal(0.0, sd, (n, size, size))
    present = background[: n // 2] + signal
    absent = rng.normal(0.0, sd, (n // 2, size, size))
    result = observers.cho_repeated(present, absent, channels, 5, rng)
    assert result["dprime"] == pytest.approx(expected, rel=0.10)
    assert result["auc"] == pytest.approx(stats.norm.cdf(result["dprime"] / np.sqrt(2)), abs=0.01)
    assert result["auc_empirical"] == pytest.approx(result["auc"], abs=0.05)


def test_channels_are_centred_and_the_first_is_a_gaussian():
    ch = observers.laguerre_gauss_channels(15, 5.0, 3)
    first = ch[:, 0].reshape(15, 15)
    assert np.unravel_index(first.argmax(), first.shape) == (7, 7)
    assert first[7, 7] == pytest.approx(np.sqrt(2) / 5.0)


def test_bootstrap_interval_covers_the_true_mean():
    rng = np.random.default_rng(3)
    hits = 0
    for _ in range(200):
        sample = rng.normal(5.0, 2.0, 40)
        low, high = bootstrap.mean_with_interval(sample, 300, rng)["ci95"]
        hits += low <= 5.0 <= high
    assert 0.88 <= hits / 200 <= 0.99  # nominal 95 %
