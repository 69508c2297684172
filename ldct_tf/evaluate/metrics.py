"""Image-quality measurements in HU, the way medical physicists report them.

Every PSNR/SSIM/RMSE states its window and data range (`WINDOWS`): the abdomen window
[-160, 240] HU with data range 400, and the full range [-1024, 3072] HU with data range 4096. Both
images are clipped to the window first. Papers disagree by 20 dB otherwise.

SSIM is Wang et al. (IEEE TIP 13:600, 2004) with Gaussian weights (sigma 1.5, truncated at 3.5
sigma: an 11x11 window), K1 = 0.01, K2 = 0.03, population (not sample) covariances, averaged over
the image without a 5-pixel border: the same as scikit-image's ``structural_similarity(...,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=R)``.

`noise_index_hu` is the global noise index of Christianson et al. (AJR 204:1204, 2015): a map of the
local standard deviation in small windows that lie wholly in soft tissue (0-100 HU), whose most
frequent value is the image's noise level. Like every small-window measure it reads lower than the
SD of a large uniform ROI when the noise is spatially correlated (FBP with a smooth kernel): on the
default simulated scanner about 0.75 of it. Ratios between images (LDCT vs NDCT vs denoised) are
what it is for.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ldct_tf.models.preprocessing import ABDOMEN_WINDOW_HU, HU_MAX, HU_MIN

WINDOWS = {"abdomen": ABDOMEN_WINDOW_HU, "full_range": (HU_MIN, HU_MAX)}
SOFT_TISSUE_RANGE_HU = (0.0, 100.0)
_SSIM_SIGMA, _SSIM_TRUNCATE, _K1, _K2 = 1.5, 3.5, 0.01, 0.03
NOISE_WINDOW_PX = 9
_MODE_BIN_HU = 0.5


def local_sd_hu(hu: np.ndarray, window: int = NOISE_WINDOW_PX) -> np.ndarray:
    """Sample standard deviation (HU) in a ``window`` x ``window`` box around every pixel."""
    hu = np.asarray(hu, np.float64)
    mean = ndimage.uniform_filter(hu, window, mode="reflect")
    mean_sq = ndimage.uniform_filter(hu * hu, window, mode="reflect")
    n = window * window
    return np.sqrt(np.maximum(mean_sq - mean * mean, 0.0) * n / (n - 1))


def uniform_tissue_mask(hu: np.ndarray, window: int = NOISE_WINDOW_PX,
                        reference: np.ndarray | None = None) -> np.ndarray:
    """Pixels whose whole window lies in soft tissue (judged on ``reference``, default ``hu``,
    smoothed so that noise does not punch holes into the mask)."""
    ref = ndimage.gaussian_filter(np.asarray(hu if reference is None else reference, np.float64),
                                  1.5)
    tissue = (ref >= SOFT_TISSUE_RANGE_HU[0]) & (ref <= SOFT_TISSUE_RANGE_HU[1])
    return ndimage.uniform_filter(tissue.astype(np.float64), window, mode="constant") > 0.999


def noise_index_hu(hu: np.ndarray, window: int = NOISE_WINDOW_PX,
                   reference: np.ndarray | None = None,
                   mask: np.ndarray | None = None) -> float | None:
    """Global noise index (HU): the mode of the local SD over uniform soft tissue.

    ``reference`` (e.g. the NDCT image) decides where soft tissue is, or ``mask`` is that
    `uniform_tissue_mask` already made (for several images of one reference); None when the
    slice has no window of soft tissue.
    """
    if mask is None:
        mask = uniform_tissue_mask(hu, window, reference)
    sds = local_sd_hu(hu, window)[mask]
    if sds.size == 0:
        return None
    bins = np.arange(0.0, sds.max() + 2 * _MODE_BIN_HU, _MODE_BIN_HU)
    counts, edges = np.histogram(sds, bins)
    counts = ndimage.uniform_filter1d(counts.astype(np.float64), 3)  # steadier mode
    i = int(np.argmax(counts))
    return float((edges[i] + edges[i + 1]) / 2.0)


def auc(scores, labels) -> float:
    """Area under the ROC curve: the Mann-Whitney probability that a lesion-present case scores
    higher than a lesion-absent one, ties counting one half. NaN without both classes."""
    from scipy.stats import rankdata

    scores, labels = np.asarray(scores, np.float64).ravel(), np.asarray(labels).ravel() > 0.5
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)  # average ranks give ties one half
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def youden_threshold(scores, labels) -> float:
    """The score threshold that maximises sensitivity + specificity - 1 (Youden's J)."""
    scores, labels = np.asarray(scores, np.float64).ravel(), np.asarray(labels).ravel() > 0.5
    candidates = np.unique(scores)
    if candidates.size == 0:
        return 0.5
    j = [np.mean(scores[labels] >= t) - np.mean(scores[~labels] >= t) for t in candidates]
    return float(candidates[int(np.argmax(j))])


def window(hu: np.ndarray, name: str) -> tuple[np.ndarray, float]:
    """``hu`` clipped to window ``name`` (see `WINDOWS`) and that window's data range."""
    low, high = WINDOWS[name]
    return np.clip(np.asarray(hu, np.float64), low, high), high - low


def rmse(image: np.ndarray, reference: np.ndarray) -> float:
    diff = np.asarray(image, np.float64) - np.asarray(reference, np.float64)
    return float(np.sqrt(np.mean(diff * diff)))


def psnr(image: np.ndarray, reference: np.ndarray, data_range: float) -> float:
    """Peak signal-to-noise ratio (dB) of a 2-D image against a reference."""
    error = rmse(image, reference)
    return float("inf") if error == 0 else float(20.0 * np.log10(data_range / error))


def ssim(image: np.ndarray, reference: np.ndarray, data_range: float) -> float:
    """Structural similarity of 2-D images (the Gaussian-weighted variant described above)."""
    x, y = np.asarray(image, np.float64), np.asarray(reference, np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"ssim needs two 2-D images of one shape, got {x.shape} and {y.shape}")

    def blur(a):
        return ndimage.gaussian_filter(a, _SSIM_SIGMA, truncate=_SSIM_TRUNCATE, mode="reflect")

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x * mu_x
    var_y = blur(y * y) - mu_y * mu_y
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    s_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)
             / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2)))
    pad = int(_SSIM_TRUNCATE * _SSIM_SIGMA + 0.5)
    return float(s_map[pad:-pad, pad:-pad].mean())


