"""Scanning observer and LROC analysis against white-noise simulations and brute-force sums."""

import numpy as np
import pytest
from scipy import ndimage

from ldct_tf.ct.lesions import Lesion
from ldct_tf.evaluate import localization, metrics

SIZE, R = 64, 3.0


def _hard_disk(row, col, radius, contrast, size=SIZE):
    yy, xx = np.mgrid[:size, :size]
    return contrast * (np.hypot(yy - row, xx - col) <= radius)


def _white_noise_pairs(rng, n, contrast):
    """``n`` twin pairs of unit white noise; the present twin holds a hard disk of radius R at
    a random float centre well inside the image (the search disk of 4 R stays inside)."""
    centres = rng.uniform(4 * R + 2, SIZE - 4 * R - 3, (n, 2))
    absent = rng.normal(0.0, 1.0, (n, SIZE, SIZE))
    present = rng.normal(0.0, 1.0, (n, SIZE, SIZE))
    present += np.stack([_hard_disk(r, c, R, contrast) for r, c in centres])
    lesions = [(r, c, R, contrast if contrast else 1.0) for r, c in centres]
    return present, absent, lesions, centres


def _discrete_chance(centre, search, hit):
    """Sites within ``hit`` over sites within ``search`` of ``centre`` on the pixel grid."""
    c = np.floor(centre)
    yy, xx = np.mgrid[-int(search) - 2:int(search) + 3, -int(search) - 2:int(search) + 3]
    d = np.hypot(yy + c[0] - centre[0], xx + c[1] - centre[1])
    return np.sum(d <= hit) / np.sum(d <= search)


def test_fraction_localized_rises_with_contrast_to_near_certainty():
    n, fractions, areas = 300, [], []
    for contrast in (0.0, 0.5, 1.0, 2.0):  # contrast / noise SD
        # the same seed at every contrast: common backgrounds and centres
        present, absent, lesions, _ = _white_noise_pairs(np.random.default_rng(5), n, contrast)
        result = localization.localize_pairs(present, absent, lesions)
        fractions.append(localization.fraction_localized(result["correct"]))
        areas.append(localization.lroc_area(result["present_rating"], result["correct"],
                                            result["absent_rating"]))
        assert areas[-1] <= fractions[-1] + 1e-12
    assert np.all(np.diff(fractions) > 0), fractions
    assert np.all(np.diff(areas) > 0), areas
    assert fractions[-1] > 0.9 and areas[-1] > 0.9
    assert fractions[0] < 0.15


def test_without_signal_the_fraction_localized_is_chance():
    rng = np.random.default_rng(11)
    n = 400
    present, absent, lesions, centres = _white_noise_pairs(rng, n, 0.0)
    result = localization.localize_pairs(present, absent, lesions, search_factor=4.0,
                                         hit_factor=1.0)
    chance = np.mean([_discrete_chance(c, 4 * R, R) for c in centres])
    assert chance == pytest.approx(localization.chance_fraction(4, 1), abs=0.005)
    band = 3.0 * np.sqrt(chance * (1 - chance) / n)
    assert abs(result["correct"].mean() - chance) < band
    # with no signal the ratings of the twins are exchangeable: ROC AUC near 1/2
    roc = metrics.auc(np.concatenate([result["present_rating"], result["absent_rating"]]),
                      np.r_[np.ones(n), np.zeros(n)])
    assert abs(roc - 0.5) < 3.0 * np.sqrt((2 * n + 1) / (12.0 * n * n))


def test_chance_fraction_is_the_area_ratio():
    assert localization.chance_fraction(4.0, 1.0) == pytest.approx(1 / 16)
    assert localization.chance_fraction(2.0, 1.0) == pytest.approx(1 / 4)
    assert localization.chance_fraction(1.0, 2.0) == 1.0
    with pytest.raises(ValueError):
        localization.chance_fraction(0.0, 1.0)


def test_lroc_area_equals_the_double_sum(rng):
    for _ in range(5):
        r = rng.integers(0, 6, 23).astype(float)  # integer ratings: many ties
        c = rng.random(23) < 0.6
        a = rng.integers(0, 6, 17).astype(float)
        brute = sum(ci * ((ri > aj) + 0.5 * (ri == aj)) for ri, ci in zip(r, c) for aj in a)
        assert localization.lroc_area(r, c, a) == pytest.approx(brute / (r.size * a.size))


def test_lroc_area_with_all_correct_is_the_roc_auc_and_with_none_is_zero(rng):
    r, a = rng.normal(1.0, 1.0, 40), rng.normal(0.0, 1.0, 30)
    r[:5] = a[:5]  # ties
    labels = np.r_[np.ones(40), np.zeros(30)]
    assert localization.lroc_area(r, np.ones(40, bool), a) == pytest.approx(
        metrics.auc(np.concatenate([r, a]), labels))
    assert localization.lroc_area(r, np.zeros(40, bool), a) == 0.0
    assert np.isnan(localization.lroc_area([], [], a))


