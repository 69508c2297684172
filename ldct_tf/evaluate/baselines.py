"""Classical denoising baselines of the evaluation, tuned on the val split.

- Gaussian filter: the width (pixels) with the lowest RMSE against NDCT on val (abdomen window),
  the search widened past the configured grid while the best width lies at its edge.
- BM3D (Dabov et al. 2007; the ``bm3d`` package, an optional extra: its licence allows
  non-commercial use only): noise estimated on val, run in parallel processes. FBP noise is
  spatially correlated, so the noise is given as its power spectrum (`paired_noise_psd`, BM3D
  for correlated noise of Mäkinen, Azzari & Foi 2020) rather than as a white-noise SD (the
  classic BM3D; `bm3d` still takes one, and `psd_sd_hu` gives the SD of equal variance).

The PSD convention is the ``bm3d`` package's (4.x, computed by ``bm4d``): a 2-D array of the
image's shape in unshifted FFT order (DC at [0, 0]) holding E|fft2(noise)|^2, the *unnormalised*
DFT, so white noise of SD s has the constant PSD s^2 * N (N the number of pixels; ``bm4d.bm4d``
turns an SD into ``np.ones(z.shape) * z.size * sigma_psd ** 2``) and ``mean(psd) / N`` is the
noise variance. PSDs here are in the units BM3D runs on, (HU / `_BM3D_SCALE`)^2.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy import ndimage

from ldct_tf.evaluate import metrics

_BM3D_SCALE = 1000.0  # BM3D runs on HU / 1000 (its profiles are tuned for O(1) images)

GAUSSIAN_SIGMA_CAP_PX = 8.0  # the widened Gaussian search goes no wider ...
GAUSSIAN_SIGMA_FLOOR_PX = 0.2  # ... and no narrower
_WIDEN_UP, _WIDEN_DOWN = 1.5, 0.5

# the body region of `paired_noise_psd`
_BODY_HU = -500.0  # smoothed NDCT above this is body (lungs and bowel gas are filled in as holes)
_BODY_TAPER_PX = 2.0  # the window's soft edge (Gaussian SD), inside the body
_MIN_BODY_PX = 256  # fewer body pixels than this: the slice's whole image is the window


def gaussian(images: list[np.ndarray], sigma_px: float) -> list[np.ndarray]:
    return [ndimage.gaussian_filter(im, sigma_px).astype(np.float32) for im in images]


def tune_gaussian(ldct: list[np.ndarray], ndct: list[np.ndarray], sigmas, *,
                  cap_px: float = GAUSSIAN_SIGMA_CAP_PX,
                  floor_px: float = GAUSSIAN_SIGMA_FLOOR_PX
                  ) -> tuple[float, dict[float, float], str | None]:
    """The width (px) with the lowest mean abdomen-window RMSE against NDCT, the RMSE of every
    width tried (sorted by width), and a note.

    ``sigmas`` is the starting grid. While the best width is the largest tried, 1.5 times it is
    tried too (at most ``cap_px``); while it is the smallest tried, half of it (at least
    ``floor_px``): the optimum may lie beyond the grid. The note is None when the best width lies
    inside the widths tried, else one line saying the search widened (and why, what it tried)
    and/or that it stopped at the cap or floor with the best still at the edge. Ties go to the
    narrower width.
    """
    def score(sigma: float) -> float:
        errors = [metrics.rmse(metrics.window(f, "abdomen")[0], metrics.window(n, "abdomen")[0])
                  for f, n in zip(gaussian(ldct, sigma), ndct)]
        return float(np.mean(errors))

    if not len(sigmas):
        raise ValueError("tune_gaussian needs at least one width")
    scores = {float(sigma): score(float(sigma)) for sigma in dict.fromkeys(sigmas)}
    grid = (min(scores), max(scores))

    def best_width() -> float:
        return min(scores, key=lambda s: (scores[s], s))

    widened = []
    while True:
        best = best_width()
        if best == max(scores) and best < cap_px:
            nxt = min(float(f"{best * _WIDEN_UP:.4g}"), cap_px)
        elif best == min(scores) and best > floor_px:
            nxt = max(float(f"{best * _WIDEN_DOWN:.4g}"), floor_px)
        else:
            break
        scores[nxt] = score(nxt)
        widened.append(nxt)

    parts = []
    if widened:
        tried = ", ".join(f"{s:g}" for s in widened)
        parts.append(f"widened beyond the grid ({grid[0]:g}-{grid[1]:g} px) since its best width "
                     f"lay at its edge: tried {tried} px, best {best:g} px")
    if len(scores) > 1 and best == max(scores) and best >= cap_px:
        parts.append(f"stopped at the {cap_px:g} px cap with the best still the widest tried")
    if len(scores) > 1 and best == min(scores) and best <= floor_px:
        parts.append(f"stopped at the {floor_px:g} px floor with the best still the narrowest "
                     "tried")
    note = "gaussian width search " + "; ".join(parts) if parts else None
    return best, dict(sorted(scores.items())), note


def bm3d_available() -> str | None:
    """None when BM3D can run, else why not (a line for the report)."""
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return ("the optional `bm3d` package is not installed (pip install 'ldct_tf[bm3d]'; "
                "non-commercial licence)")
    return None


def _ndct_noise_ratio(ldct: list[np.ndarray], ndct: list[np.ndarray]) -> float:
    """The NDCT/LDCT noise ratio (median over slices of the ratio of their noise indices in
    uniform soft tissue); 0 when no slice has any."""
    ratios = []
    for low, normal in zip(ldct, ndct):
        mask = metrics.uniform_tissue_mask(normal)
        if mask.sum() < 50:
            continue
        n_low = metrics.noise_index_hu(low, mask=mask)
        n_normal = metrics.noise_index_hu(normal, mask=mask)
        if n_low and n_normal:
            ratios.append(n_normal / n_low)
    return float(np.median(ratios)) if ratios else 0.0


def _noise_window(ndct: np.ndarray) -> np.ndarray:
    """The periodogram window of one slice: its body (smoothed NDCT above `_BODY_HU`, holes
    filled), eroded and given a soft edge so that the window is ~0 outside the body and at the
    image border; the whole image (soft-edged at the border) when the body is too small."""
    body = ndimage.gaussian_filter(np.asarray(ndct, np.float64), 1.5) > _BODY_HU
    body = ndimage.binary_fill_holes(body)
    erode = int(np.ceil(2 * _BODY_TAPER_PX))
    inner = ndimage.binary_erosion(body, iterations=erode)  # border_value 0: off the border too
    if inner.sum() < _MIN_BODY_PX:
        inner = ndimage.binary_erosion(np.ones(body.shape, bool), iterations=erode)
    return ndimage.gaussian_filter(inner.astype(np.float64), _BODY_TAPER_PX, mode="constant")


def paired_noise_psd(ldct: list[np.ndarray], ndct: list[np.ndarray]) -> np.ndarray:
    """The 2-D power spectrum of the LDCT noise from val pairs, for `bm3d`.

    LDCT - NDCT is pure noise (the anatomy is shared). Each slice's difference is windowed to
    its body, its weighted mean (an offset, not noise) removed, and its periodogram
    N * |fft2(d * w)|^2 / sum(w^2) taken, which is unbiased for stationary noise in the bm3d
    convention (module docstring); the slices are pooled with weights sum(w^2). The body, not
    the whole image: outside it CT values are clipped at the bottom of the HU range or set to a
    constant outside the reconstruction circle, so air would understate the noise (and FBP noise
    is not stationary anyway; the body is where the denoising matters). A slice with under
    `_MIN_BODY_PX` body pixels uses its whole image. The NDCT's own noise is removed with the
    NDCT/LDCT noise-index ratio of `_ndct_noise_ratio`: its PSD is assumed of the same shape
    (same reconstruction), so the difference's PSD is scaled by 1 / (1 + ratio^2). The DC bin,
    which the mean removal empties, takes the mean of its four neighbours. BM3D smooths the PSD
    itself, so it is not smoothed here.

    Returns the PSD (float64) at the most common slice shape, in (HU / `_BM3D_SCALE`)^2; slices
    of another shape contribute their periodogram resampled (`resample_psd`).
    `psd_sd_hu` gives the SD of white noise of the same variance.
    """
    if not ldct or len(ldct) != len(ndct):
        raise ValueError(f"need matching LDCT/NDCT slices, got {len(ldct)} and {len(ndct)}")
    shape = Counter(np.shape(im) for im in ldct).most_common(1)[0][0]
    total, weight = np.zeros(shape), 0.0
    for low, normal in zip(ldct, ndct):
        diff = (np.asarray(low, np.float64) - np.asarray(normal, np.float64)) / _BM3D_SCALE
        window = _noise_window(normal)
        sum_w2 = float(np.sum(window ** 2))
        diff = (diff - np.sum(diff * window) / np.sum(window)) * window
        periodogram = diff.size * np.abs(np.fft.fft2(diff)) ** 2 / sum_w2
        if periodogram.shape != shape:
            periodogram = resample_psd(periodogram, shape)
        total += sum_w2 * periodogram
        weight += sum_w2
    psd = total / weight
    psd[0, 0] = np.mean([psd[1 % shape[0], 0], psd[-1, 0], psd[0, 1 % shape[1]], psd[0, -1]])
    ratio = _ndct_noise_ratio(ldct, ndct)
    return psd / (1.0 + ratio ** 2)


def psd_sd_hu(psd: np.ndarray) -> float:
    """The SD (HU) of white noise with the variance of ``psd`` (bm3d convention, BM3D units)."""
    psd = np.asarray(psd, np.float64)
    return float(np.sqrt(np.mean(psd) / psd.size) * _BM3D_SCALE)


def resample_psd(psd: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``psd`` (bm3d convention, unshifted) for images of ``shape``: the spectral density is
    linearly interpolated at the new grid's frequencies (periodically) and rescaled by the ratio
    of pixel counts, so the variance (mean(psd) / N) and the spectral shape are kept."""
    psd = np.asarray(psd, np.float64)
    shape = tuple(int(n) for n in shape)
    if psd.shape == shape:
        return psd.copy()
    rows = np.arange(shape[0]) * (psd.shape[0] / shape[0])
    cols = np.arange(shape[1]) * (psd.shape[1] / shape[1])
    coords = np.meshgrid(rows, cols, indexing="ij")
    out = ndimage.map_coordinates(psd, coords, order=1, mode="grid-wrap")
    return np.maximum(out, 0.0) * (shape[0] * shape[1] / psd.size)


