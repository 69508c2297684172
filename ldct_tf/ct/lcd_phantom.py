"""The field's low-contrast test object: a MITA-LCD-like phantom (CCT189 disk module), in HU.

A 200 mm water cylinder (0 HU; air, -1000 HU, outside) with four rod inserts on a circle of
40 mm radius about its centre, at 45 degrees to the axes:

    insert   diameter   contrast   place (as displayed: row down, column right)
    1        3 mm       +14 HU     upper right  (45 deg)
    2        5 mm        +7 HU     upper left  (135 deg)
    3        7 mm        +5 HU     lower left  (225 deg)
    4       10 mm        +3 HU     lower right (315 deg)

What is matched, and where (FDA LCD-CT toolbox, github DIDSR/LCD_CT, CC0):

- Sizes, contrasts and places: ``LCD phantom creation/CCT189_obj.m`` (``d = 40`` mm; insert ``k``
  at ``(+-d cos 45, +-d sin 45)`` in x right / y up, contrast ``HU/1000 * mu_water`` added to the
  water disk). The toolbox's sample ``data/small_dataset/fbp/ground_truth.raw`` (HU + 1000,
  uint16) puts them at the same places in array order: 3 mm upper right, 5 mm upper left, 7 mm
  lower left, 10 mm lower right.
- Signal-present and signal-absent objects that differ only by the inserts (the toolbox's disk
  module and background module).

Where this differs:

- Edges: the toolbox draws ellipses with 4x area oversampling (MIRT ``ellipse_im``); here the
  cylinder and the inserts are `ldct_tf.ct.lesions` disks (erfc edge, Gaussian sigma 0.5 px), the
  same edge as the training lesions.
- Insert centres are snapped to the nearest pixel (at most half a pixel per axis off the 40 mm
  circle: 0.7 mm at 1.4 mm pixels) so that a region of interest can be centred exactly on each
  insert (signal known exactly); the toolbox rounds its ground-truth centroid for the same purpose
  but leaves the insert where it is.
- Imaging: the toolbox reads scanner images or its own MIRT fan-beam simulation (Siemens Force
  geometry, 512 x 512 at 0.664 mm, I0 3e6); here the project's 2-D parallel-beam scanner
  (`ldct_tf.ct.simulate.scan`) images the object, so noise level and texture are those of the
  training data, not of a clinical scanner.

Units: HU (float32 images), pixel spacing in mm, positions and radii in pixels (row, col of the
pixel grid, the centre of the grid at ``(size - 1) / 2``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ldct_tf.ct import simulate
from ldct_tf.ct.lesions import Lesion, lesion_pattern

CYLINDER_DIAMETER_MM = 200.0
INSERT_CIRCLE_RADIUS_MM = 40.0  # CCT189_obj.m: d = 40
WATER_HU, AIR_HU = 0.0, -1000.0
# (diameter mm, contrast HU, angle deg counter-clockwise from the image right), CCT189_obj.m order
INSERTS = ((3.0, 14.0, 45.0), (5.0, 7.0, 135.0), (7.0, 5.0, 225.0), (10.0, 3.0, 315.0))
# The uniform water region whose SD is the noise: the central disk, 15 mm clear of every insert.
WATER_ROI_RADIUS_MM = 20.0
# Pixels of air kept between the cylinder and the scanner's inscribed circle: the erfc edge falls
# to exactly -1000 HU within about 4 px, and `simulate.scan` is twice as fast when nothing
# attenuates outside that circle.
_AIR_MARGIN_PX = 6.0


@dataclass(frozen=True)
class Insert:
    """One rod insert: centre (pixels, row/col), radius (pixels), contrast (HU), diameter (mm)."""

    row: float
    col: float
    radius_px: float
    contrast_hu: float
    diameter_mm: float

    @property
    def diameter_px(self) -> float:
        return 2.0 * self.radius_px

    def lesion(self) -> Lesion:
        """The insert as a `ldct_tf.ct.lesions.Lesion` (erfc-edged disk)."""
        return Lesion(self.row, self.col, self.radius_px, self.contrast_hu, "disk")

    def to_dict(self) -> dict:
        return asdict(self)


def minimum_size(pixel_spacing_mm: float, multiple: int = 32) -> int:
    """The smallest grid (pixels, a multiple of ``multiple``) that holds the cylinder with a few
    pixels of air inside the scanner's inscribed circle (160 px at 1.4 mm)."""
    _check_spacing(pixel_spacing_mm)
    radius_px = CYLINDER_DIAMETER_MM / 2.0 / pixel_spacing_mm
    needed = 2.0 * (radius_px + _AIR_MARGIN_PX + 1.0)
    return int(math.ceil(needed / multiple) * multiple)


