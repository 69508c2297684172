"""RED-CNN (Chen et al., "Low-dose CT with a residual encoder-decoder convolutional neural network",
IEEE TMI 36:2524, 2017): ``depth`` unpadded 5x5 convolutions, then as many 5x5 transposed
convolutions that grow the image back, with residual shortcuts every two layers (input -> output,
and between mirrored encoder/decoder layers) and ReLU throughout. The paper uses 96 filters and
depth 5.

Fully convolutional: any input size of at least ``depth * (kernel_size - 1) + 1`` pixels. Input and
output are in network range (`ldct_tf.models.preprocessing.normalize_hu`); inside, the network works
in abdomen-window units (`ldct_tf.models.layers.to_window_units`), and the last deconvolution starts
at zero so the untrained network is the identity (a random residual would first have to be
unlearned). The output layer is float32 under any mixed-precision policy; its ReLU keeps it >= -1024
HU.
"""

from __future__ import annotations

from ldct_tf.tf_import import import_tensorflow

import_tensorflow()
import keras  # noqa: E402  (after the quiet TensorFlow import)

from ldct_tf.models.layers import from_window_units, to_window_units  # noqa: E402


def build_redcnn(filters: int = 96, depth: int = 5, kernel_size: int = 5,
                 name: str = "redcnn") -> keras.Model:
    """A functional RED-CNN; every layer named (``enc{i}_conv``, ``dec{i}_deconv``, ``skip{i}``).

    Shortcuts: encoder activations after layers 2, 4, ... are added to the decoder at the mirrored
    position, and the input to the last decoder output, before its ReLU (as in the paper's Fig. 1).
    """
    if filters < 1 or depth < 1 or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"RED-CNN needs filters >= 1, depth >= 1 and an odd kernel_size, got "
                         f"filters={filters}, depth={depth}, kernel_size={kernel_size}")
    inputs = keras.Input(shape=(None, None, 1), name="ldct")
    scaled = to_window_units(inputs)
    x = scaled
    saved = {}
    for i in range(1, depth + 1):
        x = keras.layers.Conv2D(filters, kernel_size, padding="valid", activation="relu",
                                name=f"enc{i}_conv")(x)
        if i % 2 == 0 and i < depth:
            saved[depth - i] = x  # rejoins after decoder layer depth - i (same spatial size)
    for i in range(1, depth + 1):
        last = i == depth
        x = keras.layers.Conv2DTranspose(1 if last else filters, kernel_size, padding="valid",
                                         kernel_initializer="zeros" if last else "glorot_uniform",
                                         name=f"dec{i}_deconv")(x)
        if i in saved:
            x = keras.layers.Add(name=f"skip{i}")([x, saved[i]])
        if last:
            x = keras.layers.Add(name="skip_input", dtype="float32")([x, scaled])
            x = from_window_units(x)
            x = keras.layers.ReLU(name="output_relu", dtype="float32")(x)
        else:
            x = keras.layers.ReLU(name=f"dec{i}_relu")(x)
    return keras.Model(inputs, x, name=name)
