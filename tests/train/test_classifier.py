"""Tests for ldct_tf.train.classifier: the classifier trained on a tiny run, and its command
without records (the model itself: tests/models/test_classifier.py)."""

import json

import keras

import ldct_tf.models  # noqa: F401  (registers serializables)
from ldct_tf.models.classifier import CAM_LAYER


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
