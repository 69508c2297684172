"""The lesion classifier: flat, named, float32 output, serializable; learns an obvious lesion;
trained on a tiny run."""

import json

import keras
import numpy as np

import ldct_tf.models  # noqa: F401  (registers serializables)
from classifier_fixtures import separable_set, train_on_separable_set
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


def test_training_writes_model_metrics_and_logs(trained_tiny):
    _, workdir, result = trained_tiny
    saved = json.loads((workdir / "classifier" / "metrics.json").read_text())
    assert saved == result
    for key in ("test_auc_ndct", "test_auc_ldct", "threshold", "test_accuracy_ndct"):
        assert key in saved
    assert 0.0 <= saved["test_auc_ndct"] <= 1.0
    assert saved["inserted_lesions"] is True  # the default
    model = keras.models.load_model(workdir / "classifier" / "model.keras")
    assert model.get_layer(CAM_LAYER) is not None
    assert list((workdir / "logs" / "classifier").rglob("events.out.tfevents.*"))


def test_train_without_records_exits_with_the_command_to_run(tmp_path, capfd, caplog):
    # in this process, as `python -m ldct_tf.train` calls it (test_observer.py runs the command)
    from cli_fixtures import run_in_process
    from ldct_tf.train.phases import main

    result = run_in_process(main, ["--phase", "classifier", "--workdir", str(tmp_path)], capfd,
                            caplog)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "python -m ldct_tf.prepare" in result.stderr
