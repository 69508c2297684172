"""The one mapping between Hounsfield units and the networks' input range.

``normalize_hu`` clips HU to [HU_MIN, HU_MAX] = [-1024, 3072] (the 12-bit CT range) and maps it
linearly to [0, 1], the convention of the common RED-CNN reproductions; ``denormalize_hu`` is its
inverse (without clipping). Both accept NumPy arrays or Python numbers (NumPy in, float32 NumPy out)
and TensorFlow tensors (tensor in, tensor out), so the tf.data pipeline, every model input and the
serving signature share this single definition.
"""

from __future__ import annotations

import numpy as np

HU_MIN = -1024.0
HU_MAX = 3072.0
HU_RANGE = HU_MAX - HU_MIN
# The abdomen window (centre 40, width 400 HU): the reported PSNR/SSIM and the networks' inner
# units.
ABDOMEN_WINDOW_HU = (-160.0, 240.0)


def _is_tensor(x) -> bool:
    # Avoid importing TensorFlow for NumPy callers: only tensors carry a TF dtype.
    return type(x).__module__.startswith(("tensorflow", "keras")) or hasattr(x, "graph")


def normalize_hu(hu):
    """HU -> network range [0, 1] (clipped to [-1024, 3072] HU first)."""
    if _is_tensor(hu):
        import tensorflow as tf

        hu = tf.cast(hu, tf.float32)
        return (tf.clip_by_value(hu, HU_MIN, HU_MAX) - HU_MIN) / HU_RANGE
    hu = np.asarray(hu, np.float32)
    return ((np.clip(hu, HU_MIN, HU_MAX) - HU_MIN) / HU_RANGE).astype(np.float32)


def denormalize_hu(x):
    """Network range -> HU (inverse of `normalize_hu` inside the clipping range)."""
    if _is_tensor(x):
        import tensorflow as tf

        return tf.cast(x, tf.float32) * HU_RANGE + HU_MIN
    return (np.asarray(x, np.float32) * HU_RANGE + HU_MIN).astype(np.float32)
