"""The oracle diagnostic's map: the lesion disk of the record geometry in place of the activation
map, to bound what a perfect map could do (a diagnostic, never the method).
"""

from __future__ import annotations

from ldct_tf.records import schema as F
from ldct_tf.records.lesions import disk_profile
from ldct_tf.tf_import import import_tensorflow

tf = import_tensorflow()
ORACLE_MARGIN_PX = 1.0  # the oracle disk reaches one pixel past the lesion radius: edges count


def oracle_map(height, width, row, col, radius_px, label):
    """The oracle diagnostic's "map": 1 on the lesion disk (radius + `ORACLE_MARGIN_PX`, edge
    smoothed like `ldct_tf.ct.lesions`' disk), 0 elsewhere and on lesion-absent slices;
    ``[H, W, 1]`` float32."""
    rows = tf.cast(tf.range(height), tf.float32)[:, None] - tf.cast(row, tf.float32)
    cols = tf.cast(tf.range(width), tf.float32)[None, :] - tf.cast(col, tf.float32)
    r = tf.sqrt(rows ** 2 + cols ** 2)
    disk = disk_profile(r, tf.cast(radius_px, tf.float32) + ORACLE_MARGIN_PX)
    return (disk * tf.cast(label, tf.float32))[..., None]


def with_oracle_map(example: dict) -> dict:
    """``example`` with its ``mask`` replaced by `oracle_map` of its own lesion geometry."""
    shape = tf.shape(example[F.LDCT])
    return {**example, F.MASK: oracle_map(shape[0], shape[1], example[F.LESION_ROW],
                                          example[F.LESION_COL], example[F.LESION_RADIUS_PX],
                                          example[F.LABEL])}
