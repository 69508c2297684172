"""Bootstrap intervals over units: clusters, and coverage on data with a known mean."""

import numpy as np
import pytest

from ldct_tf.evaluate import bootstrap


def test_clusters_group_cases_by_unit_and_keep_copies():
    clusters = bootstrap.Clusters.of(["a", "b", "a", "c", "b"])
    assert clusters.n_units == 3 and clusters.n_cases == 5
    assert [m.tolist() for m in clusters.members] == [[0, 2], [1, 4], [3]]
    assert clusters.cases(np.array([1, 1, 2])).tolist() == [1, 4, 1, 4, 3]
    draw = clusters.draw(np.random.default_rng(0))
    assert len(draw) == 3 and draw.max() < 3


def test_interval_refuses_clusters_of_another_size():
    with pytest.raises(ValueError, match="clusters hold 3 cases"):
        bootstrap.interval(4, np.mean, 10, np.random.default_rng(0),
                           clusters=bootstrap.Clusters.singletons(3))


def _coverage(repeats, clusters_for, seed=11):
    """Share of 95 % intervals of a per-slice mean that cover the true mean, on matched twins:
    both slices of a pair share their anatomy (a pair effect, SD 2) and differ by noise (SD 0.5),
    as PSNR of the two twins of one test slice do."""
    rng = np.random.default_rng(seed)
    n_pairs, truth, hits = 30, 10.0, 0
    for _ in range(repeats):
        anatomy = rng.normal(0.0, 2.0, n_pairs)
        values = truth + np.repeat(anatomy, 2) + rng.normal(0.0, 0.5, 2 * n_pairs)
        low, high = bootstrap.mean_with_interval(values, 300, rng,
                                                 clusters_for(n_pairs))["ci95"]
        hits += low <= truth <= high
    return hits / repeats


def test_pair_bootstrap_covers_a_per_slice_mean_and_the_slice_bootstrap_does_not():
    pairs = _coverage(200, lambda n: bootstrap.Clusters.of(np.repeat(np.arange(n), 2)))
    slices = _coverage(200, lambda n: bootstrap.Clusters.singletons(2 * n))
    assert 0.90 <= pairs <= 0.99, pairs  # nominal 95 %
    # treating the 60 slices as independent: intervals about 1/sqrt(2) too narrow
    assert slices < 0.90, slices


def test_bootstrap_interval_covers_the_true_mean():
    rng = np.random.default_rng(3)
    hits = 0
    for _ in range(200):
        sample = rng.normal(5.0, 2.0, 40)
        low, high = bootstrap.mean_with_interval(sample, 300, rng)["ci95"]
        hits += low <= 5.0 <= high
    assert 0.88 <= hits / 200 <= 0.99  # nominal 95 %


def test_bias_corrected_interval_is_centred_on_the_point_value():
    rng = np.random.default_rng(4)
    values = rng.normal(0.0, 1.0, 20000)
    # replicates centred on the point: the plain percentile interval
    low, high = bootstrap.bias_corrected_interval(values, 0.0)
    assert low == pytest.approx(-1.96, abs=0.05) and high == pytest.approx(1.96, abs=0.05)
    # replicates running 0.5 low (as the CHO's do): the interval moves up to centre on the point
    low, high = bootstrap.bias_corrected_interval(values - 0.5, 0.0)
    # (analytically: the 16.9 % and 99.85 % points of the replicates, -1.46 and 2.46)
    assert low == pytest.approx(-1.46, abs=0.05) and high == pytest.approx(2.46, abs=0.2)
    assert bootstrap.bias_corrected_interval([], 0.0) != bootstrap.bias_corrected_interval([], 0.0)


def test_subset_keeps_the_units_of_the_chosen_cases():
    clusters = bootstrap.Clusters.of(["a", "b", "a", "c", "b"])
    sub = clusters.subset(np.array([4, 0, 2]))  # b, a, a: positions 0, 1, 2 of the subset
    assert [m.tolist() for m in sub.members] == [[0], [1, 2]]
