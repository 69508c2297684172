"""The independent CNN observer: trained on the tiny run's records from its own seed, on LDCT too,
with its own outputs; not the map classifier; loadable; a one-line error without records."""

import dataclasses
import json
import subprocess
import sys

import keras
import pytest

from ldct_tf.models.classifier import CAM_LAYER
from ldct_tf.train import observer as observer_training
from ldct_tf.workdir import Workdir


@pytest.fixture(scope="module")
def observed_tiny(trained_tiny, tmp_path_factory):
    """(config, workdir, metrics, classifier workdir) after training a 2-epoch observer on the tiny
    run's records, in a work directory of its own (linked records) so the shared run stays as the
    other tests expect it."""
    config, run_dir, _ = trained_tiny
    workdir = tmp_path_factory.mktemp("observer_run")
    (Workdir(workdir).records).symlink_to(Workdir(run_dir).records)
    config = config.replace(observer=dataclasses.replace(config.observer, epochs=2))
    return config, workdir, observer_training.run(config, workdir), run_dir


def test_training_writes_model_metrics_config_and_logs(observed_tiny):
    _, workdir, result, _ = observed_tiny
    out = Workdir(workdir).observer
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == result
    for key in ("test_auc_ndct", "test_auc_ldct", "threshold", "test_accuracy_ldct", "patch_size",
                "best_epoch", "inserted_lesions"):
        assert key in saved
    assert (out / "config.toml").is_file()
    assert keras.models.load_model(Workdir(workdir).observer_model).get_layer(CAM_LAYER)
    assert list((workdir / "logs" / "observer").rglob("events.out.tfevents.*"))
    assert not (workdir / "classifier").exists()  # the observer is not the map classifier


def test_metrics_name_its_seed_and_role_and_ldct_training(observed_tiny):
    config, _, result, _ = observed_tiny
    assert result["seed"] == config.observer.seed != config.data.seed
    assert result["role"] == "independent CNN observer"
    assert result["trained_on_ldct"] is True and result["inserted_lesions"] is True
    assert result["epochs"] == 2


def test_its_weights_differ_from_the_map_classifier(observed_tiny):
    _, workdir, _, run_dir = observed_tiny
    observer = keras.models.load_model(Workdir(workdir).observer_model).get_weights()
    classifier = keras.models.load_model(run_dir / "classifier" / "model.keras").get_weights()
    assert [w.shape for w in observer] == [w.shape for w in classifier]  # same architecture
    assert any(not (a == b).all() for a, b in zip(observer, classifier))


def test_load_observer(observed_tiny, tmp_path):
    config, workdir, _, _ = observed_tiny
    assert observer_training.load_observer(tmp_path) is None
    model, patch_size = observer_training.load_observer(workdir)
    assert patch_size == config.classifier.patch_size
    assert model.output_shape == (None, 1)


def test_train_without_records_exits_with_the_command_to_run(tmp_path):
    # `python -m ldct_tf.train` for real: its other error cases run in this process
    result = subprocess.run([sys.executable, "-m", "ldct_tf.train", "--phase", "observer",
                             "--workdir", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "python -m ldct_tf.prepare" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1



def test_warm_up_epochs_train_on_ndct_before_ldct_joins(trained_tiny, tmp_path):
    # 2 epochs with a longer warm-up: one NDCT-only epoch, then one with LDCT (it always comes in)
    config, run_dir, _ = trained_tiny
    (Workdir(tmp_path).records).symlink_to(Workdir(run_dir).records)
    config = config.replace(observer=dataclasses.replace(config.observer, epochs=2,
                                                         ndct_warmup_epochs=5))
    result = observer_training.run(config, tmp_path)
    assert result["epochs_run"] == 2 and 1 < result["best_epoch"] <= 2
    assert result["ndct_warmup_epochs"] == 5 and result["trained_on_ldct"] is True


def test_an_observer_at_chance_is_removed_with_the_fix(tmp_path):
    from ldct_tf.config import load_config
    from ldct_tf.errors import LdctError

    config = load_config(None, ["observer.seed=5", "observer.min_val_auc=0.7"])
    (tmp_path / "observer").mkdir()
    (tmp_path / "observer" / "model.keras").write_bytes(b"a collapsed network")
    observer_training.check_learnt({"val_auc_ndct": 0.71}, config, tmp_path)  # learnt: kept
    assert (tmp_path / "observer").is_dir()
    with pytest.raises(LdctError, match=r"val AUC 0.50, below observer.min_val_auc = 0.7.*"
                                        r"observer.seed=6"):
        observer_training.check_learnt({"val_auc_ndct": 0.5}, config, tmp_path)
    assert not (tmp_path / "observer").exists()
