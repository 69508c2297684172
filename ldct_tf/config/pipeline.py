"""The section of the end-to-end runner (`[pipeline]`, read by `pipelines.local_runner`)."""

from __future__ import annotations

from dataclasses import dataclass

from ldct_tf.config.checks import fail
from ldct_tf.config.training import FINETUNE_MODES


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
