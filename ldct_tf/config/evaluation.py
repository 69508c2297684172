"""The sections of the evaluation (`[evaluate]`) and of the end-to-end runner (`[pipeline]`)."""

from __future__ import annotations

from dataclasses import dataclass

from ldct_tf.config.checks import fail
from ldct_tf.config.training import FINETUNE_MODES

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


@dataclass(frozen=True)
class PipelineConfig:
    """The end-to-end runner (`pipelines.local_runner`).

    finetune_modes: finetune variants to train and compare: "weighted" and/or "pairs". "weighted"
      always comes with its control (``finetune_control``: the same fine-tune with uniform weight).
    oracle: also fine-tune the oracle diagnostic (``finetune_oracle``, lesion-disk weight).
    seeds: training seeds of a seed study (`pipelines.local_runner --seeds N`); seed 0 is the run
      itself, seeds 1.. re-train pretrain and every fine-tune in ``<workdir>/seeds/seed-<k>``.
    export_name: model name under the export folder.
    export_dir: export folder (TF Serving's model base paths live under it).
    beam_args: Apache Beam options for the prepare step, e.g. ``["--runner", "DaskRunner",
      "--dask_client_address", "host:8786"]`` (what ``python -m pipelines.local_runner ... --``
      and ``python -m ldct_tf.prepare ... --`` pass); no fingerprint holds them, as every runner
      writes the same records.
    """

    finetune_modes: tuple[str, ...] = ("weighted",)
    oracle: bool = False
    seeds: int = 1
    export_name: str = "ldct_denoiser"
    export_dir: str = "saved_models"
    beam_args: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.finetune_modes or set(self.finetune_modes) - set(FINETUNE_MODES):
            fail("pipeline", "finetune_modes", f"must list some of {', '.join(FINETUNE_MODES)}, "
                  f"got {list(self.finetune_modes)}")
        if self.seeds < 1:
            fail("pipeline", "seeds", f"must be >= 1, got {self.seeds}")
        if not self.export_name:
            fail("pipeline", "export_name", "must not be empty")
