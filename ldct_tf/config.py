"""Run configuration: frozen dataclasses nested by concern, read from TOML, overridden by --set.

Resolution order: the dataclass defaults below, then a TOML file (a preset in
`pipelines/configs/` or your own), then ``--set section.key=value`` on the command line. Unknown
sections or keys are rejected with the key named; values are type-checked and range-checked with
the bad value quoted. The resolved config is written next to the run (`write_resolved`), so every
work directory says how it was made (Model Garden's ``serialize_config``).

Each section documents its keys and units. Later steps (classifier, CAM, denoiser, evaluation,
export) add their own sections here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ldct_tf.errors import LdctError

SOURCES = ("synthetic", "dicom", "paired-dicom")
SPLITS = ("train", "val", "test")
FILTERS = ("ramp", "shepp-logan", "cosine", "hamming", "hann")  # FBP filters (`simulate`)
PROFILES = ("disk", "gaussian")  # lesion edge profiles (`lesions`)
POLICIES = ("auto", "float32", "mixed_float16", "mixed_bfloat16")  # Keras dtype policies


class ConfigError(LdctError):
    """A config value or key is wrong; the message names it and the allowed values."""


def _fail(section: str, key: str, message: str) -> None:
    raise ConfigError(f"config [{section}] {key}: {message}")


# Physical bounds: a setting outside them is a typo, not an experiment.
SPACING_RANGE_MM = (0.05, 10.0)  # pixel sizes CT can have (the DICOM reader uses the same bounds)
MAX_LESION_DIAMETER_MM = 100.0
MAX_CONTRAST_HU = 2000.0  # more than bone over water
MAX_LEARNING_RATE = 1.0


def _check_learning_rate(section: str, learning_rate: float) -> None:
    if not (math.isfinite(learning_rate) and 0 < learning_rate <= MAX_LEARNING_RATE):
        _fail(section, "learning_rate", f"must be a finite number in (0, {MAX_LEARNING_RATE:g}], "
              f"got {learning_rate}")


def _check_range(section: str, key: str, pair: tuple[float, float], low: float, high: float,
                 what: str) -> None:
    """``pair`` is [lo, hi] with low <= lo <= hi <= high (``low`` excluded when it is 0 and the
    quantity must be positive, said in ``what``)."""
    lo, hi = pair
    if not (low <= lo <= hi <= high) or (what.startswith("positive") and lo <= 0):
        _fail(section, key, f"must be [low, high] {what} with {low:g} "
              f"{'<' if what.startswith('positive') else '<='} low <= high <= {high:g}, "
              f"got {list(pair)}")


@dataclass(frozen=True)
class DataConfig:
    """What `prepare` makes: source, geometry, dose, splits and shards.

    source: "synthetic" (built-in phantoms), "dicom" (NDCT-only series; LDCT is simulated by
      projection-domain noise insertion) or "paired-dicom" (real NDCT/LDCT pairs, Mayo/TCIA layout).
    input: DICOM directory for the dicom sources (also `prepare --input`); saved configs record it
      as ``<input>`` (`ldct_tf.dicom.path_labels`) unless `keep_paths`.
    keep_paths: write real input paths into quarantine.json, logs and saved configs (also
      `prepare --keep-paths`); off by default because PACS folder names often name the patient.
    n_series: synthetic phantoms ("patients"), each its own series.
    slices_per_series: synthetic slices per phantom (independent noise and lesion draws).
    image_size: synthetic slice size, pixels (square).
    pixel_spacing_mm: synthetic pixel size, mm.
    dose_fraction: low dose relative to normal dose, in (0, 1) (0.25 = quarter dose).
    split_fractions: train/val/test shares of the series (split by series, never by slice).
    seed: master seed; every element derives its own seed from it and its identity.
    num_shards: TFRecord shards per split (0 lets the runner choose).
    compression: "" or "GZIP".
    """

    source: str = "synthetic"
    input: str = ""
    keep_paths: bool = False
    n_series: int = 24
    slices_per_series: int = 4
    image_size: int = 256
    pixel_spacing_mm: float = 1.4
    dose_fraction: float = 0.25
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 0
    num_shards: int = 2
    compression: str = ""

    def __post_init__(self):
        s = "data"
        if self.source not in SOURCES:
            _fail(s, "source", f"must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.n_series < 1:
            _fail(s, "n_series", f"must be >= 1, got {self.n_series}")
        if self.slices_per_series < 1:
            _fail(s, "slices_per_series", f"must be >= 1, got {self.slices_per_series}")
        if self.image_size < 16:
            _fail(s, "image_size", f"must be >= 16 pixels, got {self.image_size}")
        if not SPACING_RANGE_MM[0] <= self.pixel_spacing_mm <= SPACING_RANGE_MM[1]:
            _fail(s, "pixel_spacing_mm", f"must be in [{SPACING_RANGE_MM[0]:g}, "
                  f"{SPACING_RANGE_MM[1]:g}] mm, got {self.pixel_spacing_mm}")
        if not 0 < self.dose_fraction < 1:
            _fail(s, "dose_fraction", f"must be in (0, 1), got {self.dose_fraction}")
        fractions = self.split_fractions
        if len(fractions) != 3 or min(fractions) < 0 or not math.isclose(sum(fractions), 1.0):
            _fail(s, "split_fractions",
                  f"must be three shares >= 0 (train, val, test) summing to 1, got {fractions}")
        if self.seed < 0:
            _fail(s, "seed", f"must be >= 0, got {self.seed}")
        if self.num_shards < 0:
            _fail(s, "num_shards", f"must be >= 0, got {self.num_shards}")
        if self.compression not in ("", "GZIP"):
            _fail(s, "compression", f"must be \"\" or \"GZIP\", got {self.compression!r}")


@dataclass(frozen=True)
class ScannerConfig:
    """CT physics of `ldct_tf.ct.simulate` (see its docstring for units and defaults).

    i0: normal-dose photons per detector bin per view.
    electronic_noise_var: Gaussian electronic noise variance, photon counts.
    n_views: projections over 180 degrees; 0 = ceil(pi/2 * image size).
    filter_name: FBP filter: ramp, shepp-logan, cosine, hamming or hann.
    """

    i0: float = 3.0e5
    electronic_noise_var: float = 10.0
    n_views: int = 0
    filter_name: str = "hann"

    def __post_init__(self):
        if not self.i0 > 0:
            _fail("scanner", "i0", f"must be > 0 photons, got {self.i0}")
        if self.electronic_noise_var < 0:
            _fail("scanner", "electronic_noise_var", f"must be >= 0, got {self.electronic_noise_var}")
        if self.n_views < 0 or self.n_views == 1:
            _fail("scanner", "n_views", f"must be 0 (auto) or >= 2, got {self.n_views}")
        if self.filter_name not in FILTERS:
            _fail("scanner", "filter_name", f"must be one of {', '.join(FILTERS)}, "
                  f"got {self.filter_name!r}")

    def simulate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `simulate.scan` / `simulate.simulate_low_dose`."""
        return dict(i0=self.i0, electronic_noise_var=self.electronic_noise_var,
                    n_views=self.n_views or None, filter_name=self.filter_name)


