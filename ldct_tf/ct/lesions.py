"""Small low-contrast lesions: where to put them, what they look like, and inserting them.

A lesion is an additive HU pattern centred at a (row, col) pixel position:

- ``disk``: a disk of radius ``radius_px`` whose edge is smoothed by a Gaussian of
  ``edge_sigma_px`` (0.5 px: no staircase, still sharp); the centre carries the full contrast.
- ``gaussian``: ``contrast * exp(-r^2 / (2 sigma^2))`` with ``radius_px`` = half the FWHM, so
  ``sigma = radius_px / sqrt(2 ln 2)``.

Contrast is in HU and may be negative (hypodense, like most liver metastases) or positive.
Lesions are placed in soft tissue (not in air, gas, fat or bone) with room for a background
ring of twice the radius, so contrast can be measured around them. The same draw, with contrast 0,
gives the "sham" lesion recorded for lesion-absent slices: both classes then sample the same kind of
place. For phantoms the lesion is added to the object before `ldct_tf.ct.simulate.scan` so it passes
through the same physics; for real images it is added to the NDCT image before
`ldct_tf.ct.simulate.simulate_low_dose` (and to both images of a real pair).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import ndimage, special

from ldct_tf.config import PROFILES
from ldct_tf.ct.simulate import Seed

SOFT_TISSUE_HU = (-20.0, 120.0)
_EDGE_SIGMA_PX = 0.5
_SMOOTHING_PX = 1.5  # smooth real images before thresholding so noise does not punch holes


class NoRoomForLesion(ValueError):
    """The slice has no soft tissue with room for the lesion (a property of the slice, not a bug:
    data pipelines skip such slices and list them)."""


@dataclass(frozen=True)
class Lesion:
    """One lesion: centre (pixels, row/col, may be fractional), radius (pixels), contrast (HU)."""

    row: float
    col: float
    radius_px: float
    contrast_hu: float
    profile: str = "disk"

    def __post_init__(self):
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, got {self.profile!r}")
        if not self.radius_px > 0:
            raise ValueError(f"radius_px must be > 0, got {self.radius_px}")

    def diameter_mm(self, pixel_spacing_mm: float) -> float:
        return 2.0 * self.radius_px * pixel_spacing_mm

    def sham(self) -> "Lesion":
        """The same lesion with zero contrast: the geometry recorded for a lesion-absent slice."""
        return replace(self, contrast_hu=0.0)

    def to_dict(self) -> dict:
        return asdict(self)


def lesion_pattern(shape: tuple[int, int], lesion: Lesion) -> np.ndarray:
    """The additive HU image of ``lesion`` on a grid of ``shape`` (float32)."""
    rows, cols = np.ogrid[:shape[0], :shape[1]]
    r = np.hypot(rows - lesion.row, cols - lesion.col)
    if lesion.profile == "disk":
        weight = 0.5 * special.erfc((r - lesion.radius_px) / (math.sqrt(2.0) * _EDGE_SIGMA_PX))
    else:
        sigma = lesion.radius_px / math.sqrt(2.0 * math.log(2.0))
        weight = np.exp(-r ** 2 / (2.0 * sigma ** 2))
    return (lesion.contrast_hu * weight).astype(np.float32)


def insert_lesion(hu: np.ndarray, lesion: Lesion) -> np.ndarray:
    """``hu`` (2-D, HU) with ``lesion`` added; the input is not modified. Returns float32 HU."""
    hu = np.asarray(hu, np.float32)
    if hu.ndim != 2:
        raise ValueError(f"hu must be a 2-D slice, got shape {hu.shape}")
    if lesion.contrast_hu == 0.0:
        return hu.copy()
    return hu + lesion_pattern(hu.shape, lesion)


def soft_tissue_mask(hu: np.ndarray, margin_px: float = 0.0) -> np.ndarray:
    """Pixels in soft tissue (`SOFT_TISSUE_HU` after light smoothing), eroded by ``margin_px``."""
    smooth = ndimage.gaussian_filter(np.asarray(hu, np.float32), _SMOOTHING_PX)
    mask = (smooth >= SOFT_TISSUE_HU[0]) & (smooth <= SOFT_TISSUE_HU[1])
    if margin_px > 0:
        mask = ndimage.distance_transform_edt(mask) > margin_px
    return mask


def sample_lesion(
    hu: np.ndarray,
    pixel_spacing_mm: float,
    seed: Seed,
    *,
    diameter_mm: tuple[float, float] = (8.0, 14.0),
    contrast_hu: tuple[float, float] = (40.0, 80.0),
    sign: str = "both",
    profile: str = "disk",
) -> Lesion:
    """Draw a lesion in soft tissue of ``hu``: diameter (mm) and |contrast| (HU) uniform in ranges.

    Args:
      hu: the slice (HU) that decides where soft tissue is.
      pixel_spacing_mm: converts the diameter to pixels.
      seed: int, sequence of ints or `numpy.random.Generator`.
      diameter_mm: (low, high) lesion diameter in mm.
      contrast_hu: (low, high) magnitude of the contrast in HU.
      sign: "positive", "negative" or "both" (each with probability 1/2).
      profile: one of `PROFILES`.

    Raises:
      ValueError: bad ranges.
      NoRoomForLesion: no soft tissue with room for the lesion and its background ring.
    """
    _check_range("diameter_mm", diameter_mm, positive=True)
    _check_range("contrast_hu", contrast_hu, positive=False)
    if sign not in ("positive", "negative", "both"):
        raise ValueError(f"sign must be 'positive', 'negative' or 'both', got {sign!r}")
    rng = np.random.default_rng(seed)
    radius_px = rng.uniform(*diameter_mm) / 2.0 / pixel_spacing_mm
    magnitude = rng.uniform(*contrast_hu)
    negative = sign == "negative" or (sign == "both" and rng.random() < 0.5)
    # Room for the background ring (out to 2 radii) used to measure contrast, plus one pixel.
    candidates = np.argwhere(soft_tissue_mask(hu, margin_px=2.0 * radius_px + 1.0))
    if len(candidates) == 0:
        raise NoRoomForLesion(
            f"no soft tissue ({SOFT_TISSUE_HU[0]:g}..{SOFT_TISSUE_HU[1]:g} HU) with room for a "
            f"{2 * radius_px * pixel_spacing_mm:.1f} mm lesion in this slice")
    row, col = candidates[rng.integers(len(candidates))]
    return Lesion(float(row), float(col), float(radius_px),
                  float(-magnitude if negative else magnitude), profile)


def lesion_contrast(hu: np.ndarray, lesion: Lesion, inner: float = 0.5,
                    ring: tuple[float, float] = (1.5, 2.0)) -> float:
    """Measured contrast (HU): mean within ``inner`` radii minus mean of the background ring.

    The ring spans ``ring`` radii (default 1.5 to 2), outside the smoothed edge of the lesion.
    """
    rows, cols = np.ogrid[:hu.shape[0], :hu.shape[1]]
    r = np.hypot(rows - lesion.row, cols - lesion.col) / lesion.radius_px
    centre = r <= inner
    background = (r >= ring[0]) & (r <= ring[1])
    return float(hu[centre].mean() - hu[background].mean())


def _check_range(name: str, value: tuple[float, float], positive: bool) -> None:
    low, high = value
    if not low <= high or (positive and not low > 0) or (not positive and low < 0):
        bound = "0 < low <= high" if positive else "0 <= low <= high"
        raise ValueError(f"{name} must be (low, high) with {bound}, got {value}")


DEFAULT_BINS = 2  # bins per axis of the contrast-detail results: 2 sizes x 2 contrasts


def bin_index(values, low: float, high: float, n: int = DEFAULT_BINS) -> np.ndarray:
    """Bin of each value among ``n`` equal-width bins over [low, high], edges
    ``low + k (high - low) / n``; a value on an inner edge goes to the upper bin, ``high`` itself
    to the last one, and values outside the range to the nearest end bin (an empty range: bin 0)."""
    values = np.asarray(values, np.float64)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not high > low:
        return np.zeros(values.shape, np.int64)
    return np.clip(np.floor((values - low) / (high - low) * n), 0, n - 1).astype(np.int64)


def lesion_bins(diameter_mm, contrast_hu, diameter_range: tuple[float, float],
                contrast_range: tuple[float, float], n: int = DEFAULT_BINS
                ) -> dict[tuple[tuple[float, float], tuple[float, float]], list[int]]:
    """The contrast-detail bins: ``{((d_lo, d_hi), (c_lo, c_hi)): [indices]}`` of ``n`` x ``n``
    equal-width bins of diameter (mm) and contrast magnitude (HU, the sign ignored) over the
    configured ranges (`bin_index`), every bin present (possibly empty), sizes major. An axis whose
    range is one value (low = high) has one bin."""
    n_d = n if diameter_range[1] > diameter_range[0] else 1
    n_c = n if contrast_range[1] > contrast_range[0] else 1
    size = bin_index(diameter_mm, *diameter_range, n_d)
    contrast = bin_index(np.abs(np.asarray(contrast_hu, np.float64)), *contrast_range, n_c)
    d_edges = np.linspace(*diameter_range, n_d + 1)
    c_edges = np.linspace(*contrast_range, n_c + 1)
    return {((round(float(d_edges[i]), 3), round(float(d_edges[i + 1]), 3)),
             (round(float(c_edges[j]), 3), round(float(c_edges[j + 1]), 3))):
            [k for k in range(len(size)) if size[k] == i and contrast[k] == j]
            for i in range(n_d) for j in range(n_c)}
