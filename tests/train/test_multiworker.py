"""Training under MultiWorkerMirroredStrategy with real worker processes on 127.0.0.1: two
workers pretrain the tiny RED-CNN to the weights of one process with the same global batch, only
the chief writes, and a worker killed mid-run resumes from the chief's backup with every epoch
trained once."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from ldct_tf.train.distribute import local_cluster

pytestmark = pytest.mark.slow

WAIT_S = 240  # each run of the tiny model takes seconds; the bound only stops a hung test


@pytest.fixture(scope="module")
def records_dir(tiny_run):
    """The tiny run's records (two shards per split: "file" sharding has one per worker)."""
    _, workdir = tiny_run
    return workdir


def fresh_workdir(source: Path, target: Path) -> Path:
    shutil.copytree(source / "records", target / "records")
    shutil.copy(source / "config.toml", target / "config.toml")
    shutil.copy(source / "salt", target / "salt")
    return target


def train_command(workdir: Path, *overrides: str, phase: str = "pretrain") -> list[str]:
    command = [sys.executable, "-m", "ldct_tf.train", "--phase", phase, "--workdir",
               str(workdir), "--config", str(workdir / "config.toml"),
               "--set", "train.image_panels=0", "--set", "input.deterministic=true"]
    for item in overrides:
        command += ["--set", item]
    return command


def start_workers(workdir: Path, configs: list[str], scratch: Path, *overrides: str,
                  phase: str = "pretrain") -> list[subprocess.Popen]:
    """One process per ``TF_CONFIG`` of ``configs``; ``TMPDIR`` in ``scratch`` so that the
    non-chief's temporary folders can be seen (and seen gone)."""
    procs = []
    for index, tf_config in enumerate(configs):
        env = dict(os.environ, TMPDIR=str(scratch), TF_CPP_MIN_LOG_LEVEL="2",
                   TF_CONFIG=tf_config)
        log = open(scratch / f"worker{index}.log", "a")
        procs.append(subprocess.Popen(train_command(workdir, *overrides, phase=phase), env=env,
                                      stdout=log, stderr=subprocess.STDOUT, text=True))
        log.close()
    return procs


def finish(procs: list[subprocess.Popen], timeout: float = WAIT_S) -> list[int]:
    """Exit codes; a worker still running after ``timeout`` is killed (a lone MWMS worker
    ignores SIGTERM while it waits for its peers) and counts as -9."""
    deadline = time.time() + timeout
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=max(1.0, deadline - time.time())))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait())
    return codes


def network_weights(path: Path) -> dict[str, np.ndarray]:
    """Every network variable in a ``.weights.h5`` of the wrapped Denoiser, read with h5py."""
    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: found.__setitem__(name, item[()])
                     if isinstance(item, h5py.Dataset) and "/functional/" in name else None)
    assert found, f"no network variables in {path}"
    return found


def logs_of(scratch: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}"
                     for p in sorted(scratch.glob("*.log")))


def test_two_workers_train_the_weights_of_one_process(records_dir, tmp_path):
    """Sharded by data, two workers of 4 patches each see exactly the global batches of 8 that one
    process sees, in the same order, from the same initial weights (the chief's, broadcast): the
    weights after two epochs differ only by the order of float sums (measured 1.2e-10)."""
    multi = fresh_workdir(records_dir, tmp_path / "multi")
    single = fresh_workdir(records_dir, tmp_path / "single")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    common = ("pretrain.epochs=2", "train.input_sharding=\"data\"")
    procs = start_workers(multi, local_cluster(2), scratch, *common, "input.batch_size=4")
    # the one process trains beside the cluster (its own work directory; the workers spend much
    # of their time waiting on each other)
    with open(tmp_path / "single.log", "w") as log:
        one = subprocess.Popen(train_command(single, *common, "input.batch_size=8"), stdout=log,
                               stderr=subprocess.STDOUT, text=True)
    codes, single_code = finish(procs), finish([one])
    assert codes == [0, 0], logs_of(scratch)
    assert single_code == [0], (tmp_path / "single.log").read_text()[-3000:]

    out = multi / "denoiser" / "pretrain"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["workers"] == 2 and summary["replicas"] == 2
    assert summary["input_sharding"] == "data"
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == [0.0, 1.0] and len(history["val_psnr"]) == 2
    # Only the chief wrote: the work directory holds one run's outputs, the non-chief's
    # temporary folder is gone, and no backup is left behind by anyone.
    assert (out / "model.keras").is_file()
    assert sorted(p.name for p in (multi / "denoiser").iterdir()) == ["pretrain"]
    assert list(scratch.glob("ldct_tf-*")) == [], "a worker left its temporary folder"
    assert not (out / "backup").exists()
    assert list((multi / "logs" / "pretrain").rglob("events.out.tfevents.*"))
    log1 = (scratch / "worker1.log").read_text()
    assert "worker 1 of 2 workers" in log1 and "sharded by data" in log1

    got = network_weights(out / "last.weights.h5")
    want = network_weights(single / "denoiser" / "pretrain" / "last.weights.h5")
    assert got.keys() == want.keys()
    difference = max(float(np.abs(got[k] - want[k]).max()) for k in got)
    assert difference < 1e-6, f"two workers differ from one process by {difference}"


