"""Tests for ldct_tf.models.inference: the inference form computes the trained network's
function."""

import numpy as np
import pytest

from ldct_tf.config import ModelConfig
from ldct_tf.models.denoiser import build_network


@pytest.mark.parametrize("arch", ["redcnn", "unet"])
def test_inference_form_computes_the_same_function(arch, rng):
    from ldct_tf.models.inference import FullConv2D, for_inference

    network = build_network(ModelConfig(arch=arch, filters=4, depth=3, kernel_size=3))
    network.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32)
                         for w in network.get_weights()])
    fast = for_inference(network)
    x = rng.random((2, 30, 34, 1)).astype(np.float32)
    np.testing.assert_allclose(fast(x), network(x), atol=1e-5)
    replaced = [layer for layer in fast.layers if isinstance(layer, FullConv2D)]
    assert len(replaced) == (3 if arch == "redcnn" else 0)  # U-Net's are stride 2: kept
