"""Task-based detectability: a channelized Hotelling observer (CHO) with Laguerre-Gauss channels.

As in the FDA DIDSR LCD_CT tool: a handful of rotationally symmetric Laguerre-Gauss channels
(default 5) of width ``a`` tied to the signal size (about 2/3 of the insert diameter), channel
covariance pooled over both classes, template ``w = S^-1 (mean_present - mean_absent)`` learned on
one half of the cases and applied to the other, ``d' = w.T dmean / sqrt(w.T S w)`` on the test half
and ``AUC = Phi(d' / sqrt(2))`` for Gaussian statistics (the empirical AUC of the test scores is
reported too). Signal-known-exactly: ROIs are centred on the (sham) lesion.

`ideal_channelized_dprime` is the closed form for white noise of variance ``s^2`` and a known
signal ``s``: ``d'^2 = (T.T s)^T (s^2 T.T T)^-1 (T.T s)``, used to test the estimator.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from ldct_tf.evaluate.bootstrap import Clusters, bias_corrected_interval
from ldct_tf.evaluate.metrics import auc as empirical_auc

DEFAULT_CHANNELS = 5


def laguerre_gauss_channels(size: int, width_px: float, n_channels: int = DEFAULT_CHANNELS
                            ) -> np.ndarray:
    """Channels ``[size*size, n_channels]``: ``u_n(r) = sqrt(2)/a exp(-pi r^2/a^2)
    L_n(2 pi r^2 / a^2)`` centred on the ROI (Barrett & Myers' LG functions)."""
    if width_px <= 0 or n_channels < 1:
        raise ValueError(f"width_px must be > 0 and n_channels >= 1, got {width_px}, "
                         f"{n_channels}")
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[:size, :size]
    r2 = (yy - c) ** 2 + (xx - c) ** 2
    g = 2.0 * np.pi * r2 / width_px ** 2
    channels = [np.sqrt(2.0) / width_px * np.exp(-g / 2.0) * special.eval_laguerre(n, g)
                for n in range(n_channels)]
    return np.stack([ch.ravel() for ch in channels], axis=1)


def ideal_channelized_dprime(signal: np.ndarray, channels: np.ndarray, noise_sd: float) -> float:
    """Closed-form channelized d' for a known signal in white Gaussian noise."""
    v = channels.T @ signal.ravel()
    cov = noise_sd ** 2 * channels.T @ channels
    return float(np.sqrt(v @ np.linalg.solve(cov, v)))


def channel_outputs(rois: np.ndarray, channels: np.ndarray) -> np.ndarray:
    """``[cases, n_channels]``: each ROI ``[cases, size, size]`` projected on the channels."""
    return rois.reshape(len(rois), -1) @ channels


def cho(present: np.ndarray, absent: np.ndarray, channels: np.ndarray, train: np.ndarray
        ) -> dict:
    """Train on the cases where ``train`` is true, test on the rest.

    Args:
      present, absent: ROIs ``[cases, size, size]`` (matched: case i of both is one location).
      channels: ``[size*size, n_channels]``.
      train: boolean ``[cases]``.

    Returns:
      ``{"dprime": ..., "auc": Phi(d'/sqrt 2), "auc_empirical": ...}`` on the test half.
    """
    vp, va = channel_outputs(present, channels), channel_outputs(absent, channels)
    return cho_fit(vp[train], va[train], vp[~train], va[~train])


def cho_fit(vp_train: np.ndarray, va_train: np.ndarray, vp_test: np.ndarray,
            va_test: np.ndarray, empirical: bool = True) -> dict:
    """The CHO on channel outputs: template ``S^-1 dmean`` from the train cases, d' and AUC on
    the test cases (and the empirical AUC of the test scores unless ``empirical`` is false)."""
    pooled = _pooled(vp_train, va_train)
    template = np.linalg.solve(pooled + _ridge(pooled), vp_train.mean(0) - va_train.mean(0))
    sp, sa = vp_test @ template, va_test @ template
    dmean = sp.mean() - sa.mean()
    spread = 0.5 * (np.var(sp, ddof=1) + np.var(sa, ddof=1))  # = w.T S_test w
    dprime = float(dmean / np.sqrt(spread)) if spread > 0 else float("nan")
    result = {"dprime": dprime, "auc": float(stats.norm.cdf(dprime / np.sqrt(2.0)))}
    if empirical:
        result["auc_empirical"] = empirical_auc(np.concatenate([sp, sa]), np.concatenate(
            [np.ones(len(sp)), np.zeros(len(sa))]))
    return result


def cho_repeated(present: np.ndarray, absent: np.ndarray, channels: np.ndarray, splits: int,
                 rng: np.random.Generator) -> dict:
    """Mean of `cho` over ``splits`` random half/half splits of the cases (every case its own
    unit; `cho_study` is the form with units and intervals)."""
    vp, va = channel_outputs(present, channels), channel_outputs(absent, channels)
    units = np.arange(len(vp))
    clusters = Clusters.singletons(len(vp))
    return _split_average(vp, va, clusters, units, splits, rng)


def cho_study(present: np.ndarray, absent: np.ndarray, channels: np.ndarray, clusters: Clusters,
              splits: int, resamples: int, seed: int) -> dict:
    """The CHO's point value and its bootstrap, both the same estimator.

    Point: the mean over ``splits`` random half/half splits of the *units* (a unit and all its
    cases on one side: no case, and no twin of a case, in both halves). Bootstrap ``b``: draw the
    units with replacement (``rng([seed, b])``), split the *distinct* drawn units in halves
    ``splits`` times (copies stay together) and average the same way. Every set evaluated with the
    same ``seed`` gets the same draws and splits, so differences between sets are paired
    (`paired_difference`).

    Returns ``{"dprime", "auc", "auc_empirical"}`` (point), ``"dprime_ci95"``, ``"auc_ci95"``
    (bias-corrected percentile intervals: a resample has fewer distinct slices to train the
    template on, so its d' runs low; `bootstrap.bias_corrected_interval`) and ``"boot"``:
    ``[resamples, 2]`` bootstrap (d', AUC) values.
    """
    vp, va = channel_outputs(present, channels), channel_outputs(absent, channels)
    point = _split_average(vp, va, clusters, np.arange(clusters.n_units), splits,
                           np.random.default_rng([seed, 0xC40]))
    boot = np.full((resamples, 2), np.nan)
    for b in range(resamples):
        units = clusters.draw(np.random.default_rng([seed, b]))
        try:
            r = _split_average(vp, va, clusters, units, splits,
                               np.random.default_rng([seed, b, 1]), empirical=False)
        except np.linalg.LinAlgError:
            continue
        boot[b] = r["dprime"], r["auc"]
    return {**point, "dprime_ci95": list(bias_corrected_interval(boot[:, 0], point["dprime"])),
            "auc_ci95": list(bias_corrected_interval(boot[:, 1], point["auc"])), "boot": boot}


def paired_difference(a: dict, b: dict, key: str = "auc") -> dict:
    """``a - b`` of two `cho_study` results made with the same seed (same draws and splits):
    the point difference and the bias-corrected percentile interval of the paired bootstrap
    differences."""
    column = {"dprime": 0, "auc": 1}[key]
    diffs = a["boot"][:, column] - b["boot"][:, column]
    value = float(a[key] - b[key])
    low, high = bias_corrected_interval(diffs, value)
    return {"value": value, "ci95": [low, high]}


def _split_average(vp, va, clusters: Clusters, units: np.ndarray, splits: int,
                   rng: np.random.Generator, empirical: bool = True) -> dict:
    """Mean CHO over ``splits`` half/half splits of the distinct ``units`` (with their copies)."""
    distinct, copies = np.unique(units, return_counts=True)
    if len(distinct) < 4:
        raise np.linalg.LinAlgError("fewer than 4 distinct units: no train/test split")
    results = []
    for _ in range(splits):
        order = rng.permutation(len(distinct))
        half = len(distinct) // 2
        sides = []
        for chosen in (order[:half], order[half:]):
            cases = clusters.cases(np.repeat(distinct[chosen], copies[chosen]))
            sides.append(cases)
        train, test = sides
        results.append(cho_fit(vp[train], va[train], vp[test], va[test], empirical))
    return {key: float(np.mean([r[key] for r in results])) for key in results[0]}


def _pooled(p: np.ndarray, a: np.ndarray) -> np.ndarray:
    """The mean of the two classes' sample covariances."""
    dp, da = p - p.mean(0), a - a.mean(0)
    return 0.5 * (dp.T @ dp / (len(p) - 1) + da.T @ da / (len(a) - 1))


def _ridge(cov: np.ndarray) -> np.ndarray:
    """A tiny diagonal load so a near-singular covariance (few cases) still inverts."""
    scale = np.trace(cov) / cov.shape[0]
    return 1e-6 * max(scale, 1e-12) * np.eye(cov.shape[0])


def position_split_replicates(present: np.ndarray, absent: np.ndarray, channels: np.ndarray,
                              resamples: int, rng: np.random.Generator,
                              statistic: str = "dprime") -> np.ndarray:
    """The CHO resampling this project used before `cho_study`: cases drawn with replacement, then
    split in halves by position (copies of a case can land on both sides), one split per
    resample; ``statistic`` ("dprime" or "auc") of each. Kept only so that its bias can be
    measured against `cho_study` (a test and ``benchmarks/interval_widths.py``); never used for a
    reported interval."""
    n, values = len(present), []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        train = np.zeros(n, bool)
        train[rng.permutation(n)[:n // 2]] = True
        values.append(cho(present[idx], absent[idx], channels, train)[statistic])
    return np.asarray(values)
