"""Inference form of a trained network: the same function, computed faster on CPUs.

A stride-1, unpadded transposed convolution equals a convolution over the input zero-padded by
``kernel - 1`` on every side, with the kernel flipped in space and its channel axes swapped. On
this CPU TensorFlow's transposed convolution (``Conv2DBackpropInput``) runs about 3x slower than a
padded ``Conv2D`` of the same size, so exports and evaluation use `for_inference`.
"""

from __future__ import annotations

from pathlib import Path

from ldct_tf.tf_import import import_tensorflow

import_tensorflow()
import keras  # noqa: E402
from keras import ops  # noqa: E402


@keras.saving.register_keras_serializable(package="ldct_tf")
class FullConv2D(keras.layers.Conv2D):
    """``Conv2D`` over the input zero-padded by ``kernel_size - 1`` (a "full" convolution)."""

    def call(self, inputs):
        kh, kw = self.kernel_size
        padded = ops.pad(inputs, [[0, 0], [kh - 1, kh - 1], [kw - 1, kw - 1], [0, 0]])
        return super().call(padded)


def _replaceable(layer) -> bool:
    return (isinstance(layer, keras.layers.Conv2DTranspose) and tuple(layer.strides) == (1, 1)
            and layer.padding == "valid" and tuple(layer.dilation_rate) == (1, 1))


def for_inference(network: keras.Model) -> keras.Model:
    """A copy of ``network`` whose stride-1 valid transposed convolutions are `FullConv2D`s with
    the equivalent weights; every other layer is cloned as it is."""

    def clone(layer):
        if not _replaceable(layer):
            return layer.__class__.from_config(layer.get_config())
        config = layer.get_config()
        return FullConv2D(filters=config["filters"], kernel_size=config["kernel_size"],
                          activation=config["activation"], use_bias=config["use_bias"],
                          name=config["name"], dtype=config["dtype"])

    fast = keras.models.clone_model(network, clone_function=clone)
    for source, target in zip(network.layers, fast.layers):
        weights = source.get_weights()
        if _replaceable(source):
            kernel = weights[0][::-1, ::-1].transpose(0, 1, 3, 2)  # (kh, kw, out, in) -> in, out
            weights = [kernel, *weights[1:]]
        target.set_weights(weights)
    return fast


def load_for_inference(path: str | Path) -> keras.Model:
    """A saved ``model.keras`` denoising network in its inference form (`for_inference`): the form
    evaluation and the export run. (`ldct_tf.train.denoiser.load_trained` gives the network as
    trained, for fine-tuning and export.)"""
    return for_inference(keras.models.load_model(path))
