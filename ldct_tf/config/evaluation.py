"""The section of the evaluation (`[evaluate]`)."""

from __future__ import annotations

from dataclasses import dataclass

from ldct_tf.config.checks import fail


@dataclass(frozen=True)
class EvaluateConfig:
    """`python -m ldct_tf.evaluate` on the test split.

    resamples: bootstrap resamples for every 95 % interval.
    cho_splits: random train/test half splits averaged for the CHO's point estimate.
    cho_channels: Laguerre-Gauss channels.
    roi_size: CHO ROI side, pixels; 0 = 5 lesion radii (largest lesion), odd.
    gaussian_sigmas_px: Gaussian-filter widths tried on val; the best RMSE is used on test.
    bm3d: run the BM3D baseline when the optional `bm3d` package is installed.
    baselines: measure the Gaussian and BM3D baselines (a seed study's extra seeds skip them:
      they do not depend on the training seed).
    seed: seed of the bootstrap and the CHO splits.
    """

    resamples: int = 500
    cho_splits: int = 20
    cho_channels: int = 5
    roi_size: int = 0
    gaussian_sigmas_px: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
    bm3d: bool = True
    baselines: bool = True
    seed: int = 0

    def __post_init__(self):
        for key in ("resamples", "cho_splits", "cho_channels"):
            if getattr(self, key) < 1:
                fail("evaluate", key, f"must be >= 1, got {getattr(self, key)}")
        if self.roi_size < 0 or (self.roi_size and self.roi_size % 2 == 0):
            fail("evaluate", "roi_size", f"must be 0 (auto) or an odd size, got {self.roi_size}")
        if not self.gaussian_sigmas_px or min(self.gaussian_sigmas_px) <= 0:
            fail("evaluate", "gaussian_sigmas_px", f"must be > 0, got {self.gaussian_sigmas_px}")
        if self.seed < 0:
            fail("evaluate", "seed", f"must be >= 0, got {self.seed}")