def fidelity(image: np.ndarray, reference: np.ndarray) -> dict:
    """PSNR, SSIM and RMSE in every window: ``{"abdomen": {...}, "full_range": {...}}``."""
    out = {}
    for name in WINDOWS:
        a, data_range = window(image, name)
        b, _ = window(reference, name)
        out[name] = {"psnr": psnr(a, b, data_range), "ssim": ssim(a, b, data_range),
                     "rmse": rmse(a, b)}
    return out


# --- small features: lesion contrast, edge sharpness; noise texture ---------------------------

def lesion_contrast_hu(hu: np.ndarray, row: float, col: float, radius_px: float,
                       inner: float = 0.6, ring: tuple[float, float] = (1.5, 2.0)) -> float:
    """Mean inside ``inner`` radii of the lesion minus the mean of the ring at ``ring`` radii."""
    rr, cc = np.ogrid[:hu.shape[0], :hu.shape[1]]
    r = np.hypot(rr - row, cc - col) / radius_px
    return disk_mean_hu(hu, row, col, radius_px, inner) - float(
        hu[(r >= ring[0]) & (r <= ring[1])].mean())


def disk_mean_hu(hu: np.ndarray, row: float, col: float, radius_px: float,
                 inner: float = 0.6) -> float:
    """Mean HU inside ``inner`` radii of (row, col): the lesion core, clear of its blurred edge.

    The pixel nearest the centre when the disk holds none (radii under about 1.2 px)."""
    rr, cc = np.ogrid[:hu.shape[0], :hu.shape[1]]
    r = np.hypot(rr - row, cc - col)
    inside = r <= inner * radius_px
    if not inside.any():
        inside = r == r.min()
    return float(np.asarray(hu, np.float64)[inside].mean())