def test_lroc_curve_ends_at_the_fraction_localized_and_its_area_is_lroc_area(rng):
    r = rng.integers(0, 8, 50).astype(float)
    c = rng.random(50) < 0.7
    a = rng.integers(0, 6, 40).astype(float)
    fpf, tpf = localization.lroc_curve(r, c, a)
    assert (fpf[0], tpf[0]) == (0.0, 0.0)
    assert fpf[-1] == 1.0 and tpf[-1] == pytest.approx(localization.fraction_localized(c))
    assert np.all(np.diff(fpf) >= 0) and np.all(np.diff(tpf) >= 0)
    # a threshold in the middle, counted directly
    t = 3.0
    i = np.flatnonzero(np.unique(np.concatenate([r, a]))[::-1] == t)[0] + 1
    assert fpf[i] == pytest.approx(np.mean(a >= t))
    assert tpf[i] == pytest.approx(np.mean(c & (r >= t)))
    trapezoid = np.sum(np.diff(fpf) * (tpf[1:] + tpf[:-1]) / 2.0)
    assert trapezoid == pytest.approx(localization.lroc_area(r, c, a))


def test_flat_and_linear_backgrounds_give_zero_response():
    k = localization.template(R)
    assert k.shape == (2 * 6 + 1, 2 * 6 + 1)
    assert k.sum() == pytest.approx(0.0, abs=1e-12)
    rating, _ = localization.scan(np.full((SIZE, SIZE), 57.0), (32.0, 32.0), R, 1.0)
    assert rating == pytest.approx(0.0, abs=1e-9)
    # the template is symmetric as well as zero-mean: a linear ramp gives zero too
    yy, xx = np.mgrid[:SIZE, :SIZE]
    rating, _ = localization.scan(3.0 * yy - 2.0 * xx, (32.0, 32.0), R, -1.0)
    assert rating == pytest.approx(0.0, abs=1e-9)


def test_the_sign_is_respected(rng):
    image = rng.normal(0.0, 0.5, (SIZE, SIZE)) + _hard_disk(27.3, 36.6, R, -4.0)
    rating, (row, col) = localization.scan(image, (30.0, 33.0), R, -1.0, 4 * R)
    assert np.hypot(row - 27.3, col - 36.6) <= 1.0
    assert rating > 0
    wrong, (wrow, wcol) = localization.scan(image, (30.0, 33.0), R, 1.0, 4 * R)
    assert wrong < rating and np.hypot(wrow - 27.3, wcol - 36.6) > R
    result = localization.localize_pairs([image], [rng.normal(0.0, 0.5, (SIZE, SIZE))],
                                         [Lesion(27.3, 36.6, R, -40.0)])
    assert result["correct"][0] and result["present_rating"][0] == pytest.approx(rating)


def test_scan_equals_the_full_response_map_even_at_the_border(rng):
    image = ndimage.gaussian_filter(rng.normal(0.0, 1.0, (SIZE, SIZE)), 1.0)
    for centre in [(32.4, 30.8), (2.0, 3.5), (61.7, 62.2), (0.0, 60.0)]:
        for sign in (1.0, -1.0):
            full = localization.response_map(image, R, sign)
            sites = localization.search_sites(image.shape, centre, 4 * R)
            d = np.hypot(sites[:, 0] - centre[0], sites[:, 1] - centre[1])
            assert d.max() <= 4 * R
            values = full[sites[:, 0], sites[:, 1]]
            rating, (row, col) = localization.scan(image, centre, R, sign)
            assert rating == pytest.approx(values.max())
            assert full[row, col] == pytest.approx(values.max())
            assert np.hypot(row - centre[0], col - centre[1]) <= 4 * R


def test_localize_pairs_reports_distance_and_correctness_per_pair(rng):
    present, absent, lesions, centres = _white_noise_pairs(rng, 20, 1.0)
    result = localization.localize_pairs(present, absent, lesions, hit_factor=1.5)
    for i, (row, col) in enumerate(centres):
        rating, where = localization.scan(absent[i], (row, col), R, 1.0, 4 * R)
        assert result["absent_rating"][i] == rating
        assert tuple(result["absent_location"][i]) == where
        p = result["present_location"][i]
        assert result["distance_px"][i] == pytest.approx(np.hypot(p[0] - row, p[1] - col))
        assert result["correct"][i] == (result["distance_px"][i] <= 1.5 * R)
    assert localization.chance_fraction(4.0, 1.5) == pytest.approx((1.5 / 4) ** 2)
    rating, correct, absent = result["present_rating"], result["correct"], result["absent_rating"]
    roc_auc = localization.lroc_area(rating, np.ones_like(correct, bool), absent)
    assert localization.lroc_area(rating, correct, absent) <= roc_auc
    with pytest.raises(ValueError):
        localization.localize_pairs(present, absent[:3], lesions)
