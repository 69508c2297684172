"""Image-quality measurements in HU.

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

SOFT_TISSUE_RANGE_HU = (0.0, 100.0)
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
                   reference: np.ndarray | None = None) -> float | None:
    """Global noise index (HU): the mode of the local SD over uniform soft tissue.

    ``reference`` (e.g. the NDCT image) decides where soft tissue is; None when the slice has no
    window of soft tissue.
    """
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