def _weighted_sum(terms: np.ndarray, weights: np.ndarray | None) -> np.ndarray | float:
    # weights: how often each case is drawn (a bootstrap resample), one row per resample
    return terms.sum() if weights is None else np.asarray(weights, np.float64) @ terms


def twin_contrast_kept(present_hu, absent_hu, ndct_present_hu, ndct_absent_hu, sign,
                       weights: np.ndarray | None = None):
    """Share of the twins' lesion contrast an image keeps: ``sum s (m(img_p) - m(img_a)) /
    sum s (m(ndct_p) - m(ndct_a))`` over matched pairs, m a `disk_mean_hu` at the lesion site and
    s the sign of the lesion's contrast. The absent twin is the same slice without the lesion, so
    the difference holds no anatomy (and a ring background is not needed). 1 = all kept.

    ``weights`` [n_pairs] or [resamples, n_pairs] gives the bootstrap form (case counts).
    """
    s = np.asarray(sign, np.float64)
    kept = s * (np.asarray(present_hu, np.float64) - np.asarray(absent_hu, np.float64))
    true = s * (np.asarray(ndct_present_hu, np.float64) - np.asarray(ndct_absent_hu, np.float64))
    return _weighted_sum(kept, weights) / _weighted_sum(true, weights)


def twin_invented_contrast(absent_hu, ndct_present_hu, ndct_absent_hu, sign,
                           weights: np.ndarray | None = None):
    """Contrast an image paints at the lesion-absent twin's (sham) lesion site, signed like the
    twin's lesion and relative to the true contrast: ``sum s (m(img_a) - m(ndct_a)) /
    sum s (m(ndct_p) - m(ndct_a))``. 0 for an honest image; a denoiser that learnt to draw
    lesions where its training put them reads > 0. ``weights`` as in `twin_contrast_kept`.
    """
    s = np.asarray(sign, np.float64)
    invented = s * (np.asarray(absent_hu, np.float64) - np.asarray(ndct_absent_hu, np.float64))
    true = s * (np.asarray(ndct_present_hu, np.float64) - np.asarray(ndct_absent_hu, np.float64))
    return _weighted_sum(invented, weights) / _weighted_sum(true, weights)


EDGE_OFFSETS_PX = np.arange(-2.5, 3.01, 0.5)  # distance from the lesion edge (r - R), pixels


def edge_profile(hu: np.ndarray, row: float, col: float, radius_px: float,
                 sign: float) -> np.ndarray:
    """Radial profile across the lesion edge at `EDGE_OFFSETS_PX`, background-subtracted and
    sign-aligned (so it falls from the lesion's contrast to 0 whatever the contrast's sign)."""
    rr, cc = np.mgrid[:hu.shape[0], :hu.shape[1]]
    offset = np.hypot(rr - row, cc - col) - radius_px
    background = hu[(offset >= radius_px * 0.5) & (offset <= radius_px)].mean()
    half = (EDGE_OFFSETS_PX[1] - EDGE_OFFSETS_PX[0]) / 2.0
    profile = [hu[np.abs(offset - d) <= half].mean() if np.any(np.abs(offset - d) <= half)
               else np.nan for d in EDGE_OFFSETS_PX]
    return sign * (np.asarray(profile) - background)


def edge_step(profile: np.ndarray, offsets: np.ndarray = EDGE_OFFSETS_PX) -> float:
    """The height of a falling edge profile: plateau (mean at offsets <= -2 px) minus floor (mean
    at offsets >= +2 px), HU. Over NDCT's, it shows amplitude a rise distance cannot see (the rise
    distance is normalised by each image's own plateau)."""
    top, bottom = _plateau_and_floor(profile, offsets)
    return float(top - bottom)


