"""Contrast-detail bins: the binning against its formula, the per-bin CHO against the closed-form
channelized ideal observer on white noise, and the per-bin fraction localized against the scanning
observer's own flags."""

import numpy as np
import pytest

from ldct_tf.config import Config
from ldct_tf.evaluate import contrast_detail, localization, observers, readings
from ldct_tf.evaluate import sets as image_sets

SPACING = 2.0  # a power of 2: diameter (mm) -> radius (px) -> diameter (mm) is exact


def _expected_bin(x: float, low: float, high: float, n: int) -> int:
    """Written here: edges ``low + k (high - low) / n``; a bin holds [edge_k, edge_k+1), the last
    one its top edge too; the bin is the number of inner edges at or below ``x``."""
    edges = [low + k * (high - low) / n for k in range(n + 1)]
    return sum(x >= e for e in edges[1:-1])


def _split(lesions, rng, size=32, noise_sd=15.0, pairs_per_unit=1, centred=False):
    """A test split of matched twins on white noise: ``lesions`` are (diameter mm, signed contrast
    HU); the present twin adds a hard disk, ``pairs_per_unit`` consecutive pairs share a unit."""
    test = image_sets.Slices()
    yy, xx = np.mgrid[:size, :size]
    for k, (diameter, contrast) in enumerate(lesions):
        radius = diameter / 2.0 / SPACING
        row, col = (size // 2, size // 2) if centred else rng.integers(size // 2 - 4,
                                                                      size // 2 + 5, 2)
        disk = contrast * (np.hypot(yy - row, xx - col) <= radius)
        for label, signal in ((1, disk), (0, np.zeros_like(disk))):
            test.ldct.append(signal + rng.normal(0.0, noise_sd, disk.shape))
            test.ndct.append(signal)
            test.label.append(label)
            test.lesion.append((float(row), float(col), radius, contrast))
            test.pair_id.append(k)
            test.spacing_mm.append(SPACING)
            test.unit.append(f"slice/{k // pairs_per_unit}")
    return test


def _config(diameter_mm=(5.0, 9.0), contrast_hu=(20.0, 40.0), **evaluate):
    config = Config()
    return config.replace(evaluate=config.evaluate.__class__(**evaluate),
                          lesion_test=config.lesion_test.__class__(diameter_mm=diameter_mm,
                                                                   contrast_hu=contrast_hu))


# on the edges (5, 7, 9 mm; 20, 30, 40 HU), just below them, inside, and of either sign
LESIONS = [(5.0, 20.0), (6.0, -20.0), (6.999, 29.99), (7.0, -30.0), (7.0, 30.0), (8.0, -25.0),
           (8.5, 35.0), (9.0, -40.0), (5.5, 40.0), (6.5, -33.0), (7.5, 21.0), (8.999, -39.5)]


@pytest.mark.parametrize("n", [2, 4])
def test_bins_follow_the_formula_on_edges_and_ignore_the_sign(n):
    test = _split(LESIONS, np.random.default_rng(0))
    pairs = readings.twin_pairs(test)
    bins = contrast_detail.twin_bins(test, pairs, (5.0, 9.0), (20.0, 40.0), n)
    assert len(bins) == n * n
    d_edges = [5.0 + k * 4.0 / n for k in range(n + 1)]
    c_edges = [20.0 + k * 20.0 / n for k in range(n + 1)]
    found = {}
    for b in bins:  # diameters major
        i, j = d_edges.index(b["diameter_mm"][0]), c_edges.index(b["contrast_hu"][0])
        assert (b["diameter_mm"], b["contrast_hu"]) == ([d_edges[i], d_edges[i + 1]],
                                                        [c_edges[j], c_edges[j + 1]])
        found.update({int(m): (i, j) for m in b["members"]})
    for m, (p, _) in enumerate(pairs):
        diameter, contrast = LESIONS[test.pair_id[p]]
        assert found[m] == (_expected_bin(diameter, 5.0, 9.0, n),
                            _expected_bin(abs(contrast), 20.0, 40.0, n)), (diameter, contrast)
    if n == 2:  # the edges themselves: 7 mm and 30 HU go up, 9 mm and 40 HU stay in the last bin
        by_lesion = {LESIONS[test.pair_id[p]]: found[m] for m, (p, _) in enumerate(pairs)}
        assert by_lesion[(7.0, -30.0)] == by_lesion[(7.0, 30.0)] == (1, 1)
        assert by_lesion[(6.999, 29.99)] == (0, 0) and by_lesion[(9.0, -40.0)] == (1, 1)
        assert by_lesion[(5.0, 20.0)] == (0, 0)


@pytest.fixture(scope="module")
def localized():
    """A small split (2 pairs per slice) measured by `evaluate_sets`, then binned."""
    test = _split(LESIONS * 2, np.random.default_rng(3), noise_sd=25.0, pairs_per_unit=2)
    config = _config(resamples=40, cho_splits=2)
    sets = {"ldct": test.ldct, "ndct": test.ndct}
    _, cases = readings.evaluate_sets(config, "unused-workdir", test, sets)
    return test, sets, contrast_detail.measure(config, test, sets, cases)


def test_fraction_localized_per_bin_is_the_mean_of_the_scanning_observers_flags(localized):
    test, sets, detail = localized
    pairs = readings.twin_pairs(test)
    bin_of = [_expected_bin(2 * test.lesion[p][2] * SPACING, 5.0, 9.0, 2) * 2
              + _expected_bin(abs(test.lesion[p][3]), 20.0, 40.0, 2) for p, _ in pairs]
    assert detail["diameter_mm_edges"] == [5.0, 7.0, 9.0]
    assert detail["contrast_hu_edges"] == [20.0, 30.0, 40.0]
    for name in ("ldct", "ndct"):
        correct = localization.localize_pairs([sets[name][p] for p, _ in pairs],
                                              [sets[name][a] for _, a in pairs],
                                              [test.lesion[p] for p, _ in pairs])["correct"]
        for k, (b, entry) in enumerate(zip(detail["bins"], detail["sets"][name])):
            members = [m for m in range(len(pairs)) if bin_of[m] == k]
            assert b["pairs"] == len(members)
            assert b["units"] == len({test.unit[pairs[m][0]] for m in members})
            located = entry["fraction_localized"]
            assert located["value"] == pytest.approx(np.mean(correct[members]))
            assert located["ci95"][0] <= located["value"] <= located["ci95"][1]
            # too few slices in a bin: no CHO, still the fraction localized
            assert (entry["cho"] is None) == (b["units"] < readings.MIN_CHO_PAIRS)
    assert 0 < np.mean([e["fraction_localized"]["value"] for e in detail["sets"]["ldct"]]) < 1
    assert {e["cho"] is None for e in detail["sets"]["ldct"]} == {True, False}


def test_cho_per_bin_on_white_noise_matches_the_closed_form():
    # two bins of 10 mm lesions (radius 2.5 px): weak (12 HU) and strong (25 HU), dark or bright
    n, sd = 200, 20.0
    rng = np.random.default_rng(11)
    lesions = [(10.0, 12.0 * s) for s in rng.choice([-1, 1], n)] + [
        (10.0, 25.0 * s) for s in rng.choice([-1, 1], n)]
    test = _split(lesions, rng, size=24, noise_sd=sd, centred=True)
    config = _config(diameter_mm=(8.0, 16.0), contrast_hu=(10.0, 30.0), resamples=20,
                     cho_splits=10)
    _, cases = readings.evaluate_sets(config, "unused-workdir", test,
                                      {"ldct": test.ldct, "ndct": test.ndct})
    detail = contrast_detail.measure(config, test, {"ldct": test.ldct}, cases)
    weak, strong, *empty = detail["sets"]["ldct"]
    assert [b["pairs"] for b in detail["bins"]] == [n, n, 0, 0]
    assert all(e["cho"] is None and e["fraction_localized"]["value"] is None for e in empty)
    # the closed form on the ROI the CHO reads (2 ceil(2.5 R) + 1 px), channels 2/3 of 10 mm
    radius = 10.0 / 2.0 / SPACING
    size = 2 * int(np.ceil(2.5 * radius)) + 1
    yy, xx = np.mgrid[:size, :size]
    disk = np.hypot(yy - size // 2, xx - size // 2) <= radius
    channels = observers.laguerre_gauss_channels(size, 2.0 / 3.0 * 2.0 * radius)
    for entry, contrast in ((weak, 12.0), (strong, 25.0)):
        expected = observers.ideal_channelized_dprime(contrast * disk, channels, sd)
        assert entry["cho"]["dprime"] == pytest.approx(expected, rel=0.15), contrast
        assert entry["cho"]["dprime_ci95"][0] <= entry["cho"]["dprime"]
    assert strong["cho"]["dprime"] > weak["cho"]["dprime"]
