"""Tests for ldct_tf.models.classifier: flat, named, float32 output, serializable; learns an
obvious lesion."""

import keras
import numpy as np
from classifier_fixtures import separable_set, train_on_separable_set

import ldct_tf.models  # noqa: F401  (registers serializables)
from ldct_tf.evaluate.metrics import auc
from ldct_tf.models.classifier import CAM_LAYER, build_classifier
from ldct_tf.train.precision import policy_scope


def test_flat_named_and_fully_convolutional():
    model = build_classifier(4)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)  # no nesting
    names = [layer.name for layer in model.layers]
    assert len(set(names)) == len(names) and CAM_LAYER in names
    for size in ((32, 32), (48, 80)):
        assert model(np.zeros((2, *size, 1), np.float32)).shape == (2, 1)


def test_output_stays_float32_under_mixed_precision():
    with policy_scope("mixed_bfloat16"):
        model = build_classifier(4)
        assert model.get_layer(CAM_LAYER).compute_dtype == "bfloat16"
        assert model(np.zeros((1, 32, 32, 1), np.float32)).dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"  # restored


def test_config_and_file_round_trip(tmp_path, rng):
    model = build_classifier(4)
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    x = rng.random((2, 32, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(clone(x), model(x), rtol=1e-6)
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "m.keras")(x), model(x),
                               rtol=1e-6)


def test_the_classifier_beats_chance_on_a_tiny_separable_set():
    model = train_on_separable_set()
    x, y, _ = separable_set(32, seed=99)
    assert auc(model.predict(x, verbose=0).ravel(), y.ravel()) > 0.9