@dataclass(frozen=True)
class LesionConfig:
    """Inserted lesions of the train and val splits (see `ldct_tf.ct.lesions`).

    diameter_mm: (low, high) diameter, mm.
    contrast_hu: (low, high) contrast magnitude, HU.
    sign: "positive", "negative" or "both".
    profile: "disk" (smooth-edged) or "gaussian".
    """

    SECTION: typing.ClassVar[str] = "lesion"

    diameter_mm: tuple[float, float] = (8.0, 14.0)
    contrast_hu: tuple[float, float] = (40.0, 80.0)
    sign: str = "both"
    profile: str = "disk"

    def __post_init__(self):
        s = self.SECTION
        _check_range(s, "diameter_mm", self.diameter_mm, 0.0, MAX_LESION_DIAMETER_MM,
                     "positive diameters in mm")
        _check_range(s, "contrast_hu", self.contrast_hu, 0.0, MAX_CONTRAST_HU,
                     "magnitudes in HU (the sign comes from `sign`)")
        if self.sign not in ("positive", "negative", "both"):
            _fail(s, "sign", f"must be positive, negative or both, got {self.sign!r}")
        if self.profile not in PROFILES:
            _fail(s, "profile", f"must be one of {', '.join(PROFILES)}, got {self.profile!r}")

    def sample_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `lesions.sample_lesion`."""
        return dict(diameter_mm=self.diameter_mm, contrast_hu=self.contrast_hu, sign=self.sign,
                    profile=self.profile)


@dataclass(frozen=True)
class TestLesionConfig(LesionConfig):
    """The lesions of the test split only: the observer study's task, set apart from training's
    `[lesion]` so its difficulty can be tuned to where observers are not saturated (LDCT's CHO
    AUC between 0.75 and 0.95 on the presets; see the README's metric conventions). Training and
    the maps never see them.

    diameter_mm, contrast_hu, sign, profile: as in `[lesion]`.
    pairs_per_slice: matched twin pairs cut from each test slice, each at its own lesion site
      with its own noise (more pairs per phantom resolve smaller differences; the bootstrap
      resamples whole slices, so pairs of one slice count as one unit).
    """

    SECTION: typing.ClassVar[str] = "lesion_test"

    diameter_mm: tuple[float, float] = (8.0, 14.0)
    contrast_hu: tuple[float, float] = (20.0, 40.0)
    pairs_per_slice: int = 1

    def __post_init__(self):
        super().__post_init__()
        if not 1 <= self.pairs_per_slice <= 16:
            _fail(self.SECTION, "pairs_per_slice", f"must be in [1, 16], got "
                  f"{self.pairs_per_slice}")


@dataclass(frozen=True)
class InputConfig:
    """The tf.data reader used for training (`ldct_tf.records.dataset.make_dataset`).

    patch_size: square training patch, pixels.
    patches_per_slice: random patches cropped from each slice per epoch.
    lesion_patch_fraction: share of patches forced to contain the lesion (lesion-present slices).
    batch_size: patches per batch per replica (the global batch grows with the replicas of a
      distribution strategy).
    shuffle_buffer: patches in the shuffle buffer.
    deterministic: fixed order, seeded crops and deterministic TensorFlow ops in training
      (reproducible, slower).
    """

    patch_size: int = 64
    patches_per_slice: int = 8
    lesion_patch_fraction: float = 0.25
    batch_size: int = 16
    shuffle_buffer: int = 1024
    deterministic: bool = False

    def __post_init__(self):
        if self.patch_size < 8:
            _fail("input", "patch_size", f"must be >= 8 pixels, got {self.patch_size}")
        if self.patches_per_slice < 1:
            _fail("input", "patches_per_slice", f"must be >= 1, got {self.patches_per_slice}")
        if not 0 <= self.lesion_patch_fraction <= 1:
            _fail("input", "lesion_patch_fraction", f"must be in [0, 1], "
                  f"got {self.lesion_patch_fraction}")
        if self.batch_size < 1:
            _fail("input", "batch_size", f"must be >= 1, got {self.batch_size}")
        if self.shuffle_buffer < 1:
            _fail("input", "shuffle_buffer", f"must be >= 1, got {self.shuffle_buffer}")


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
            _fail(s, "patch_size", f"must be a multiple of 4 and >= 16, got {self.patch_size}")
        if not 0 <= self.max_offset_px < self.patch_size // 2:
            _fail(s, "max_offset_px", f"must be in [0, patch_size/2), got {self.max_offset_px}")
        for key in ("patches_per_slice", "filters", "epochs", "batch_size", "patience"):
            if getattr(self, key) < 1:
                _fail(s, key, f"must be >= 1, got {getattr(self, key)}")
        _check_learning_rate(s, self.learning_rate)


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
            _fail("observer", "seed", f"must be >= 0, got {self.seed}")
        if self.epochs < 1:
            _fail("observer", "epochs", f"must be >= 1, got {self.epochs}")
        _check_learning_rate("observer", self.learning_rate)
        _check_range("observer", "insert_contrast_hu", self.insert_contrast_hu, 0.0,
                     MAX_CONTRAST_HU, "positive magnitudes in HU")
        if not 0.0 <= self.min_val_auc <= 1.0:
            _fail("observer", "min_val_auc", f"must be in [0, 1], got {self.min_val_auc}")
        if self.ndct_warmup_epochs < 0:
            _fail("observer", "ndct_warmup_epochs", f"must be >= 0, got "
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
            _fail("cam", "method", f"must be one of {', '.join(CAM_METHODS)}, got {self.method!r}")
        if self.normalize not in CAM_NORMALIZATIONS:
            _fail("cam", "normalize", f"must be one of {', '.join(CAM_NORMALIZATIONS)}, "
                  f"got {self.normalize!r}")
        if self.upsample not in ("bilinear", "nearest"):
            _fail("cam", "upsample", f"must be bilinear or nearest, got {self.upsample!r}")
        if self.batch_size < 1:
            _fail("cam", "batch_size", f"must be >= 1, got {self.batch_size}")
        if not 0 <= self.min_classifier_auc <= 1:
            _fail("cam", "min_classifier_auc", f"must be in [0, 1], got {self.min_classifier_auc}")
        if not 0 <= self.min_peak_within <= 1:
            _fail("cam", "min_peak_within", f"must be in [0, 1], got {self.min_peak_within}")


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
            _fail("model", "arch", f"must be one of {', '.join(ARCHITECTURES)}, got {self.arch!r}")
        for key in ("filters", "depth", "kernel_size"):
            if getattr(self, key) < 1:
                _fail("model", key, f"must be >= 1, got {getattr(self, key)}")
        if self.kernel_size % 2 == 0:
            _fail("model", "kernel_size", f"must be odd, got {self.kernel_size}")


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
        _check_phase("pretrain", self.epochs, self.learning_rate)


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
    weight_floor: float = 0.2
    lesion_patch_fraction: float = 0.75
    epochs: int = 6
    learning_rate: float = 5e-4
    lr_schedule: str = "cosine"
    checkpoint: str = "last"

    def __post_init__(self):
        s = "finetune"
        _check_phase(s, self.epochs, self.learning_rate)
        for key, allowed in (("mode", FINETUNE_MODES), ("weight", FINETUNE_WEIGHTS),
                             ("weight_form", WEIGHT_FORMS), ("lr_schedule", LR_SCHEDULES),
                             ("checkpoint", ("last", "best"))):
            if getattr(self, key) not in allowed:
                _fail(s, key, f"must be one of {', '.join(allowed)}, got {getattr(self, key)!r}")
        if not 0 <= self.weight_floor <= 1:
            _fail(s, "weight_floor", f"must be in [0, 1], got {self.weight_floor}")
        if not (math.isfinite(self.boost) and self.boost >= 0):
            _fail(s, "boost", f"must be a finite number >= 0, got {self.boost}")
        if not (math.isfinite(self.gamma) and self.gamma > 0):
            _fail(s, "gamma", f"must be a finite number > 0, got {self.gamma}")
        if not 0 <= self.lesion_patch_fraction <= 1:
            _fail(s, "lesion_patch_fraction",
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


@dataclass(frozen=True)
class TrainConfig:
    """How the denoiser is trained.

    precision: "auto" (mixed_float16 on a GPU, else float32), "float32", "mixed_float16" or
      "mixed_bfloat16".
    strategy: "auto" (MirroredStrategy when more than one GPU is visible), "mirrored" or "none".
    backup_every_steps: interrupted training resumes from the last backup (also at epoch ends).
    image_panels: validation slices shown in TensorBoard every epoch (lesion-present first).
    seed: training seed: the denoiser's initial weights and the order and crops of its patches
      (the data, classifier and maps do not depend on it; a seed study varies it).
    """

    precision: str = "auto"
    strategy: str = "auto"
    backup_every_steps: int = 50
    image_panels: int = 4
    seed: int = 0

    def __post_init__(self):
        if self.precision not in POLICIES:
            _fail("train", "precision", f"must be one of {', '.join(POLICIES)}, "
                  f"got {self.precision!r}")
        if self.strategy not in ("auto", "mirrored", "none"):
            _fail("train", "strategy", f"must be auto, mirrored or none, got {self.strategy!r}")
        if self.backup_every_steps < 1:
            _fail("train", "backup_every_steps", f"must be >= 1, got {self.backup_every_steps}")
        if self.image_panels < 0:
            _fail("train", "image_panels", f"must be >= 0, got {self.image_panels}")
        if self.seed < 0:
            _fail("train", "seed", f"must be >= 0, got {self.seed}")


def _check_phase(section: str, epochs: int, learning_rate: float) -> None:
    if epochs < 1:
        _fail(section, "epochs", f"must be >= 1, got {epochs}")
    _check_learning_rate(section, learning_rate)


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
                _fail("evaluate", key, f"must be >= 1, got {getattr(self, key)}")
        if self.roi_size < 0 or (self.roi_size and self.roi_size % 2 == 0):
            _fail("evaluate", "roi_size", f"must be 0 (auto) or an odd size, got {self.roi_size}")
        if not self.gaussian_sigmas_px or min(self.gaussian_sigmas_px) <= 0:
            _fail("evaluate", "gaussian_sigmas_px", f"must be > 0, got {self.gaussian_sigmas_px}")
        if self.seed < 0:
            _fail("evaluate", "seed", f"must be >= 0, got {self.seed}")


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
    """

    finetune_modes: tuple[str, ...] = ("weighted",)
    oracle: bool = False
    seeds: int = 1
    export_name: str = "ldct_denoiser"
    export_dir: str = "saved_models"

    def __post_init__(self):
        if not self.finetune_modes or set(self.finetune_modes) - set(FINETUNE_MODES):
            _fail("pipeline", "finetune_modes", f"must list some of {', '.join(FINETUNE_MODES)}, "
                  f"got {list(self.finetune_modes)}")
        if self.seeds < 1:
            _fail("pipeline", "seeds", f"must be >= 1, got {self.seeds}")
        if not self.export_name:
            _fail("pipeline", "export_name", "must not be empty")


@dataclass(frozen=True)
class Config:
    """The whole run: one section per concern."""

    data: DataConfig = field(default_factory=DataConfig)
    scanner: ScannerConfig = field(default_factory=ScannerConfig)
    lesion: LesionConfig = field(default_factory=LesionConfig)
    lesion_test: TestLesionConfig = field(default_factory=TestLesionConfig)
    input: InputConfig = field(default_factory=InputConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    observer: ObserverConfig = field(default_factory=ObserverConfig)
    cam: CamConfig = field(default_factory=CamConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {f.name: _plain(dataclasses.asdict(getattr(self, f.name)))
                for f in dataclasses.fields(self)}

    def replace(self, **sections: Any) -> "Config":
        return dataclasses.replace(self, **sections)


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Config:
    """Defaults, then the TOML file at ``path`` (if any), then ``section.key=value`` overrides."""
    raw: dict[str, dict[str, Any]] = {}
    if path is not None:
        path = Path(path)
        if path.is_dir():
            raise ConfigError(f"config file {path} is a folder; pass a TOML file such as "
                              "pipelines/configs/demo.toml")
        if not path.is_file():
            raise ConfigError(f"config file {path} not found; pass a preset such as "
                              "pipelines/configs/demo.toml")
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start}); save it "
                              "as UTF-8 (TOML files are UTF-8)") from None
        except OSError as exc:
            raise ConfigError(f"config file {path} cannot be read ({exc.strerror}); check its "
                              "permissions") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for item in overrides:
        section, key, value = _parse_override(item)
        raw.setdefault(section, {})[key] = value
    return from_dict(raw)


