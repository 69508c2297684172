"""CHO against the closed-form ideal channelized observer; intervals that cover a known d'."""

import numpy as np
import pytest
from scipy import stats

from ldct_tf.evaluate import bootstrap, observers


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


def _channel_data(rng, n, dprime, channels=5):
    """Channel outputs of ``n`` matched cases with a known d': unit covariance, the mean shifted
    by ``dprime`` along one channel. As ROIs of 1 x channels pixels with identity channels."""
    shift = np.zeros(channels)
    shift[0] = dprime
    present = rng.normal(size=(n, channels)) + shift
    absent = rng.normal(size=(n, channels))
    return present[:, None, :], absent[:, None, :], np.eye(channels)


@pytest.mark.slow
def test_cho_intervals_cover_a_known_dprime_and_the_old_resampling_does_not():
    # 60 matched pairs and 5 channels, as a test split; d' = 2.5 (AUC 0.96)
    truth, repeats, hits, old_hits = 2.5, 100, 0, 0
    width, old_width, old_shift = [], [], []
    for r in range(repeats):
        rng = np.random.default_rng(r)
        present, absent, channels = _channel_data(rng, 60, truth)
        study = observers.cho_study(present, absent, channels,
                                    bootstrap.Clusters.singletons(60), 4, 120, r)
        low, high = study["dprime_ci95"]
        hits += low <= truth <= high
        width.append(high - low)
        low, high = np.percentile(observers.position_split_replicates(
            present, absent, channels, 120, rng), [2.5, 97.5])
        old_hits += low <= truth <= high
        old_width.append(high - low)
        old_shift.append((low + high) / 2 - study["dprime"])
    assert 0.90 <= hits / repeats <= 0.99, hits
    # The old intervals are not those of the reported value: copies on both sides shift them up
    # (the leak) and one split per resample widens them by split noise the point value (several
    # splits) does not have. Net, they over-cover: at or above the band's upper edge.
    assert old_hits / repeats >= 0.99, old_hits
    assert np.mean(old_shift) > 0.1, np.mean(old_shift)
    assert np.mean(old_width) > 1.1 * np.mean(width), (np.mean(old_width), np.mean(width))


def test_cho_never_trains_and_tests_on_one_unit():
    # every unit holds two identical copies of a pair (like twins of one slice): splitting cases
    # one by one would put a copy on each side and read the noise the template learnt as signal
    rng = np.random.default_rng(5)
    present, absent, channels = _channel_data(rng, 20, 0.0, channels=10)
    present, absent = np.repeat(present, 2, axis=0), np.repeat(absent, 2, axis=0)
    by_unit = bootstrap.Clusters.of(np.repeat(np.arange(20), 2))
    leaky = observers.cho_study(present, absent, channels, bootstrap.Clusters.singletons(40),
                                10, 20, 0)
    clean = observers.cho_study(present, absent, channels, by_unit, 10, 20, 0)
    assert leaky["dprime"] > 0.4  # no signal at all, yet a "detection"
    assert abs(clean["dprime"]) < 0.3 and clean["dprime_ci95"][0] < 0 < clean["dprime_ci95"][1]


def test_paired_difference_is_zero_for_a_set_against_itself_and_positive_for_more_signal():
    rng = np.random.default_rng(2)
    present, absent, channels = _channel_data(rng, 80, 1.0)
    clusters = bootstrap.Clusters.singletons(80)
    weak = observers.cho_study(present, absent, channels, clusters, 4, 100, 3)
    strong = observers.cho_study(present + np.eye(5)[0] * 1.0, absent, channels, clusters, 4,
                                 100, 3)
    same = observers.paired_difference(weak, weak)
    assert same["value"] == 0.0 and same["ci95"] == [0.0, 0.0]
    diff = observers.paired_difference(strong, weak)
    assert diff["value"] > 0 and diff["ci95"][0] > 0
    assert weak["auc_ci95"][0] <= weak["auc"] <= weak["auc_ci95"][1]
