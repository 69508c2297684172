"""Synthetic body-like CT slices: the built-in data source, so everything runs with no download.

`make_phantom` draws a noiseless abdomen-like 2-D slice in HU: an elliptical body with a
subcutaneous fat layer, abdominal wall muscle, liver, spleen, kidneys (with renal sinus fat), aorta,
a vertebra (trabecular bone inside a cortical shell) with paraspinal muscles, bowel gas and a gentle
low-frequency tissue texture. Sizes are drawn per seed in mm, so the anatomy keeps its physical
scale whatever the pixel spacing; when the field of view is too small for an adult abdomen the body
is shrunk to fit (tiny test images stay body-like). Edges are anti-aliased by 2x supersampling.

Noise comes later, from `ldct_tf.ct.simulate.scan`: NDCT = scan at full dose, LDCT = scan at the
dose fraction, with independent seeds.

HU values (non-contrast abdomen): air -1000, gas -900, fat -100, renal sinus fat -80, mesentery
and bowel 35, kidney 30, aorta 42, spleen 45, muscle 50, liver 60, trabecular bone 250, cortical
bone 800.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ldct_tf.ct.simulate import Seed

DEFAULT_SIZE = 256
DEFAULT_PIXEL_SPACING_MM = 1.4

AIR_HU = -1000.0
_SUPERSAMPLE = 2
_TEXTURE_SD_HU = 5.0
_TEXTURE_SCALE_MM = 4.0


@dataclass(frozen=True)
class _Ellipse:
    """An ellipse in body coordinates (mm; x to the image right, y to the image bottom)."""

    cx: float
    cy: float
    ax: float
    ay: float
    angle_deg: float = 0.0

    def inside(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        t = np.deg2rad(self.angle_deg)
        dx, dy = x - self.cx, y - self.cy
        u = dx * np.cos(t) + dy * np.sin(t)
        v = -dx * np.sin(t) + dy * np.cos(t)
        return (u / self.ax) ** 2 + (v / self.ay) ** 2 <= 1.0

    def inset(self, margin: float) -> "_Ellipse":
        return _Ellipse(self.cx, self.cy, max(self.ax - margin, 1.0), max(self.ay - margin, 1.0),
                        self.angle_deg)


def make_phantom(size: int = DEFAULT_SIZE, pixel_spacing_mm: float = DEFAULT_PIXEL_SPACING_MM,
                 seed: Seed = 0) -> np.ndarray:
    """A noiseless abdomen-like slice.

    Args:
      size: image rows and columns (pixels); any size >= 16.
      pixel_spacing_mm: pixel size in mm; the field of view is ``size * pixel_spacing_mm``.
      seed: int, sequence of ints or `numpy.random.Generator`; each seed is a different "patient".

    Returns:
      float32 array (size, size) in HU, air (-1000 HU) outside the body.
    """
    if int(size) != size or size < 16:
        raise ValueError(f"size must be an integer >= 16 pixels, got {size}")
    if not pixel_spacing_mm > 0:
        raise ValueError(f"pixel_spacing_mm must be > 0, got {pixel_spacing_mm}")
    rng = np.random.default_rng(seed)
    fov_mm = size * pixel_spacing_mm
    n = size * _SUPERSAMPLE
    coords = (np.arange(n) + 0.5) / n * fov_mm - fov_mm / 2.0
    x, y = np.meshgrid(coords, coords)

    layers = _anatomy(rng, fov_mm)
    image = np.full((n, n), AIR_HU)
    for region, hu in layers:
        image[region.inside(x, y)] = hu
    body = layers[0][0].inside(x, y)
    image = image.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean(axis=(1, 3))
    body = body.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean(axis=(1, 3)) > 0.5
    image += _texture(rng, size, pixel_spacing_mm) * _soft_tissue(image) * body
    return image.astype(np.float32)


def _anatomy(rng: np.random.Generator, fov_mm: float) -> list[tuple[_Ellipse, float]]:
    """Regions in painting order (later ones overwrite earlier ones), each with its HU."""
    half_width = rng.uniform(130.0, 165.0)
    scale = min(1.0, 0.44 * fov_mm / half_width)  # shrink the whole body to fit small FOVs
    u = rng.uniform

    def e(cx, cy, ax, ay, angle=0.0):
        return _Ellipse(cx * scale, cy * scale, ax * scale, ay * scale, angle)

    body = e(0.0, u(-5, 5), half_width, half_width * u(0.68, 0.78))
    fat = u(8.0, 22.0)
    wall = body.inset(fat * scale)
    cavity = wall.inset(u(8.0, 12.0) * scale)
    side = rng.choice([-1.0, 1.0])  # mirror some patients so organs are not always on one side
    liver = e(side * -u(45, 60), u(-25, -5), u(55, 75), u(50, 65), u(-20, 20))
    spleen = e(side * u(70, 85), u(15, 35), u(22, 32), u(35, 50), u(-30, 30))
    kidneys = [e(s * u(50, 60), u(40, 50), u(22, 28), u(30, 38), s * u(10, 30)) for s in (-1, 1)]
    sinus = [_Ellipse(k.cx, k.cy, k.ax * 0.35, k.ay * 0.35, k.angle_deg) for k in kidneys]
    vertebra = e(0.0, u(60, 68), u(17, 21), u(15, 19))
    layers = [(body, -100.0), (wall, 50.0), (cavity, 35.0), (liver, u(55, 65)),
              (spleen, u(42, 48))]
    layers += [(k, 30.0) for k in kidneys] + [(s, -80.0) for s in sinus]
    layers += [(e(u(5, 15), u(30, 38), u(9, 12), u(9, 12)), 42.0)]  # aorta
    layers += [(e(sx * u(28, 36), u(85, 95), u(18, 24), u(12, 16)), 50.0) for sx in (-1, 1)]
    layers += [(vertebra, 800.0), (vertebra.inset(3.0 * scale), 250.0),
               (e(0.0, vertebra.cy / scale + 30, 5, 12), 700.0)]  # spinous process
    for _ in range(rng.integers(1, 4)):  # bowel gas pockets, anterior
        layers.append((e(u(-40, 60), u(-70, -30), u(5, 14), u(4, 10), u(0, 180)), -900.0))
    return layers


def _soft_tissue(image: np.ndarray) -> np.ndarray:
    """Weight in [0, 1]: 1 in soft tissue (-150..150 HU), 0 in air, gas and bone."""
    return ((image > -150.0) & (image < 150.0)).astype(np.float64)


def _texture(rng: np.random.Generator, size: int, pixel_spacing_mm: float) -> np.ndarray:
    """Gaussian low-pass noise, SD about `_TEXTURE_SD_HU`, correlation length
    `_TEXTURE_SCALE_MM`."""
    field = ndimage.gaussian_filter(rng.standard_normal((size, size)),
                                    _TEXTURE_SCALE_MM / pixel_spacing_mm)
    sd = field.std()
    return field * (_TEXTURE_SD_HU / sd if sd > 0 else 0.0)
