"""Tiny prepared work directories, made with the real Beam pipeline (in-process DirectRunner)."""

from __future__ import annotations

from pathlib import Path

from ldct_tf.config import load_config
from ldct_tf.prepare import pipeline as prepare

TINY = ["data.n_series=5", "data.slices_per_series=2", "data.image_size=64",
        "data.pixel_spacing_mm=1.4", "lesion.diameter_mm=[5.0, 7.0]", "data.num_shards=2",
        "input.patch_size=32", "input.batch_size=4", "input.patches_per_slice=4",
        "classifier.patch_size=32", "classifier.max_offset_px=4", "classifier.filters=4",
        "classifier.epochs=2", "classifier.batch_size=8", "classifier.patches_per_slice=4",
        "model.filters=4", "model.depth=3", "model.kernel_size=3", "pretrain.epochs=1",
        "finetune.epochs=1", "train.image_panels=2", "train.precision=\"float32\"",
        # two epochs leave the tiny classifier near chance: its maps are still computed, for the
        # pipeline's sake (the gates themselves are tested in test_cam.py)
        "cam.min_classifier_auc=0.0", "cam.min_peak_within=0.0", "observer.min_val_auc=0.0"]
IN_PROCESS = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


def prepare_tiny(workdir: Path, overrides=(), beam_args=IN_PROCESS):
    config = load_config(None, [*TINY, *overrides])
    prepare.run(config, workdir, None if beam_args is None else list(beam_args))
    return config
