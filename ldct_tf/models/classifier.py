"""The lesion classifier: a flat functional CNN whose Grad-CAM is the activation map.

Flat (no nested backbone), because tf-keras-vis cannot reach inside a nested model; every layer is
named; fully convolutional with global max pooling before the head, so the model trained on
patches also scores whole slices when the maps are computed. Max rather than average pooling:
a lesion covers a few cells of the last feature map, and averaging over the patch dilutes it (on
the demo data: test AUC 0.84 with max vs 0.59 with average pooling after 10 epochs). Input is in
network range (`ldct_tf.models.preprocessing.normalize_hu`); the fixed ``hu_window`` layer rescales
it so that soft tissue spans about one unit (a lesion of 60 HU is 0.015 in network range, too small
for a fresh convolution to see). The single sigmoid output ``lesion_score`` is float32.

Layers: three blocks of two 3x3 convolutions (``filters``, 2x, 4x), max-pooling after the first two,
so the last convolution ``cam_conv`` sees the slice at 1/4 resolution.
"""

from __future__ import annotations

from ldct_tf.models.layers import to_window_units
from ldct_tf.tf_import import import_tensorflow

import_tensorflow()
import keras  # noqa: E402

CAM_LAYER = "cam_conv"


def build_classifier(filters: int = 16, name: str = "lesion_classifier") -> keras.Model:
    """The classifier; output is P(lesion present), shape ``[batch, 1]``, float32."""
    if filters < 1:
        raise ValueError(f"filters must be >= 1, got {filters}")
    inputs = keras.Input(shape=(None, None, 1), name="image")
    x = to_window_units(inputs)
    widths = (filters, 2 * filters, 4 * filters)
    for block, width in enumerate(widths, start=1):
        last = block == len(widths)
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                                name=f"block{block}_conv1")(x)
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                                name=CAM_LAYER if last else f"block{block}_conv2")(x)
        if not last:
            x = keras.layers.MaxPooling2D(name=f"block{block}_pool")(x)
    x = keras.layers.GlobalMaxPooling2D(name="pool")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="lesion_score")(x)
    return keras.Model(inputs, outputs, name=name)
