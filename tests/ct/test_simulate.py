"""CT physics: bias, noise scaling with dose, determinism, and Yu et al.'s noise insertion."""

import numpy as np
import pytest
from conftest import centre_roi, water_ellipse

from ldct_tf.ct import simulate

SPACING = 1.4
SIZE = 128


@pytest.fixture(scope="module")
def phantom():
    return water_ellipse(SIZE, SPACING, hu=40.0)


def _noise_sd(images, roi):
    return float(np.mean([im[roi].std() for im in images]))


def test_scan_mean_hu_is_unbiased_in_soft_tissue(phantom):
    roi = centre_roi(SIZE, 16)
    for dose in (1.0, 0.25):
        means = [simulate.scan(phantom, SPACING, dose, seed)[roi].mean() for seed in range(3)]
        assert abs(np.mean(means) - 40.0) < 5.0, (dose, means)


def test_scan_noise_scales_like_inverse_sqrt_dose(phantom):
    roi = centre_roi(SIZE, 16)
    full = _noise_sd([simulate.scan(phantom, SPACING, 1.0, s) for s in range(4)], roi)
    quarter = _noise_sd([simulate.scan(phantom, SPACING, 0.25, s + 100) for s in range(4)], roi)
    # sigma ~ 1/sqrt(dose): 25 % vs 100 % -> 2 (electronic noise adds a little at low dose)
    assert quarter / full == pytest.approx(2.0, rel=0.15)


def test_scan_is_deterministic_for_a_seed_and_differs_between_seeds(phantom):
    a = simulate.scan(phantom, SPACING, 0.5, 7)
    b = simulate.scan(phantom, SPACING, 0.5, 7)
    c = simulate.scan(phantom, SPACING, 0.5, 8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.float32 and a.shape == phantom.shape


def test_simulate_low_dose_at_full_dose_returns_input(phantom):
    ndct = simulate.scan(phantom, SPACING, 1.0, 0)
    np.testing.assert_array_equal(simulate.simulate_low_dose(ndct, SPACING, 1.0, 1), ndct)


def test_simulate_low_dose_added_noise_follows_yu_variance(phantom):
    ndct = simulate.scan(phantom, SPACING, 1.0, 0)
    roi = centre_roi(SIZE, 16)
    added = {a: [simulate.simulate_low_dose(ndct, SPACING, a, s) - ndct for s in range(4)]
             for a in (0.5, 0.25)}
    ratio = _noise_sd(added[0.25], roi) / _noise_sd(added[0.5], roi)
    # variance proportional to (1 - a) / a: (0.75/0.25) / (0.5/0.5) = 3
    assert ratio == pytest.approx(np.sqrt(3.0), rel=0.15)
    for images in added.values():
        assert abs(np.mean([im[roi].mean() for im in images])) < 5.0


def test_simulate_low_dose_total_noise_matches_a_direct_low_dose_scan(phantom):
    """NDCT noise plus inserted noise equals the noise of a scan made at the low dose."""
    roi = centre_roi(SIZE, 16)
    ndct = [simulate.scan(phantom, SPACING, 1.0, s) for s in range(4)]
    lowered = [simulate.simulate_low_dose(im, SPACING, 0.25, s + 50) for s, im in enumerate(ndct)]
    direct = [simulate.scan(phantom, SPACING, 0.25, s + 90) for s in range(4)]
    assert _noise_sd(lowered, roi) == pytest.approx(_noise_sd(direct, roi), rel=0.15)


def test_non_square_image_and_tissue_in_corners():
    # tissue everywhere: the object does not fit the circle
    hu = np.full((48, 64), 40.0, np.float32)
    out = simulate.simulate_low_dose(hu, 0.7, 0.25, 0)
    assert out.shape == hu.shape and np.isfinite(out).all()
    assert abs(out[16:32, 24:40].mean() - 40.0) < 5.0


@pytest.mark.slow
def test_clinical_512_slice_at_half_millimetre():
    hu = water_ellipse(512, 0.5, hu=40.0, half_axes_mm=(110.0, 80.0))
    roi = centre_roi(512, 40)
    low = simulate.simulate_low_dose(hu, 0.5, 0.25, 0)
    assert low.shape == (512, 512)
    assert abs(low[roi].mean() - 40.0) < 5.0 and low[roi].std() > 1.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(dose_fraction=0.0), "dose_fraction"),
    (dict(pixel_spacing_mm=-1.0), "pixel_spacing_mm"),
    (dict(filter_name="butterworth"), "filter_name"),
    (dict(i0=0.0), "i0"),
    (dict(n_views=1), "n_views"),
])
def test_bad_arguments_name_the_parameter(phantom, kwargs, match):
    args = dict(hu=phantom, pixel_spacing_mm=SPACING, dose_fraction=0.5, seed=0) | kwargs
    with pytest.raises(ValueError, match=match):
        simulate.scan(**args)


def test_simulate_low_dose_rejects_dose_above_one(phantom):
    with pytest.raises(ValueError, match="dose_fraction must be <= 1"):
        simulate.simulate_low_dose(phantom, SPACING, 1.5, 0)
