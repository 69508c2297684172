"""Image-quality and detection metrics against formulas written here."""

import numpy as np
import pytest

from ldct_tf.evaluate import metrics


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


def test_psnr_and_ssim_agree_with_scikit_image(rng):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    for _ in range(3):
        reference = rng.uniform(-160, 240, (48, 40))
        image = np.clip(reference + rng.normal(0, 25, reference.shape), -160, 240)
        assert metrics.psnr(image, reference, 400.0) == pytest.approx(
            peak_signal_noise_ratio(reference, image, data_range=400.0), abs=1e-3)
        assert metrics.ssim(image, reference, 400.0) == pytest.approx(structural_similarity(
            reference, image, data_range=400.0, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False), abs=1e-3)


def test_fidelity_reports_both_windows_with_their_ranges(rng):
    reference = rng.uniform(-1000, 1000, (32, 32))
    result = metrics.fidelity(reference + 10.0, reference)
    assert set(result) == {"abdomen", "full_range"}
    assert result["full_range"]["psnr"] == pytest.approx(20 * np.log10(4096 / 10.0), abs=1e-6)
    assert metrics.window(np.array([-2000.0, 0.0, 500.0]), "abdomen")[1] == 400.0


def test_lesion_contrast_of_a_drawn_disk():
    image = np.full((40, 40), 30.0)
    rr, cc = np.ogrid[:40, :40]
    image[np.hypot(rr - 20, cc - 18) <= 5] += 60.0
    assert metrics.lesion_contrast_hu(image, 20, 18, 5.0) == pytest.approx(60.0)


def _blurred_disk_rise(sigma):
    from scipy import ndimage

    size, radius = 81, 18.0
    rr, cc = np.ogrid[:size, :size]
    disk = (np.hypot(rr - 40, cc - 40) <= radius).astype(float) * -50.0
    big = ndimage.zoom(disk, 4, order=0)  # blur at 4x sampling, then sample back
    blurred = ndimage.gaussian_filter(big, sigma * 4)[::4, ::4]
    profile = metrics.edge_profile(blurred, 40 + 0.375, 40 + 0.375, radius, sign=-1.0)
    return metrics.rise_distance_px(profile)


@pytest.mark.parametrize("sigma", [0.8, 1.1])
def test_rise_distance_of_a_blurred_edge_matches_the_gaussian_formula(sigma):
    from scipy import stats

    # A Gaussian-blurred step rises 10 -> 90 % over 2 * 1.2816 * sigma; pixel sampling adds a
    # little, which matters less as the blur grows.
    expected = 2 * stats.norm.ppf(0.9) * sigma
    assert _blurred_disk_rise(sigma) == pytest.approx(expected, abs=0.35)


def test_rise_distance_grows_with_blur():
    rises = [_blurred_disk_rise(s) for s in (0.3, 0.6, 0.9, 1.2)]
    assert all(a < b for a, b in zip(rises, rises[1:]))


def test_nps_of_white_noise_is_flat_at_variance_times_pixel_area(rng):
    sd, pixel = 10.0, 0.7
    freqs, nps = metrics.noise_power_spectrum(rng.normal(0, sd, (200, 32, 32)), pixel)
    # flat at sd^2 dx dy (the zero-frequency bin is empty of power: each ROI's mean is removed)
    assert np.nanmedian(nps[1:]) == pytest.approx(sd ** 2 * pixel ** 2, rel=0.05)
    assert freqs.max() < 1 / (2 * pixel)


def test_uniform_rois_lie_in_soft_tissue():
    image = np.full((64, 64), -1000.0)
    image[8:56, 8:40] = 50.0
    corners = metrics.uniform_rois(image, 16, 10)
    assert corners
    for r, c in corners:
        assert (image[r:r + 16, c:c + 16] == 50.0).all()


def test_disk_mean_is_the_core_of_a_drawn_disk(rng):
    image = rng.normal(0, 5, (40, 40))
    rr, cc = np.ogrid[:40, :40]
    core = np.hypot(rr - 20.3, cc - 17.6) <= 0.6 * 6.0
    assert metrics.disk_mean_hu(image, 20.3, 17.6, 6.0) == pytest.approx(image[core].mean())
    # a disk too small to hold a pixel centre reads the nearest pixel
    assert metrics.disk_mean_hu(image, 20.4, 17.6, 0.5) == pytest.approx(image[20, 18])


def test_twin_ratios_in_bootstrap_form_equal_the_resampled_cases(rng):
    n = 12
    sign = rng.choice([-1.0, 1.0], n)
    ndct_a = rng.normal(40, 5, n)
    ndct_p = ndct_a + sign * rng.uniform(30, 60, n)
    img_a, img_p = ndct_a + rng.normal(0, 3, n), ndct_p + rng.normal(0, 3, n)
    s = sign
    kept = np.sum(s * (img_p - img_a)) / np.sum(s * (ndct_p - ndct_a))
    assert metrics.twin_contrast_kept(img_p, img_a, ndct_p, ndct_a, sign) == pytest.approx(kept)
    invented = np.sum(s * (img_a - ndct_a)) / np.sum(s * (ndct_p - ndct_a))
    assert metrics.twin_invented_contrast(img_a, ndct_p, ndct_a, sign) == pytest.approx(invented)
    draws = rng.integers(0, n, (5, n))
    counts = np.array([np.bincount(d, minlength=n) for d in draws])
    in_bulk = metrics.twin_contrast_kept(img_p, img_a, ndct_p, ndct_a, sign, weights=counts)
    one_by_one = [metrics.twin_contrast_kept(img_p[d], img_a[d], ndct_p[d], ndct_a[d], sign[d])
                  for d in draws]
    np.testing.assert_allclose(in_bulk, one_by_one)