def from_dict(raw: dict[str, Any]) -> Config:
    """A `Config` from nested plain values, rejecting unknown sections and keys."""
    sections = {f.name: f for f in dataclasses.fields(Config)}
    kwargs = {}
    for name, values in raw.items():
        if name not in sections:
            raise ConfigError(f"unknown config section [{name}]; known sections: "
                              f"{', '.join(sections)}")
        if not isinstance(values, dict):
            raise ConfigError(f"config [{name}] must be a table of keys, got {values!r}")
        section_type = typing.get_type_hints(Config)[name]
        kwargs[name] = _build_section(name, section_type, values)
    return Config(**kwargs)


def write_resolved(config: Config, path: str | Path) -> Path:
    """Write the resolved config as TOML (readable back by `load_config`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_toml(config))
    return path


def to_toml(config: Config) -> str:
    lines = ["# Resolved ldct_tf configuration (defaults + preset + overrides)."]
    for section, values in config.to_dict().items():
        lines.append(f"\n[{section}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
    return "\n".join(lines) + "\n"


def _build_section(name: str, section_type: type, values: dict[str, Any]):
    hints = typing.get_type_hints(section_type)
    known = [f.name for f in dataclasses.fields(section_type)]
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown config key [{name}] {key}; known keys: {', '.join(known)}")
        kwargs[key] = _coerce(name, key, hints[key], value)
    return section_type(**kwargs)


def _coerce(section: str, key: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        item_types = typing.get_args(hint)
        if len(item_types) == 2 and item_types[1] is Ellipsis:  # tuple[X, ...]: any length
            if not isinstance(value, (list, tuple)):
                _fail(section, key, f"must be a list, got {value!r}")
            item_types = (item_types[0],) * len(value)
        if not isinstance(value, (list, tuple)) or len(value) != len(item_types):
            _fail(section, key, f"must be a list of {len(item_types)} values, got {value!r}")
        return tuple(_coerce(section, key, t, v) for t, v in zip(item_types, value))
    if hint is bool:
        if not isinstance(value, bool):
            _fail(section, key, f"must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(section, key, f"must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(section, key, f"must be a number, got {value!r}")
        if not math.isfinite(value):  # no setting means anything as inf or nan
            _fail(section, key, f"must be a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            _fail(section, key, f"must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {hint} for [{section}] {key}")


def _parse_override(item: str) -> tuple[str, str, Any]:
    """``section.key=value``; the value is read as TOML (numbers, lists, true), else a string."""
    name, sep, text = item.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not section or not key:
        raise ConfigError(f"--set {item!r} must look like section.key=value, "
                          "e.g. --set data.n_series=8")
    try:
        value = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    return section, key, value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")
