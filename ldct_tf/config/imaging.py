"""The sections of the images: what `prepare` makes (`[data]`, `[scanner]`, `[lesion]`,
`[lesion_test]`) and how the tf.data reader cuts it for training (`[input]`)."""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import Any

from ldct_tf.config.checks import (
    MAX_CONTRAST_HU,
    MAX_LESION_DIAMETER_MM,
    SPACING_RANGE_MM,
    check_range,
    fail,
)

SOURCES = ("synthetic", "dicom", "paired-dicom")
AUTO_SHARDS_MAX = 16


SPLITS = ("train", "val", "test")


FILTERS = ("ramp", "shepp-logan", "cosine", "hamming", "hann")  # FBP filters (`simulate`)


PROFILES = ("disk", "gaussian")  # lesion edge profiles (`lesions`)


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
    dose_fraction: low dose relative to normal dose, in (0, 1) (0.25 = quarter dose), at which the
      LDCT is simulated; unused by "paired-dicom", whose LDCT are real scans of a dose the data
      does not state (records and exports give it as unknown: `simulated_dose_fraction`).
    split_fractions: train/val/test shares of the series (split by series, never by slice).
    seed: master seed; every element derives its own seed from it and its identity.
    num_shards: TFRecord shards per split (0: one per series, at most `AUTO_SHARDS_MAX`).
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
            fail(s, "source", f"must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.n_series < 1:
            fail(s, "n_series", f"must be >= 1, got {self.n_series}")
        if self.slices_per_series < 1:
            fail(s, "slices_per_series", f"must be >= 1, got {self.slices_per_series}")
        if self.image_size < 16:
            fail(s, "image_size", f"must be >= 16 pixels, got {self.image_size}")
        if not SPACING_RANGE_MM[0] <= self.pixel_spacing_mm <= SPACING_RANGE_MM[1]:
            fail(s, "pixel_spacing_mm", f"must be in [{SPACING_RANGE_MM[0]:g}, "
                  f"{SPACING_RANGE_MM[1]:g}] mm, got {self.pixel_spacing_mm}")
        if not 0 < self.dose_fraction < 1:
            fail(s, "dose_fraction", f"must be in (0, 1), got {self.dose_fraction}")
        fractions = self.split_fractions
        if len(fractions) != 3 or min(fractions) < 0 or not math.isclose(sum(fractions), 1.0):
            fail(s, "split_fractions",
                  f"must be three shares >= 0 (train, val, test) summing to 1, got {fractions}")
        if self.seed < 0:
            fail(s, "seed", f"must be >= 0, got {self.seed}")
        if self.num_shards < 0:
            fail(s, "num_shards", f"must be >= 0, got {self.num_shards}")
        if self.compression not in ("", "GZIP"):
            fail(s, "compression", f"must be \"\" or \"GZIP\", got {self.compression!r}")

    @property
    def simulated_dose_fraction(self) -> float | None:
        """The LDCT's dose relative to the NDCT as far as the run knows it: `dose_fraction` where
        the LDCT is simulated, None (unknown) for "paired-dicom"."""
        return None if self.source == "paired-dicom" else self.dose_fraction

    @property
    def training_pixel_spacing_mm(self) -> float | None:
        """The pixel spacing the run's images have: `pixel_spacing_mm` where the scans are
        simulated, None for DICOM sources, whose slices keep their own spacing (prepare does not
        resample them)."""
        return self.pixel_spacing_mm if self.source == "synthetic" else None

    def shards_per_split(self, n_series: int) -> int:
        """``num_shards``, or with 0 one per series (at least 1, at most `AUTO_SHARDS_MAX`)."""
        return self.num_shards or max(1, min(AUTO_SHARDS_MAX, n_series))


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
            fail("scanner", "i0", f"must be > 0 photons, got {self.i0}")
        if self.electronic_noise_var < 0:
            fail("scanner", "electronic_noise_var",
                 f"must be >= 0, got {self.electronic_noise_var}")
        if self.n_views < 0 or self.n_views == 1:
            fail("scanner", "n_views", f"must be 0 (auto) or >= 2, got {self.n_views}")
        if self.filter_name not in FILTERS:
            fail("scanner", "filter_name", f"must be one of {', '.join(FILTERS)}, "
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
        check_range(s, "diameter_mm", self.diameter_mm, 0.0, MAX_LESION_DIAMETER_MM,
                     "diameters in mm", positive=True)
        check_range(s, "contrast_hu", self.contrast_hu, 0.0, MAX_CONTRAST_HU,
                     "magnitudes in HU (the sign comes from `sign`)")
        if self.sign not in ("positive", "negative", "both"):
            fail(s, "sign", f"must be positive, negative or both, got {self.sign!r}")
        if self.profile not in PROFILES:
            fail(s, "profile", f"must be one of {', '.join(PROFILES)}, got {self.profile!r}")

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
            fail(self.SECTION, "pairs_per_slice", f"must be in [1, 16], got "
                  f"{self.pairs_per_slice}")


@dataclass(frozen=True)
class LesionVariantsConfig(LesionConfig):
    """Extra lesion-present examples of every train slice (`prepare`), so that training (the
    classifier, the maps and the fine-tune) sees lesions as faint as the observer study asks about
    while `[lesion]` and the test split stay as they are. Each variant is the same anatomy with its
    own lesion, at its own site, through the same physics (new noise), and gets its own map from
    `cam`: map and lesion stay consistent. Val and test are untouched.

    count: variants per train slice (0: none, the records are as without this section).
    diameter_mm, contrast_hu, sign, profile: as in `[lesion]`.
    """

    SECTION: typing.ClassVar[str] = "lesion_variants"

    diameter_mm: tuple[float, float] = (5.0, 9.0)
    contrast_hu: tuple[float, float] = (20.0, 40.0)
    count: int = 0

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.count <= 8:
            fail(self.SECTION, "count", f"must be in [0, 8], got {self.count}")


@dataclass(frozen=True)
class InputConfig:
    """The tf.data reader used for training (`ldct_tf.records.denoiser_input.make_dataset`).

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
            fail("input", "patch_size", f"must be >= 8 pixels, got {self.patch_size}")
        if self.patches_per_slice < 1:
            fail("input", "patches_per_slice", f"must be >= 1, got {self.patches_per_slice}")
        if not 0 <= self.lesion_patch_fraction <= 1:
            fail("input", "lesion_patch_fraction", f"must be in [0, 1], "
                  f"got {self.lesion_patch_fraction}")
        if self.batch_size < 1:
            fail("input", "batch_size", f"must be >= 1, got {self.batch_size}")
        if self.shuffle_buffer < 1:
            fail("input", "shuffle_buffer", f"must be >= 1, got {self.shuffle_buffer}")