def test_a_killed_worker_resumes_from_the_chiefs_backup(records_dir, tmp_path):
    """File sharding (two shards, one each). Worker 1 is killed once the chief has backed up
    epoch 2; the chief stops with one line; both started again with the same TF_CONFIG resume at
    the backed-up epoch, and the history holds every epoch once."""
    workdir = fresh_workdir(records_dir, tmp_path / "w")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    configs = local_cluster(2)
    long = ("train.backup_every_steps=1", "input.patches_per_slice=8", "pretrain.epochs=200")
    procs = start_workers(workdir, configs, scratch, *long)
    metadata = workdir / "denoiser" / "pretrain" / "backup" / "training_metadata.json"
    deadline = time.time() + WAIT_S
    while time.time() < deadline and all(p.poll() is None for p in procs):
        try:
            if json.loads(metadata.read_text())["epoch"] >= 2:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGKILL)
    codes = finish(procs, timeout=120)
    assert codes[1] == -signal.SIGKILL, logs_of(scratch)
    assert codes[0] not in (0, None), logs_of(scratch)  # the chief cannot go on alone
    chief_log = (scratch / "worker0.log").read_text()
    if codes[0] == 2:  # it noticed (rather than being killed by `finish` after waiting)
        assert "a worker of the cluster stopped" in chief_log and "Traceback" not in chief_log
    stopped_at = json.loads(metadata.read_text())["epoch"]
    assert 2 <= stopped_at < 200

    procs = start_workers(workdir, configs, scratch, *long[:2],
                          f"pretrain.epochs={stopped_at + 2}")
    assert finish(procs) == [0, 0], logs_of(scratch)
    chief_log = (scratch / "worker0.log").read_text()
    assert f"resuming from the backup in {metadata.parent} at epoch {stopped_at + 1}" in chief_log
    assert f"at epoch {stopped_at + 1}" in (scratch / "worker1.log").read_text()
    history = json.loads((workdir / "denoiser" / "pretrain" / "history.json").read_text())
    assert history["epoch"] == [float(e) for e in range(stopped_at + 2)]
    summary = json.loads((workdir / "denoiser" / "pretrain" / "summary.json").read_text())
    assert summary["input_sharding"] == "file" and summary["epochs_total"] == stopped_at + 2
    assert list(scratch.glob("ldct_tf-*")) == []


def test_two_workers_train_the_classifier_and_only_the_chief_writes(records_dir, tmp_path):
    """The classifier phase (compiled loss and AUC metrics, early stopping) under two workers:
    both finish, the chief alone writes the model, metrics and TensorBoard. (Its weights are not
    compared with one process: the classifier trains without op determinism, and two
    single-process runs already differ by about 5e-3.)"""
    workdir = fresh_workdir(records_dir, tmp_path / "w")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    procs = start_workers(workdir, local_cluster(2), scratch, phase="classifier")
    assert finish(procs) == [0, 0], logs_of(scratch)
    metrics = json.loads((workdir / "classifier" / "metrics.json").read_text())
    assert metrics["workers"] == 2 and metrics["epochs_run"] == 2
    assert metrics["test_auc_ndct"] is not None and metrics["checkpoint_metric"] == "val_loss"
    assert (workdir / "classifier" / "model.keras").is_file()
    assert sorted(p.name for p in workdir.iterdir()) == ["classifier", "config.toml", "logs",
                                                         "records", "salt"]
    assert [p.name for p in (workdir / "logs").iterdir()] == ["classifier"]
    assert list(scratch.glob("ldct_tf-*")) == []
    assert "test AUC" in (scratch / "worker0.log").read_text()
    assert "test AUC" not in (scratch / "worker1.log").read_text()