@contextlib.contextmanager
def _numpy_trapz():
    """``np.trapz`` for the duration: bm4d 4.2.5 (under bm3d 4.0.3) calls it when it estimates
    its thresholds from a PSD, and NumPy 2.4 removed it (``np.trapezoid`` is the same)."""
    if not hasattr(np, "trapezoid"):  # NumPy < 2: np.trapz is there
        yield
        return
    saved = np.__dict__.get("trapz")
    np.trapz = np.trapezoid
    try:
        yield
    finally:
        if saved is None:
            del np.trapz
        else:
            np.trapz = saved


def _bm3d_one(args) -> np.ndarray:
    import bm3d

    image, noise = args  # noise: SD or PSD, in BM3D units
    if np.ndim(noise) == 0:
        out = bm3d.bm3d(image / _BM3D_SCALE, noise)
    else:
        with _numpy_trapz():
            out = bm3d.bm3d(image / _BM3D_SCALE, noise)
    return (out * _BM3D_SCALE).astype(np.float32)


def bm3d(images: list[np.ndarray], noise, workers: int | None = None) -> list[np.ndarray]:
    """BM3D of every image, one process per CPU core (``workers``; 1: in this process).

    ``noise`` is either the noise SD in HU (a float: white noise, classic BM3D) or a 2-D noise
    PSD as `paired_noise_psd` returns it (bm3d convention, (HU / `_BM3D_SCALE`)^2: correlated
    noise, BM3D with exact transform-domain variances and thresholds chosen from the PSD; slower).
    BM3D needs the PSD at the image's shape: an image of another shape gets the PSD resampled
    to it (`resample_psd`, which keeps the variance and the spectral shape).
    """
    workers = workers or os.cpu_count() or 1
    if np.ndim(noise) == 0:
        jobs = [(np.asarray(im, np.float64), float(noise) / _BM3D_SCALE) for im in images]
    elif np.ndim(noise) == 2:
        psd = np.asarray(noise, np.float64)
        if not np.all(np.isfinite(psd)) or psd.min() < 0 or psd.max() <= 0:
            raise ValueError("the noise PSD must be finite, non-negative and not all zero")
        by_shape = {psd.shape: psd}
        jobs = []
        for im in images:
            im = np.asarray(im, np.float64)
            if im.shape not in by_shape:
                by_shape[im.shape] = resample_psd(psd, im.shape)
            jobs.append((im, by_shape[im.shape]))
    else:
        raise ValueError(f"noise must be an SD (HU) or a 2-D PSD, got shape {np.shape(noise)}")
    if workers == 1 or len(jobs) <= 1:
        return [_bm3d_one(job) for job in jobs]
    # spawn, not fork: the parent holds TensorFlow's threads, which a fork would copy half-way
    with ProcessPoolExecutor(min(workers, len(jobs)),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_bm3d_one, jobs))
