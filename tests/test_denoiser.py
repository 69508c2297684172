"""Denoiser: masked MSE, networks, the two-phase fit under every precision, errors, resume,
TensorBoard."""

import json
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from ldct_tf.models import losses
from ldct_tf.config import ModelConfig
from ldct_tf.models.denoiser import Denoiser, build_network
from ldct_tf.train.denoiser import run
from ldct_tf.errors import LdctError
from ldct_tf.train.callbacks import ResumableBackup, backup_epoch
from ldct_tf.train.precision import policy_scope


def test_masked_mse_equals_the_formula(rng):
    y, p = rng.random((2, 8, 8, 1)), rng.random((2, 8, 8, 1))
    w = rng.random((2, 8, 8, 1))
    expected = np.sum(w * (p - y) ** 2) / np.sum(w)
    assert float(losses.masked_mse(y, p, w)) == pytest.approx(expected, rel=1e-5)
    assert float(losses.masked_mse(y, p, np.ones_like(w))) == pytest.approx(
        np.mean((p - y) ** 2), rel=1e-5)
    # the scale of the weights does not matter (normalised by their sum)
    assert float(losses.masked_mse(y, p, 7 * w)) == pytest.approx(expected, rel=1e-5)


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


def _batch(rng, n=4, size=32):
    x = rng.random((n, size, size, 1)).astype(np.float32) * 0.3
    return x, x * 0.9, rng.random((n, size, size, 1)).astype(np.float32)


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


@pytest.fixture(scope="module")
def pretrained(denoisers_tiny):
    config, workdir = denoisers_tiny
    summary = json.loads((workdir / "denoiser" / "pretrain" / "summary.json").read_text())
    return config, workdir, summary


def test_pretrain_then_both_finetune_modes_write_their_artefacts(pretrained):
    config, workdir, summary = pretrained
    assert summary["epochs_total"] == 1 and summary["val_psnr_db"] is not None
    weighted = json.loads((workdir / "denoiser" / "finetune" / "summary.json").read_text())
    pairs = run(config.replace(finetune=config.finetune.__class__(mode="pairs", epochs=1)),
                workdir, "finetune")
    for name, result in (("pretrain", summary), ("finetune", weighted),
                         ("finetune_pairs", pairs)):
        out = workdir / "denoiser" / name
        for artefact in ("best.weights.h5", "last.weights.h5", "model.keras", "history.json",
                         "config.toml"):
            assert (out / artefact).exists(), (name, artefact)
        history = json.loads((out / "history.json").read_text())
        assert {"loss", "val_loss", "val_psnr", "val_ssim", "learning_rate"} <= set(history)
        network = keras.models.load_model(out / "model.keras")
        assert network(np.zeros((1, 40, 40, 1), np.float32)).shape == (1, 40, 40, 1)
        assert result["phase"] == name


def test_tensorboard_events_hold_scalars_and_image_panels(pretrained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, workdir, _ = pretrained
    logs = workdir / "logs" / "pretrain"
    tags = set()
    for folder in ("train", "validation", "images"):
        acc = EventAccumulator(str(logs / folder))
        acc.Reload()
        tags |= set(acc.Tags()["tensors"]) | set(acc.Tags()["scalars"])
    assert {"epoch_loss", "epoch_learning_rate", "epoch_psnr", "epoch_ssim"} <= tags
    assert any(tag.startswith("val_panels") for tag in tags)


def test_finetune_without_pretrain_is_a_clear_error(masked_tiny, tmp_path):
    config, workdir, _ = masked_tiny
    fresh = tmp_path / "w"
    shutil.copytree(workdir / "records_with_mask", fresh / "records_with_mask")
    with pytest.raises(LdctError, match=r"pretrain/model.keras not found.*--phase pretrain"):
        run(config, fresh, "finetune")
    result = subprocess.run([sys.executable, "-m", "ldct_tf.train", "--phase", "finetune",
                             "--workdir", str(fresh), "--config", str(workdir / "config.toml")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--phase pretrain" in result.stderr


@pytest.mark.slow
def test_killed_training_resumes_where_it_stopped(masked_tiny, tmp_path):
    _, workdir, _ = masked_tiny
    fresh = tmp_path / "w"
    shutil.copytree(workdir / "records", fresh / "records")
    command = [sys.executable, "-m", "ldct_tf.train", "--phase", "pretrain", "--workdir",
               str(fresh), "--config", str(workdir / "config.toml"), "--set",
               "train.backup_every_steps=1", "--set", "train.image_panels=0"]
    metadata = fresh / "denoiser" / "pretrain" / "backup" / "training_metadata.json"
    first = subprocess.Popen(command + ["--set", "pretrain.epochs=200"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:
        if metadata.exists() and json.loads(metadata.read_text())["epoch"] >= 1:
            break
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    stopped_at = json.loads(metadata.read_text())["epoch"]
    assert 1 <= stopped_at < 200
    second = subprocess.run(command + ["--set", f"pretrain.epochs={stopped_at + 2}"],
                            capture_output=True, text=True)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"at epoch {stopped_at + 1}" in second.stdout
    history = json.loads((fresh / "denoiser" / "pretrain" / "history.json").read_text())
    epochs = history["epoch"]
    assert epochs[-1] == stopped_at + 1  # zero-based: the last epoch of the resumed run
    assert len(history["loss"]) <= stopped_at + 2  # nothing trained twice from scratch


class _StopAfter(keras.callbacks.Callback):
    """Simulates a crash: raises at the end of an epoch, after the backup was written."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch, self.started = epoch, []

    def on_epoch_begin(self, epoch, logs=None):
        self.started.append(epoch)

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("crash")


def _fit_tiny(backup, crash_at):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.ones((8, 2), np.float32), np.ones((8, 1), np.float32)
    probe = _StopAfter(crash_at)
    try:
        model.fit(x, y, batch_size=4, epochs=6, verbose=0,
                  callbacks=[ResumableBackup(backup, save_freq=1), probe])
    except RuntimeError:
        pass
    return probe.started


def test_backup_files_are_complete_and_a_damaged_one_falls_back(tmp_path):
    backup = tmp_path / "backup"
    assert _fit_tiny(backup, crash_at=2) == [0, 1, 2]
    assert backup_epoch(backup) == 3
    assert not list(backup.glob("*partial*"))  # written under temporary names, renamed in place
    previous = json.loads((backup / "training_metadata.json.bkp").read_text())["epoch"]
    assert previous == 2  # the step backup of epoch 2's last batch, kept by the epoch-end one

    (backup / "training_metadata.json").write_text("")  # killed mid-write by another tool
    assert backup_epoch(backup) == previous  # repaired from the previous backup
    assert _fit_tiny(backup, crash_at=4)[0] == previous  # and resumed from it

    (backup / "training_metadata.json").write_text("{")
    (backup / "training_metadata.json.bkp").write_text("")
    with pytest.raises(LdctError, match="delete .*backup"):
        backup_epoch(backup)
    with pytest.raises(LdctError, match="delete .*backup"):
        _fit_tiny(backup, crash_at=5)


def test_mirrored_strategy_path_runs_on_one_device(masked_tiny, tmp_path):
    config, workdir, _ = masked_tiny
    fresh = tmp_path / "w"
    shutil.copytree(workdir / "records", fresh / "records")
    config = config.replace(train=config.train.__class__(strategy="mirrored", image_panels=0,
                                                         precision="float32"))
    summary = run(config, fresh, "pretrain")
    assert summary["replicas"] == 1 and summary["val_psnr_db"] is not None


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
