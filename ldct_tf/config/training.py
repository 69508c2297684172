"""The sections of the models: the classifier and its maps (`[classifier]`, `[cam]`), the
independent observer (`[observer]`), the denoiser (`[model]`) and its two phases (`[pretrain]`,
`[finetune]`, `[train]`)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ldct_tf.config.checks import (
    MAX_CONTRAST_HU,
    check_learning_rate,
    check_phase,
    check_range,
    fail,
)

POLICIES = ("auto", "float32", "mixed_float16", "mixed_bfloat16")  # Keras dtype policies


@dataclass(frozen=True)
class ClassifierConfig:
    """The lesion classifier of `train --phase classifier` (the paper's detection CNN).

    patch_size: square patch of the detection task, pixels.
    patches_per_slice: patches per training slice per epoch (random offsets and orientations).
    max_offset_px: the (sham) lesion lies up to this far from the patch centre, both classes alike.
    filters: width of the first block (doubled in each of the next two).
    epochs, batch_size, learning_rate: Adam training; the checkpoint with the best val loss is kept.
    patience: stop after this many epochs without a better val loss (counted from epoch
      min(epochs/2, 10): a small-lesion detector often sits at chance for a while first).
    use_ldct: also train on the LDCT image of each slice (default: NDCT only, as the paper).
    insert_lesions: also train on lesions inserted on the fly at the sham site of every
      lesion-absent training slice, drawn from the `[lesion]` ranges: each such patch comes as a
      twin pair (the same patch with and without the lesion), so only the lesion tells the classes
      apart and positives are unlimited.
    """

    patch_size: int = 64
    patches_per_slice: int = 8
    max_offset_px: int = 12
    filters: int = 16
    epochs: int = 25
    batch_size: int = 32
    learning_rate: float = 1e-3
    patience: int = 8
    use_ldct: bool = False
    insert_lesions: bool = True

    def __post_init__(self):
        s = "classifier"
        if self.patch_size < 16 or self.patch_size % 4:
            fail(s, "patch_size", f"must be a multiple of 4 and >= 16, got {self.patch_size}")
        if not 0 <= self.max_offset_px < self.patch_size // 2:
            fail(s, "max_offset_px", f"must be in [0, patch_size/2), got {self.max_offset_px}")
        for key in ("patches_per_slice", "filters", "epochs", "batch_size", "patience"):
            if getattr(self, key) < 1:
                fail(s, key, f"must be >= 1, got {getattr(self, key)}")
        check_learning_rate(s, self.learning_rate)


@dataclass(frozen=True)
class ObserverConfig:
    """The independent CNN observer of `evaluate` (`train --phase observer`): a second lesion
    classifier, the `[classifier]` architecture and patch task, trained on LDCT and NDCT patches of
    the train split with lesions inserted at sham sites (`insert_contrast_hu`), from its own seed,
    and never used to make maps (the map classifier would favour the fine-tune it trained).

    seed: its own seed (weights, patch draws, inserted lesions).
    epochs: training epochs (the best val loss is kept, as for the classifier).
    ndct_warmup_epochs: the first epochs train on NDCT patches alone, then LDCT joins (at most
      epochs - 1, so LDCT always comes in).
    learning_rate: Adam's rate for the observer.
    insert_contrast_hu: contrast magnitude range (HU) of the lesions inserted into its training
      patches (sizes and signs from `[lesion]`): clearer than the test task, so it learns what a
      lesion is quickly; it then reads the faint test lesions.
    min_val_auc: an observer whose val AUC (NDCT patches) is below this reads nothing: the step
      stops, removes it and names the fix (a network of this kind can collapse to a constant
      output from an unlucky initialisation: another seed, or more epochs).
    """

    seed: int = 1013
    epochs: int = 15
    ndct_warmup_epochs: int = 5
    min_val_auc: float = 0.7
    learning_rate: float = 1e-3
    insert_contrast_hu: tuple[float, float] = (100.0, 200.0)

    def __post_init__(self):
        if self.seed < 0:
            fail("observer", "seed", f"must be >= 0, got {self.seed}")
        if self.epochs < 1:
            fail("observer", "epochs", f"must be >= 1, got {self.epochs}")
        check_learning_rate("observer", self.learning_rate)
        check_range("observer", "insert_contrast_hu", self.insert_contrast_hu, 0.0,
                     MAX_CONTRAST_HU, "magnitudes in HU", positive=True)
        if not 0.0 <= self.min_val_auc <= 1.0:
            fail("observer", "min_val_auc", f"must be in [0, 1], got {self.min_val_auc}")
        if self.ndct_warmup_epochs < 0:
            fail("observer", "ndct_warmup_epochs", f"must be >= 0, got "
                  f"{self.ndct_warmup_epochs}")


CAM_METHODS = ("gradcam", "gradcam++", "layercam", "scorecam")


CAM_NORMALIZATIONS = ("global", "minmax", "max")


@dataclass(frozen=True)
class CamConfig:
    """Activation maps of `python -m ldct_tf.cam` (tf-keras-vis on the trained classifier).

    method: gradcam, gradcam++, layercam or scorecam.
    layer: convolutional layer whose activations are weighted; "" = the last one, by name.
    normalize: scaling of the map into [0, 1]: "global" (one constant for every slice, fixed on the
      train split: a confident lesion and a faint false positive keep their difference),
      "minmax" (per image, (A - min) / (max - min), as tf-keras-vis does) or "max" (per image,
      A / max).
    upsample: interpolation from the layer's resolution to the slice: "bilinear" or "nearest".
    batch_size: slices per tf-keras-vis call (batched calls keep its eager overhead small).
    min_classifier_auc: the classifier's val AUC (NDCT patch task) below which its maps are noise:
      cam stops with a message instead of writing them (0 disables the check).
    min_peak_within: the share of val lesion slices (train without val) whose map peaks within 1.5
      lesion radii, below which the maps miss the lesions: cam stops and removes the maps it wrote
      (0 disables the check). A small val split can pass the AUC check by luck; this one looks at
      the maps themselves.
    """

    method: str = "gradcam"
    layer: str = ""
    normalize: str = "global"
    upsample: str = "bilinear"
    batch_size: int = 8
    min_classifier_auc: float = 0.7
    min_peak_within: float = 0.3

    def __post_init__(self):
        if self.method not in CAM_METHODS:
            fail("cam", "method", f"must be one of {', '.join(CAM_METHODS)}, got {self.method!r}")
        if self.normalize not in CAM_NORMALIZATIONS:
            fail("cam", "normalize", f"must be one of {', '.join(CAM_NORMALIZATIONS)}, "
                  f"got {self.normalize!r}")
        if self.upsample not in ("bilinear", "nearest"):
            fail("cam", "upsample", f"must be bilinear or nearest, got {self.upsample!r}")
        if self.batch_size < 1:
            fail("cam", "batch_size", f"must be >= 1, got {self.batch_size}")
        if not 0 <= self.min_classifier_auc <= 1:
            fail("cam", "min_classifier_auc", f"must be in [0, 1], got {self.min_classifier_auc}")
        if not 0 <= self.min_peak_within <= 1:
            fail("cam", "min_peak_within", f"must be in [0, 1], got {self.min_peak_within}")


ARCHITECTURES = ("redcnn", "unet")


@dataclass(frozen=True)
class ModelConfig:
    """The denoiser network.

    arch: "redcnn" (Chen et al. 2017) or "unet" (residual U-Net).
    filters: width (RED-CNN: every layer, 96 in the paper; U-Net: first level, doubled per level).
    depth: RED-CNN conv (and deconv) layers, 5 in the paper; U-Net pooling levels.
    kernel_size: RED-CNN 5 in the paper; U-Net 3.
    """

    arch: str = "redcnn"
    filters: int = 96
    depth: int = 5
    kernel_size: int = 5

    def __post_init__(self):
        if self.arch not in ARCHITECTURES:
            fail("model", "arch", f"must be one of {', '.join(ARCHITECTURES)}, got {self.arch!r}")
        for key in ("filters", "depth", "kernel_size"):
            if getattr(self, key) < 1:
                fail("model", key, f"must be >= 1, got {getattr(self, key)}")
        if self.kernel_size % 2 == 0:
            fail("model", "kernel_size", f"must be odd, got {self.kernel_size}")


FINETUNE_MODES = ("weighted", "pairs")


FINETUNE_WEIGHTS = ("map", "uniform", "oracle")


# Fine-tune variants: name (its denoiser/ folder, train phase and pipeline step) ->
# (finetune.mode, finetune.weight). The one table the train command and the runner share.
FINETUNE_VARIANTS = {"finetune": ("weighted", "map"), "finetune_control": ("weighted", "uniform"),
                     "finetune_oracle": ("weighted", "oracle"), "finetune_pairs": ("pairs", "map")}


WEIGHT_FORMS = ("boost", "floor")


LR_SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class PretrainConfig:
    """Phase 1: plain MSE on LDCT -> NDCT.

    epochs: passes over the training slices (``input.patches_per_slice`` patches each).
    learning_rate: Adam learning rate (constant).
    """

    epochs: int = 10
    learning_rate: float = 5e-4

    def __post_init__(self):
        check_phase("pretrain", self.epochs, self.learning_rate)


@dataclass(frozen=True)
class FinetuneConfig:
    """Phase 2: from the pretrain network of the same seed, with a fresh optimizer.

    mode: "weighted" (pixel weights w in `masked_mse`, normalised by sum(w)) or "pairs" (the
      paper's literal wording: MSE on LDCT*A -> NDCT*A; written to ``denoiser/finetune_pairs``).
    weight: where w comes from in weighted mode: "map" (the classifier's activation map A: the
      method), "uniform" (w = 1 everywhere: the control, ``denoiser/finetune_control``, same data
      order, epochs and learning rate) or "oracle" (A = the lesion disk from the record geometry:
      a diagnostic of what the network could keep if told exactly where lesions are,
      ``denoiser/finetune_oracle``; never the method).
    weight_form: "boost" (``w = 1 + boost * A^gamma``: every pixel keeps weight 1, what the map
      marks gains up to ``boost``) or "floor" (``w = weight_floor + (1 - weight_floor) * A``).
    boost, gamma: of the boost form (gamma > 1 keeps only what the map is sure of).
    threshold: the map is sharpened first, ``A <- max(A - threshold, 0) / (1 - threshold)``
      (`ldct_tf.models.losses.sharpen`; relative to cam's global scale): 0 keeps it as it is.
    weight_floor: of the floor form.
    lesion_patch_fraction: share of finetune training patches placed on the lesion (or on the sham
      lesion of an absent slice); the control uses the same patches.
    epochs, learning_rate: Adam; the rate follows ``lr_schedule``.
    lr_schedule: "cosine" (decays to 0 over the phase) or "constant".
    checkpoint: "last" (the network after the last epoch: a fixed schedule, the same for the
      method and its control) or "best" (lowest val loss of the phase's own loss, which for the
      control is plain MSE and rewards blur).
    """

    mode: str = "weighted"
    weight: str = "map"
    weight_form: str = "boost"
    boost: float = 1000.0
    gamma: float = 1.0
    threshold: float = 0.0
    weight_floor: float = 0.2
    lesion_patch_fraction: float = 0.75
    epochs: int = 6
    learning_rate: float = 5e-4
    lr_schedule: str = "cosine"
    checkpoint: str = "last"

    def __post_init__(self):
        s = "finetune"
        check_phase(s, self.epochs, self.learning_rate)
        for key, allowed in (("mode", FINETUNE_MODES), ("weight", FINETUNE_WEIGHTS),
                             ("weight_form", WEIGHT_FORMS), ("lr_schedule", LR_SCHEDULES),
                             ("checkpoint", ("last", "best"))):
            if getattr(self, key) not in allowed:
                fail(s, key, f"must be one of {', '.join(allowed)}, got {getattr(self, key)!r}")
        if not 0 <= self.weight_floor <= 1:
            fail(s, "weight_floor", f"must be in [0, 1], got {self.weight_floor}")
        if not (math.isfinite(self.boost) and self.boost >= 0):
            fail(s, "boost", f"must be a finite number >= 0, got {self.boost}")
        if not (math.isfinite(self.gamma) and self.gamma > 0):
            fail(s, "gamma", f"must be a finite number > 0, got {self.gamma}")
        if not 0 <= self.threshold < 1:
            fail(s, "threshold", f"must be in [0, 1), got {self.threshold}")
        if not 0 <= self.lesion_patch_fraction <= 1:
            fail(s, "lesion_patch_fraction",
                  f"must be in [0, 1], got {self.lesion_patch_fraction}")

    @property
    def variant(self) -> str:
        """The output name: finetune, finetune_control, finetune_oracle or finetune_pairs."""
        if self.mode == "pairs":
            return "finetune_pairs"
        return next(name for name, (mode, weight) in FINETUNE_VARIANTS.items()
                    if (mode, weight) == ("weighted", self.weight))

    def as_variant(self, name: str) -> "FinetuneConfig":
        """This section with the mode and weight of variant ``name`` (`FINETUNE_VARIANTS`)."""
        mode, weight = FINETUNE_VARIANTS[name]
        return dataclasses.replace(self, mode=mode, weight=weight)


STRATEGIES = ("auto", "multiworker", "mirrored", "none")


@dataclass(frozen=True)
class TrainConfig:
    """How the denoiser is trained.

    precision: "auto" (mixed_float16 on a GPU, else float32), "float32", "mixed_float16" or
      "mixed_bfloat16".
    strategy: "auto" (MultiWorkerMirroredStrategy when TF_CONFIG names several workers, else
      MirroredStrategy when more than one GPU is visible, else none), "multiworker", "mirrored"
      or "none" (`ldct_tf.train.distribute`).
    input_sharding: how several workers split the training records: "auto" (by file when there
      are at least as many train shards as workers, else by data), "file" or "data" (every
      worker reads all records and keeps its part of each global batch: the same batches as one
      process, so the same weights within float rounding).
    backup_every_steps: interrupted training resumes from the last backup (also at epoch ends).
    image_panels: validation slices shown in TensorBoard every epoch (lesion-present first).
    seed: training seed: the denoiser's initial weights and the order and crops of its patches
      (the data, classifier and maps do not depend on it; a seed study varies it).
    """

    precision: str = "auto"
    strategy: str = "auto"
    input_sharding: str = "auto"
    backup_every_steps: int = 50
    image_panels: int = 4
    seed: int = 0

    def __post_init__(self):
        if self.precision not in POLICIES:
            fail("train", "precision", f"must be one of {', '.join(POLICIES)}, "
                  f"got {self.precision!r}")
        if self.strategy not in STRATEGIES:
            fail("train", "strategy", f"must be one of {', '.join(STRATEGIES)}, "
                  f"got {self.strategy!r}")
        if self.input_sharding not in ("auto", "file", "data"):
            fail("train", "input_sharding", f"must be auto, file or data, got "
                  f"{self.input_sharding!r}")
        if self.backup_every_steps < 1:
            fail("train", "backup_every_steps", f"must be >= 1, got {self.backup_every_steps}")
        if self.image_panels < 0:
            fail("train", "image_panels", f"must be >= 0, got {self.image_panels}")
        if self.seed < 0:
            fail("train", "seed", f"must be >= 0, got {self.seed}")