def _plateau_and_floor(profile, offsets) -> tuple[float, float]:
    """The mean of an edge profile at offsets <= -2 px (inside) and >= +2 px (outside)."""
    profile = np.asarray(profile, np.float64)
    return np.nanmean(profile[offsets <= -2.0]), np.nanmean(profile[offsets >= 2.0])


def rise_distance_px(profile: np.ndarray, offsets: np.ndarray = EDGE_OFFSETS_PX) -> float:
    """10-90 % distance (pixels) of a falling edge profile: the plateau is the mean at offsets
    <= -2 px, the floor the mean at offsets >= +2 px. Resolves rise distances up to about 3 px
    (a Gaussian blur up to sigma ~1.1 px); blurrier edges read short."""
    profile = np.asarray(profile, np.float64)
    top, bottom = _plateau_and_floor(profile, offsets)
    if not top > bottom:
        return float("nan")
    level = (profile - bottom) / (top - bottom)  # 1 inside, 0 outside

    def crossing(fraction):
        # first offset where the (monotonised) edge falls below the fraction
        falling = np.minimum.accumulate(np.nan_to_num(level, nan=1.0))
        i = int(np.argmax(falling < fraction))
        if i == 0:
            return float(offsets[0])
        x0, x1, y0, y1 = offsets[i - 1], offsets[i], falling[i - 1], falling[i]
        return float(x0 + (y0 - fraction) * (x1 - x0) / (y0 - y1)) if y0 != y1 else float(x0)

    return crossing(0.1) - crossing(0.9)


def noise_power_spectrum(rois: np.ndarray, pixel_mm: float, bins: int = 16
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged NPS of noise-only ROIs ``[n, N, N]``: mean of
    ``|FFT(ROI - mean)|^2 * dx dy / (Nx Ny)`` (HU^2 mm^2) against spatial frequency (1/mm)."""
    rois = np.asarray(rois, np.float64)
    n = rois.shape[-1]
    centred = rois - rois.mean(axis=(1, 2), keepdims=True)
    nps = (np.abs(np.fft.fftshift(np.fft.fft2(centred), axes=(1, 2))) ** 2).mean(0)
    nps *= pixel_mm * pixel_mm / (n * n)
    f = np.fft.fftshift(np.fft.fftfreq(n, d=pixel_mm))
    radius = np.hypot(*np.meshgrid(f, f, indexing="ij"))
    edges = np.linspace(0.0, f.max(), bins + 1)
    which = np.digitize(radius.ravel(), edges) - 1
    values = np.array([nps.ravel()[which == b].mean() if np.any(which == b) else np.nan
                       for b in range(bins)])
    return (edges[:-1] + edges[1:]) / 2.0, values


def uniform_rois(reference_hu: np.ndarray, size: int, limit: int) -> list[tuple[int, int]]:
    """Top-left corners of up to ``limit`` non-overlapping ``size`` x ``size`` ROIs lying wholly
    in uniform soft tissue of ``reference_hu`` (for NPS and noise measurements)."""
    ref = ndimage.gaussian_filter(np.asarray(reference_hu, np.float64), 1.5)
    tissue = (ref >= SOFT_TISSUE_RANGE_HU[0]) & (ref <= SOFT_TISSUE_RANGE_HU[1])
    corners, taken = [], np.zeros_like(tissue)
    for r in range(0, tissue.shape[0] - size + 1, size // 2):
        for c in range(0, tissue.shape[1] - size + 1, size // 2):
            box = (slice(r, r + size), slice(c, c + size))
            if tissue[box].all() and not taken[box].any():
                corners.append((r, c))
                taken[box] = True
                if len(corners) == limit:
                    return corners
    return corners
