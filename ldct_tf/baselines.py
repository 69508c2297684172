"""Classical denoising baselines of the evaluation, tuned on the val split.

- Gaussian filter: the width (pixels) with the lowest RMSE against NDCT on val (abdomen window).
- BM3D (Dabov et al. 2007; the ``bm3d`` package, an optional extra: its licence allows
  non-commercial use only): noise level estimated on val, run in parallel processes.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy import ndimage

from ldct_tf import metrics

_BM3D_SCALE = 1000.0  # BM3D runs on HU / 1000 (its profiles are tuned for O(1) images)


def gaussian(images: list[np.ndarray], sigma_px: float) -> list[np.ndarray]:
    return [ndimage.gaussian_filter(im, sigma_px).astype(np.float32) for im in images]


def tune_gaussian(ldct: list[np.ndarray], ndct: list[np.ndarray], sigmas) -> tuple[float, dict]:
    """The width with the lowest mean abdomen-window RMSE, and the RMSE of every width."""
    scores = {}
    for sigma in sigmas:
        errors = [metrics.rmse(metrics.window(f, "abdomen")[0], metrics.window(n, "abdomen")[0])
                  for f, n in zip(gaussian(ldct, sigma), ndct)]
        scores[float(sigma)] = float(np.mean(errors))
    return min(scores, key=scores.get), scores


def bm3d_available() -> str | None:
    """None when BM3D can run, else why not (a line for the report)."""
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return ("the optional `bm3d` package is not installed (pip install 'ldct_tf[bm3d]'; "
                "non-commercial licence)")
    return None


def estimate_noise_sd(ldct: list[np.ndarray], ndct: list[np.ndarray]) -> float:
    """LDCT noise SD (HU) from val pairs: the SD of LDCT - NDCT in uniform soft tissue, less the
    NDCT's share (their noise is independent; the NDCT/LDCT noise ratio comes from the noise
    index of each)."""
    diffs, ratios = [], []
    for low, normal in zip(ldct, ndct):
        mask = metrics.uniform_tissue_mask(normal)
        if mask.sum() < 50:
            continue
        diffs.append((low - normal)[mask])
        n_low = metrics.noise_index_hu(low, mask=mask)
        n_normal = metrics.noise_index_hu(normal, mask=mask)
        if n_low and n_normal:
            ratios.append(n_normal / n_low)
    if not diffs:
        return float(np.std(np.concatenate([(a - b).ravel() for a, b in zip(ldct, ndct)])))
    diff = np.concatenate(diffs)
    robust_sd = 1.4826 * np.median(np.abs(diff - np.median(diff)))
    ratio = float(np.median(ratios)) if ratios else 0.0
    return float(robust_sd / np.sqrt(1.0 + ratio ** 2))


def _bm3d_one(args) -> np.ndarray:
    import bm3d

    image, sigma = args
    return (bm3d.bm3d(image / _BM3D_SCALE, sigma / _BM3D_SCALE) * _BM3D_SCALE).astype(np.float32)


def bm3d(images: list[np.ndarray], sigma_hu: float, workers: int | None = None
         ) -> list[np.ndarray]:
    """BM3D of every image with noise SD ``sigma_hu``, one process per CPU core."""
    workers = workers or os.cpu_count() or 1
    jobs = [(np.asarray(im, np.float64), sigma_hu) for im in images]
    if workers == 1:
        return [_bm3d_one(job) for job in jobs]
    # spawn, not fork: the parent holds TensorFlow's threads, which a fork would copy half-way
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(_bm3d_one, jobs))
