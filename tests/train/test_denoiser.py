"""Tests for ldct_tf.train.denoiser: pretrain then fine-tune write their artefacts and TensorBoard
events, a fine-tune without pretrain is a clear error, a killed run resumes, and the mirrored
strategy path runs on one device."""

import json
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from cli_fixtures import run_in_process

from ldct_tf.errors import LdctError
from ldct_tf.train.denoiser import run
from ldct_tf.train.phases import main


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


def test_finetune_without_pretrain_is_a_clear_error(masked_tiny, tmp_path, capfd, caplog):
    config, workdir, _ = masked_tiny
    fresh = tmp_path / "w"
    shutil.copytree(workdir / "records_with_mask", fresh / "records_with_mask")
    with pytest.raises(LdctError, match=r"pretrain/model.keras not found.*--phase pretrain"):
        run(config, fresh, "finetune")
    # in this process, as `python -m ldct_tf.train` calls it (test_observer.py runs the command)
    result = run_in_process(main, ["--phase", "finetune", "--workdir", str(fresh), "--config",
                                   str(workdir / "config.toml")], capfd, caplog)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--phase pretrain" in result.stderr


@pytest.mark.slow
def test_killed_training_resumes_where_it_stopped(masked_tiny, tmp_path, capfd, caplog):
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
    # started again (here in this process, as `python -m ldct_tf.train` calls it: only the killed
    # run needs a process of its own)
    second = run_in_process(main, command[3:] + ["--set", f"pretrain.epochs={stopped_at + 2}"],
                            capfd, caplog)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"at epoch {stopped_at + 1}" in second.stdout
    history = json.loads((fresh / "denoiser" / "pretrain" / "history.json").read_text())
    epochs = history["epoch"]
    assert epochs[-1] == stopped_at + 1  # zero-based: the last epoch of the resumed run
    assert len(history["loss"]) <= stopped_at + 2  # nothing trained twice from scratch


def test_mirrored_strategy_path_runs_on_one_device(masked_tiny, tmp_path):
    config, workdir, _ = masked_tiny
    fresh = tmp_path / "w"
    shutil.copytree(workdir / "records", fresh / "records")
    config = config.replace(train=config.train.__class__(strategy="mirrored", image_panels=0,
                                                         precision="float32"))
    summary = run(config, fresh, "pretrain")
    assert summary["replicas"] == 1 and summary["val_psnr_db"] is not None
