"""Losses of the denoiser's two phases.

`masked_mse` is the finetune loss of Han & Baek: the activation map weights each pixel's squared
error, ``sum(w * (f(x) - y)^2) / sum(w)`` over the whole batch. The weights are normalised by their
sum so the loss scale (and with it the effective learning rate) does not depend on how much of the
image the map covers. Keras' built-in ``sample_weight`` divides by the pixel count instead, which
silently shrinks the loss by the mean weight. Computed in float32 whatever the compute dtype.
"""

from __future__ import annotations

from ldct_tf.tf_import import import_tensorflow

tf = import_tensorflow()


def mse(y_true, y_pred):
    """Mean squared error over the batch, float32."""
    diff = tf.cast(y_pred, tf.float32) - tf.cast(y_true, tf.float32)
    return tf.reduce_mean(tf.square(diff))


def map_weights(activation_map, floor: float):
    """Pixel weights ``floor + (1 - floor) * A`` from the activation map A in [0, 1]: every pixel
    keeps at least ``floor``, the classifier's evidence counts up to 1."""
    return floor + (1.0 - floor) * activation_map


def masked_mse(y_true, y_pred, weights):
    """``sum(w * (y_pred - y_true)^2) / sum(w)`` over the batch, float32.

    Args:
      y_true, y_pred: images ``[batch, H, W, 1]`` (any float dtype).
      weights: non-negative pixel weights broadcastable to them, e.g. `map_weights`.
    """
    weights = tf.cast(weights, tf.float32)
    diff = tf.cast(y_pred, tf.float32) - tf.cast(y_true, tf.float32)
    weighted = tf.reduce_sum(weights * tf.square(diff))
    total = tf.reduce_sum(weights * tf.ones_like(diff))
    return tf.math.divide_no_nan(weighted, total)
