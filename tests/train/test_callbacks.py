"""Tests for ldct_tf.train.callbacks: backups are written whole and a damaged one falls back to
the previous."""

import json

import keras
import numpy as np
import pytest

from ldct_tf.errors import LdctError
from ldct_tf.train.callbacks import ResumableBackup, backup_epoch


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
