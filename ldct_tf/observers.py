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

from ldct_tf.metrics import auc as empirical_auc

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
    vp = present.reshape(len(present), -1) @ channels
    va = absent.reshape(len(absent), -1) @ channels
    test = ~train

    def pooled(p, a):
        return 0.5 * (np.cov(p, rowvar=False) + np.cov(a, rowvar=False))

    template = np.linalg.solve(pooled(vp[train], va[train]) + _ridge(vp[train]),
                               vp[train].mean(0) - va[train].mean(0))
    sp, sa = vp[test] @ template, va[test] @ template
    s_test = pooled(vp[test], va[test])
    dmean = vp[test].mean(0) - va[test].mean(0)
    dprime = float(template @ dmean / np.sqrt(template @ s_test @ template))
    scores = np.concatenate([sp, sa])
    labels = np.concatenate([np.ones(len(sp)), np.zeros(len(sa))])
    return {"dprime": dprime, "auc": float(stats.norm.cdf(dprime / np.sqrt(2.0))),
            "auc_empirical": empirical_auc(scores, labels)}


def cho_repeated(present: np.ndarray, absent: np.ndarray, channels: np.ndarray, splits: int,
                 rng: np.random.Generator) -> dict:
    """Mean of `cho` over ``splits`` random half/half splits of the cases."""
    n = len(present)
    results = []
    for _ in range(splits):
        train = np.zeros(n, bool)
        train[rng.permutation(n)[:n // 2]] = True
        results.append(cho(present, absent, channels, train))
    return {key: float(np.mean([r[key] for r in results])) for key in results[0]}


def _ridge(v: np.ndarray) -> np.ndarray:
    """A tiny diagonal load so a near-singular covariance (few cases) still inverts."""
    scale = np.trace(np.atleast_2d(np.cov(v, rowvar=False))) / v.shape[1]
    return 1e-6 * max(scale, 1e-12) * np.eye(v.shape[1])
