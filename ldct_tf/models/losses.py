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


def sharpen(activation_map, threshold: float = 0.0):
    """``max(A - t, 0) / (1 - t)``: the map above a threshold ``t`` in [0, 1), rescaled to [0, 1].
    With the "global" maps of `ldct_tf.cam`, ``t`` is relative to the one global scale, so a faint
    false positive below ``t`` drops out everywhere while the lesion's peak keeps its value's
    order; ``t = 0`` returns A."""
    a = tf.cast(activation_map, tf.float32)
    if threshold == 0:
        return a
    if not 0 <= threshold < 1:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    return tf.maximum(a - threshold, 0.0) / (1.0 - threshold)


def map_weights(activation_map, *, form: str, boost: float, gamma: float, floor: float,
                threshold: float):
    """Pixel weights from the activation map A in [0, 1], applied once, by the input pipeline;
    A is first `sharpen`ed by ``threshold`` (0: as it is). Every setting comes from `[finetune]`
    (``weight_form``, ``boost``, ``gamma``, ``weight_floor``, ``threshold``), which owns the
    defaults.

    - ``"boost"``: ``w = 1 + boost * A^gamma``. Every pixel keeps weight 1 (noise is still
      removed everywhere); what the classifier marks counts up to ``1 + boost`` times more. With
      `masked_mse`'s normalisation by ``sum(w)`` a lesion of a few dozen pixels in a 64x64 patch
      then carries a useful share of the loss (with the floor form at 0.2 it carried under 1 %).
    - ``"floor"``: ``w = floor + (1 - floor) * A`` (the first form tried; kept for comparison).
    """
    a = sharpen(activation_map, threshold)
    if form == "boost":
        return 1.0 + boost * tf.pow(a, gamma)
    if form == "floor":
        return floor + (1.0 - floor) * a
    raise ValueError(f"form must be boost or floor, got {form!r}")


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