def insert_geometry(size: int, pixel_spacing_mm: float) -> tuple[Insert, ...]:
    """The four inserts on a ``size`` x ``size`` grid at ``pixel_spacing_mm`` (see the module
    docstring for places), centres snapped to the nearest pixel."""
    _check_grid(size, pixel_spacing_mm)
    centre = (size - 1) / 2.0
    ring_px = INSERT_CIRCLE_RADIUS_MM / pixel_spacing_mm
    inserts = []
    for diameter_mm, contrast_hu, angle_deg in INSERTS:
        angle = math.radians(angle_deg)
        # y points up in the phantom drawing, rows point down in the image
        row = _snap(centre - ring_px * math.sin(angle))
        col = _snap(centre + ring_px * math.cos(angle))
        inserts.append(Insert(row, col, diameter_mm / 2.0 / pixel_spacing_mm, contrast_hu,
                              diameter_mm))
    return tuple(inserts)


def lcd_phantom(size: int = 256, pixel_spacing_mm: float = 1.4
                ) -> tuple[np.ndarray, np.ndarray, tuple[Insert, ...]]:
    """The phantom with and without its inserts.

    Args:
      size: grid side, pixels; must hold the 200 mm cylinder (`minimum_size` is the smallest
        convenient one).
      pixel_spacing_mm: pixel size, mm.

    Returns:
      ``(present, absent, inserts)``: signal-present and signal-absent objects (float32 HU,
      ``[size, size]``), identical except for the inserts, and the inserts' geometry.
    """
    inserts = insert_geometry(size, pixel_spacing_mm)
    shape = (size, size)
    centre = (size - 1) / 2.0
    cylinder = Lesion(centre, centre, CYLINDER_DIAMETER_MM / 2.0 / pixel_spacing_mm,
                      WATER_HU - AIR_HU, "disk")
    absent = AIR_HU + lesion_pattern(shape, cylinder).astype(np.float64)
    present = absent + sum(lesion_pattern(shape, ins.lesion()).astype(np.float64)
                           for ins in inserts)
    return present.astype(np.float32), absent.astype(np.float32), inserts


def water_roi(size: int, pixel_spacing_mm: float) -> np.ndarray:
    """Boolean mask of the uniform water disk at the centre (radius `WATER_ROI_RADIUS_MM`), where
    the noise SD is measured."""
    _check_grid(size, pixel_spacing_mm)
    centre = (size - 1) / 2.0
    rows, cols = np.ogrid[:size, :size]
    return np.hypot(rows - centre, cols - centre) * pixel_spacing_mm <= WATER_ROI_RADIUS_MM


def scan_realisations(hu: np.ndarray, pixel_spacing_mm: float, dose_fraction: float, n: int,
                      seed, **scanner) -> np.ndarray:
    """``n`` independent noisy images of one object at ``dose_fraction``: `simulate.scan` with
    realisation ``i`` seeded by ``[*seed, i]`` (``seed`` an int or a sequence of ints), so any
    subset is reproducible on its own. ``scanner``: `simulate.scan`'s keyword arguments.

    Returns ``[n, rows, cols]`` float32 HU. The object is projected once (`simulate.scans`).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1 realisations, got {n}")
    base = [int(seed)] if np.isscalar(seed) else [int(s) for s in seed]
    return np.stack(simulate.scans(hu, pixel_spacing_mm, [dose_fraction] * n,
                                   [[*base, i] for i in range(n)], **scanner))


def _snap(value: float) -> float:
    """``value`` moved to the nearest pixel centre (pixel centres are the integers)."""
    return float(math.floor(value + 0.5))


def _check_spacing(pixel_spacing_mm: float) -> None:
    if not pixel_spacing_mm > 0:
        raise ValueError(f"pixel_spacing_mm must be > 0, got {pixel_spacing_mm}")


def _check_grid(size: int, pixel_spacing_mm: float) -> None:
    _check_spacing(pixel_spacing_mm)
    fov_mm = size * pixel_spacing_mm
    if fov_mm < CYLINDER_DIAMETER_MM + 2 * pixel_spacing_mm:
        raise ValueError(
            f"a {size} px grid at {pixel_spacing_mm} mm is {fov_mm:.0f} mm wide and cannot hold "
            f"the {CYLINDER_DIAMETER_MM:.0f} mm cylinder; use size >= "
            f"{minimum_size(pixel_spacing_mm)} or larger pixels")
