"""The classical baselines: the noise PSD estimate, BM3D with it (the real ``bm3d`` package,
tiny images) and the widening Gaussian width search."""

import numpy as np
import pytest

from ldct_tf.evaluate import baselines, metrics

pytest.importorskip("bm3d")

SIZE = 48
SCALE = 1000.0  # BM3D units: HU / 1000


def anatomy(size: int = SIZE) -> np.ndarray:
    """A soft-tissue ellipse (40 HU) in air with a fat and a bone insert, HU."""
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    image = np.where((x / (0.44 * size)) ** 2 + (y / (0.40 * size)) ** 2 < 1, 40.0, -1000.0)
    image[(x + 0.15 * size) ** 2 + (y - 0.2 * size) ** 2 < (0.08 * size) ** 2] = -100.0
    image[(x - 0.2 * size) ** 2 + (y + 0.1 * size) ** 2 < (0.06 * size) ** 2] = 400.0
    return image


def kernel_fft(shape, width_px: float) -> np.ndarray:
    """DFT of a unit-energy, periodic Gaussian correlation kernel of SD ``width_px``."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    k = np.exp(-2 * (np.pi * width_px) ** 2 * (fx ** 2 + fy ** 2))  # FT of the Gaussian
    return k / np.sqrt(np.mean(k ** 2))  # unit energy: filtered white noise keeps its SD


def correlated_noise(rng, shape, sd_hu: float, width_px: float) -> np.ndarray:
    white = rng.normal(0.0, sd_hu, shape)
    return np.real(np.fft.ifft2(np.fft.fft2(white) * kernel_fft(shape, width_px)))


def analytic_psd(shape, sd_hu: float, width_px: float) -> np.ndarray:
    """E|fft2(noise)|^2 of `correlated_noise`, in BM3D units: N sd^2 |K|^2."""
    n = shape[0] * shape[1]
    return n * (sd_hu / SCALE) ** 2 * np.abs(kernel_fft(shape, width_px)) ** 2


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - b) ** 2)))


@pytest.fixture
def rng():
    return np.random.default_rng(7)


SD_LOW, SD_NORMAL, WIDTH = 40.0, 20.0, 1.2  # LDCT and NDCT noise SD (HU), kernel width (px)


def val_pairs(rng, n):
    """``n`` LDCT/NDCT pairs of one anatomy with independent correlated noise, and the anatomy."""
    clean = anatomy()
    shape = clean.shape
    return ([clean + correlated_noise(rng, shape, SD_LOW, WIDTH) for _ in range(n)],
            [clean + correlated_noise(rng, shape, SD_NORMAL, WIDTH) for _ in range(n)], clean)


def test_noise_psd_recovers_correlated_noise_spectrum(rng):
    sd_low, width = SD_LOW, WIDTH
    shape = (SIZE, SIZE)
    ldct, ndct, _ = val_pairs(rng, 24)
    psd = baselines.paired_noise_psd(ldct, ndct)
    truth = analytic_psd(shape, sd_low, width)
    assert psd.shape == shape and np.all(psd >= 0)
    assert np.corrcoef(psd.ravel(), truth.ravel())[0, 1] > 0.9
    # the variance (mean / N) is the LDCT's alone: without the NDCT's share removed it would be
    # 1.25 times as large
    assert np.mean(psd) / np.mean(truth) == pytest.approx(1.0, rel=0.15)
    assert baselines.psd_sd_hu(psd) == pytest.approx(sd_low, rel=0.08)


def test_psd_path_matches_sigma_path_for_white_noise(rng):
    clean = anatomy()
    sd = 30.0
    noisy = [clean + rng.normal(0.0, sd, clean.shape)]
    had_trapz = hasattr(np, "trapz")
    by_sigma = baselines.bm3d(noisy, sd, workers=1)[0]
    white_psd = np.full(clean.shape, clean.size * (sd / SCALE) ** 2)  # s^2 N: bm3d's convention
    by_psd = baselines.bm3d(noisy, white_psd, workers=1)[0]
    assert hasattr(np, "trapz") == had_trapz  # the NumPy shim is undone
    assert rmse(by_sigma, clean) < 0.6 * rmse(noisy[0], clean)  # it does denoise
    assert np.max(np.abs(by_psd - by_sigma)) < 0.5  # HU
    # the convention matters: a PSD of s^2 (no factor N) is far too little noise
    too_small = baselines.bm3d(noisy, white_psd / clean.size, workers=1)[0]
    assert rmse(too_small, clean) > 0.9 * rmse(noisy[0], clean)


def test_bm3d_with_the_estimated_psd_beats_the_white_sigma_on_correlated_noise(rng):
    ldct, ndct, clean = val_pairs(rng, 16)
    psd = baselines.paired_noise_psd(ldct, ndct)
    test = [clean + correlated_noise(rng, clean.shape, SD_LOW, WIDTH)]
    white = baselines.bm3d(test, baselines.psd_sd_hu(psd), workers=1)
    coloured = baselines.bm3d(test, psd, workers=1)
    for w, c, noisy in zip(white, coloured, test):
        assert rmse(c, clean) < 0.85 * rmse(w, clean) < rmse(noisy, clean)


def test_psd_is_resampled_to_another_image_shape(rng):
    width, sd = 1.2, 40.0
    psd = analytic_psd((SIZE, SIZE), sd, width)
    other = (40, 56)
    resampled = baselines.resample_psd(psd, other)
    truth = analytic_psd(other, sd, width)
    assert resampled.shape == other
    assert np.corrcoef(resampled.ravel(), truth.ravel())[0, 1] > 0.98
    assert baselines.psd_sd_hu(resampled) == pytest.approx(sd, rel=0.03)
    clean = anatomy(56)[8:48, :]
    noisy = clean + correlated_noise(rng, other, sd, width)
    out = baselines.bm3d([noisy], psd, workers=1)[0]  # the 48x48 PSD on a 40x56 image
    exact = baselines.bm3d([noisy], truth, workers=1)[0]
    assert out.shape == other and rmse(out, clean) < 0.8 * rmse(noisy, clean)
    assert rmse(out, clean) == pytest.approx(rmse(exact, clean), rel=0.03)


def test_bm3d_rejects_a_noise_that_is_neither_sd_nor_psd():
    with pytest.raises(ValueError):
        baselines.bm3d([anatomy()], np.ones((2, 2, 2)), workers=1)


def _best_by_brute_force(noisy, clean, sigma):
    return np.mean([metrics.rmse(metrics.window(f, "abdomen")[0],
                                 metrics.window(c, "abdomen")[0])
                    for f, c in zip(baselines.gaussian(noisy, sigma), clean)])


def test_gaussian_search_widens_past_the_largest_width(rng):
    clean = [np.full((SIZE, SIZE), 40.0)]
    noisy = [clean[0] + rng.normal(0.0, 60.0, clean[0].shape)]
    sigma, scores, note = baselines.tune_gaussian(noisy, clean, (0.5, 0.75))
    assert sigma > 0.75 and note and "widened" in note
    assert scores[sigma] == min(scores.values()) and set(scores) > {0.5, 0.75}
    assert scores[sigma] == pytest.approx(_best_by_brute_force(noisy, clean, sigma))
    # a flat image: wider is always better, so the search runs into the cap and says so
    assert sigma == baselines.GAUSSIAN_SIGMA_CAP_PX and "cap" in note
    # a grid already reaching the cap is not widened, but the note still says the best is its edge
    sigma, scores, note = baselines.tune_gaussian(noisy, clean, (4.0, 8.0))
    assert sigma == 8.0 and list(scores) == [4.0, 8.0] and "cap" in note and "widened" not in note


def test_gaussian_search_widens_past_the_smallest_width(rng):
    y, x = np.mgrid[:SIZE, :SIZE]
    clean = [40.0 + 150.0 * ((x // 2 + y // 2) % 2)]  # fine 2-px checkerboard
    noisy = [clean[0] + rng.normal(0.0, 2.0, clean[0].shape)]
    sigma, scores, note = baselines.tune_gaussian(noisy, clean, (1.0, 2.0))
    assert sigma < 1.0 and note and "widened" in note
    assert min(scores) >= baselines.GAUSSIAN_SIGMA_FLOOR_PX


def test_gaussian_search_keeps_an_interior_optimum(rng):
    y, x = np.mgrid[:SIZE, :SIZE]
    clean = [40.0 + 100.0 * np.sin(2 * np.pi * x / 12) * np.sin(2 * np.pi * y / 12)]
    noisy = [clean[0] + rng.normal(0.0, 40.0, clean[0].shape)]
    grid = (0.3, 0.6, 1.2, 2.4, 4.8)
    sigma, scores, note = baselines.tune_gaussian(noisy, clean, grid)
    assert note is None
    assert list(scores) == list(grid) and grid[0] < sigma < grid[-1]
    assert sigma == min(grid, key=lambda s: _best_by_brute_force(noisy, clean, s))
