"""Small custom layers (registered as Keras serializables, ``package="ldct_tf"``) and the fixed
input scaling shared by every network.
"""

from __future__ import annotations

from ldct_tf.tf_import import import_tensorflow

import_tensorflow()
import keras  # noqa: E402
from keras import ops  # noqa: E402

from ldct_tf.models.preprocessing import ABDOMEN_WINDOW_HU, HU_MIN, HU_RANGE  # noqa: E402

# Inside every network, network range is rescaled to (HU - 40) / 400: the abdomen window's centre
# and width. In network range soft tissue differs by ~0.01 and noise is ~0.004, which freshly
# initialised convolutions barely see; after rescaling both are O(0.1). On the demo data this
# alone took a 16-filter RED-CNN from +0.6 dB to +4 dB over LDCT in 150 steps.
WINDOW_CENTRE_HU = sum(ABDOMEN_WINDOW_HU) / 2.0
WINDOW_WIDTH_HU = ABDOMEN_WINDOW_HU[1] - ABDOMEN_WINDOW_HU[0]
_SCALE = HU_RANGE / WINDOW_WIDTH_HU
_OFFSET = (HU_MIN - WINDOW_CENTRE_HU) / WINDOW_WIDTH_HU


def to_window_units(x, name: str = "hu_window"):
    """Network range -> (HU - 40) / 400, as a named fixed layer."""
    return keras.layers.Rescaling(_SCALE, offset=_OFFSET, name=name)(x)


def from_window_units(x, name: str = "to_network_range"):
    """Inverse of `to_window_units`, float32 (the networks' outputs are float32)."""
    return keras.layers.Rescaling(1.0 / _SCALE, offset=-_OFFSET / _SCALE, name=name,
                                  dtype="float32")(x)


@keras.saving.register_keras_serializable(package="ldct_tf")
class PadToMultiple(keras.layers.Layer):
    """Symmetric-pad height and width up to a multiple of ``multiple`` (bottom and right: the
    mirror image including the edge row or column, NumPy's "symmetric"), so a network that pools
    ``log2(multiple)`` times accepts any input size."""

    def __init__(self, multiple: int, **kwargs):
        super().__init__(**kwargs)
        if multiple < 1:
            raise ValueError(f"multiple must be >= 1, got {multiple}")
        self.multiple = int(multiple)

    def call(self, x):
        shape = ops.shape(x)
        pad_h = (-shape[1]) % self.multiple
        pad_w = (-shape[2]) % self.multiple
        return ops.pad(x, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]], mode="symmetric")

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple}


@keras.saving.register_keras_serializable(package="ldct_tf")
class CropToReference(keras.layers.Layer):
    """Crop the first input to the height and width of the second (undoes `PadToMultiple`)."""

    def call(self, inputs):
        x, reference = inputs
        shape = ops.shape(reference)
        return x[:, :shape[1], :shape[2], :]
