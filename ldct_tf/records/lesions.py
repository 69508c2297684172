"""The lesions of `ldct_tf.ct.lesions` in TensorFlow ops, for tf.data pipelines: additive HU
patterns (`lesion_patterns`), lesion sizes and contrasts drawn from the ``[lesion]`` ranges
(`draw_lesions`) and the smoothed disk edge (`disk_profile`).
"""

from __future__ import annotations

from ldct_tf.config import LesionConfig
from ldct_tf.tf_import import import_tensorflow

tf = import_tensorflow()


def draw_lesions(seed, count: int, pixel_spacing_mm, lesion: LesionConfig):
    """Radius (px) and contrast (HU) of ``count`` lesions, uniform in the ``[lesion]`` ranges
    (diameter in mm, |contrast| in HU; sign by ``lesion.sign``, each 1/2 for "both"), as
    `ldct_tf.ct.lesions.sample_lesion` draws them."""
    u = tf.random.stateless_uniform([count, 3], seed)
    (d_lo, d_hi), (c_lo, c_hi) = lesion.diameter_mm, lesion.contrast_hu
    diameter_mm = d_lo + (d_hi - d_lo) * u[:, 0]
    magnitude = c_lo + (c_hi - c_lo) * u[:, 1]
    sign = {"positive": tf.ones([count]), "negative": -tf.ones([count]),
            "both": tf.where(u[:, 2] < 0.5, -1.0, 1.0)}[lesion.sign]
    return diameter_mm / 2.0 / tf.cast(pixel_spacing_mm, tf.float32), sign * magnitude


def lesion_patterns(size: int, row, col, radius_px, contrast_hu, profile: str):
    """``[n, size, size]`` additive HU patterns of n lesions (centres in patch pixels, may be
    fractional or outside): `ldct_tf.ct.lesions.lesion_pattern` in TensorFlow ops, same formulas
    (disk: erfc edge of 0.5 px; gaussian: ``radius_px`` = half the FWHM)."""
    grid = tf.cast(tf.range(size), tf.float32)
    row, col = tf.cast(row, tf.float32), tf.cast(col, tf.float32)
    r = tf.sqrt((grid[None, :, None] - row[:, None, None]) ** 2
                + (grid[None, None, :] - col[:, None, None]) ** 2)
    radius = tf.cast(radius_px, tf.float32)[:, None, None]
    if profile == "disk":
        weight = disk_profile(r, radius)
    else:
        sigma = radius / tf.sqrt(2.0 * tf.math.log(2.0))
        weight = tf.exp(-r ** 2 / (2.0 * sigma ** 2))
    return tf.cast(contrast_hu, tf.float32)[:, None, None] * weight


def disk_profile(r, radius):
    """`ldct_tf.ct.lesions`' disk: 1 inside ``radius``, an erfc edge of 0.5 px (r in pixels)."""
    return 0.5 * tf.math.erfc((r - radius) / (2.0 ** 0.5 * 0.5))
