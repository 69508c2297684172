"""A residual U-Net denoiser, the encoder-decoder of the Baek group's LDCT work (Kim et al., Med
Phys 46:3906, 2019, a modified U-Net): ``depth`` levels of two 3x3 convolutions with ReLU, max
pooling down, transposed convolution up, skip concatenations, and a residual output
``x + f(x)`` so the network learns the noise.

Fully convolutional: the input is reflect-padded to a multiple of ``2**depth`` inside the model and
the output cropped back (`ldct_tf.models.layers`). Like RED-CNN it works in abdomen-window units
inside and its residual convolution starts at zero (identity at initialisation). Output float32
under any precision policy.
"""

from __future__ import annotations

from ldct_tf.models.layers import CropToReference, PadToMultiple, from_window_units, to_window_units
from ldct_tf.tf_import import import_tensorflow

import_tensorflow()
import keras  # noqa: E402


def build_unet(filters: int = 32, depth: int = 3, kernel_size: int = 3,
               name: str = "unet") -> keras.Model:
    """A functional residual U-Net; layers named ``down{level}_conv{i}``, ``up{level}_...``."""
    if filters < 1 or depth < 1 or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"U-Net needs filters >= 1, depth >= 1 and an odd kernel_size, got "
                         f"filters={filters}, depth={depth}, kernel_size={kernel_size}")
    inputs = keras.Input(shape=(None, None, 1), name="ldct")
    scaled = to_window_units(inputs)
    x = PadToMultiple(2 ** depth, name="pad")(scaled)
    skips = []
    for level in range(depth):
        x = _block(x, filters * 2 ** level, kernel_size, f"down{level}")
        skips.append(x)
        x = keras.layers.MaxPooling2D(name=f"down{level}_pool")(x)
    x = _block(x, filters * 2 ** depth, kernel_size, "bottom")
    for level in reversed(range(depth)):
        width = filters * 2 ** level
        x = keras.layers.Conv2DTranspose(width, 2, strides=2, name=f"up{level}_deconv")(x)
        x = keras.layers.Concatenate(name=f"up{level}_concat")([x, skips[level]])
        x = _block(x, width, kernel_size, f"up{level}")
    residual = keras.layers.Conv2D(1, 1, kernel_initializer="zeros", name="residual_conv")(x)
    residual = CropToReference(name="crop")([residual, scaled])
    outputs = keras.layers.Add(name="output_window", dtype="float32")([scaled, residual])
    outputs = from_window_units(outputs)
    return keras.Model(inputs, outputs, name=name)


def _block(x, width: int, kernel_size: int, prefix: str):
    for i in (1, 2):
        x = keras.layers.Conv2D(width, kernel_size, padding="same", activation="relu",
                                name=f"{prefix}_conv{i}")(x)
    return x
