"""Tests for ldct_tf.models.denoiser: the networks start as the identity and are fully
convolutional, the config round-trips, and one train step runs under each precision policy."""

import keras
import numpy as np
import pytest

from ldct_tf.config import ModelConfig
from ldct_tf.models.denoiser import Denoiser, build_network
from ldct_tf.train.precision import policy_scope


@pytest.mark.parametrize("arch, depth, kernel", [("redcnn", 3, 3), ("unet", 2, 3)])
def test_networks_are_identity_at_init_and_fully_convolutional(arch, depth, kernel, rng):
    network = build_network(ModelConfig(arch=arch, filters=4, depth=depth, kernel_size=kernel))
    names = [layer.name for layer in network.layers]
    assert len(set(names)) == len(names)
    for shape in ((1, 32, 32, 1), (2, 27, 45, 1)):
        x = rng.random(shape).astype(np.float32)
        np.testing.assert_allclose(network(x), x, atol=1e-6)  # zero-initialised residual
    clone = keras.Model.from_config(network.get_config())
    assert [layer.name for layer in clone.layers] == names


def test_denoiser_config_round_trips(tmp_path, rng):
    model = Denoiser(build_network(ModelConfig(filters=4, depth=3, kernel_size=3)), "weighted")
    x = rng.random((1, 24, 24, 1)).astype(np.float32)
    model(x)
    again = Denoiser.from_config(model.get_config())
    again(x)
    again.set_weights(model.get_weights())
    assert again.loss_mode == "weighted"
    np.testing.assert_allclose(again(x), model(x), rtol=1e-6)


@pytest.mark.parametrize("policy", ["float32", "mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("mode", ["mse", "weighted", "pairs"])
def test_one_train_step_under_each_precision(policy, mode, rng):
    x, y, w = _batch(rng)
    data = (x, y) if mode == "mse" else (x * w, y * w) if mode == "pairs" else (x, y, w)
    with policy_scope(policy):
        model = Denoiser(build_network(ModelConfig(filters=4, depth=3, kernel_size=3)), mode)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        model(x)
        before = [v.numpy().copy() for v in model.trainable_variables]
        logs = model.train_step(data)
        assert np.isfinite(float(logs["loss"]))
        changed = [not np.array_equal(b, v.numpy())
                   for b, v in zip(before, model.trainable_variables)]
        assert any(changed)
        assert model(x).dtype == "float32"
        if policy == "mixed_float16":
            assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
            # the step was applied (finite scaled gradients), and the scale is a real one
            assert int(model.optimizer.inner_optimizer.iterations) == 1
            assert float(model.optimizer.dynamic_scale) > 1.0
    assert keras.mixed_precision.global_policy().name == "float32"


def _batch(rng, n=4, size=32):
    x = rng.random((n, size, size, 1)).astype(np.float32) * 0.3
    return x, x * 0.9, rng.random((n, size, size, 1)).astype(np.float32)
