"""Training callbacks: learning rate in the logs, TensorBoard image panels, resumable backups."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from ldct_tf.tf_import import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402

from ldct_tf import atomic  # noqa: E402
from ldct_tf.errors import LdctError  # noqa: E402
from ldct_tf.models.denoiser import WINDOW_HU, windowed_hu  # noqa: E402
from ldct_tf.records import schema as F  # noqa: E402


class LearningRateLogger(keras.callbacks.Callback):
    """Adds ``learning_rate`` to the epoch logs (so TensorBoard and the CSV history get it).
    Must come before the loggers in the callback list."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(
                self.model.optimizer.learning_rate))


class ImagePanels(keras.callbacks.Callback):
    """Every epoch, writes ``val_panels``: LDCT | denoised | NDCT | map for fixed validation
    slices, in the abdomen window [-160, 240] HU, as TensorBoard images."""

    def __init__(self, log_dir: str | Path, slices: list[dict]):
        super().__init__()
        self.writer = tf.summary.create_file_writer(str(log_dir))
        self.slices = slices

    def on_epoch_end(self, epoch, logs=None):
        if not self.slices:
            return
        panels = []
        span = WINDOW_HU[1] - WINDOW_HU[0]
        for item in self.slices:
            ldct = item[F.LDCT][None]
            denoised = self.model(ldct, training=False)
            tiles = [windowed_hu(ldct) / span, windowed_hu(denoised) / span,
                     windowed_hu(item[F.NDCT][None]) / span, item[F.MASK][None]]
            panels.append(tf.concat([tf.cast(t, tf.float32) for t in tiles], axis=2)[0])
        with self.writer.as_default():
            tf.summary.image("val_panels LDCT|denoised|NDCT|map", tf.stack(panels), step=epoch,
                             max_outputs=len(panels))
        self.writer.flush()


class WeightsCheckpoint(keras.callbacks.Callback):
    """Saves the weights at epoch ends (all of them, or only when ``monitor`` improves), written
    to a temporary file and renamed (`ldct_tf.atomic`), so a process killed mid-write never leaves
    a broken file."""

    def __init__(self, path: str | Path, monitor: str | None = None, best: float = np.inf):
        super().__init__()
        self.path, self.monitor, self.best = Path(path), monitor, best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor) if self.monitor else None
        if self.monitor and (value is None or not value < self.best):
            return
        if value is not None:
            self.best = float(value)
        save_weights(self.model, self.path)


class ModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """Keras's ModelCheckpoint, its file written under a temporary name and renamed
    (`ldct_tf.atomic`): Keras writes in place, and a kill mid-write left a cut ``model.keras``."""

    def _save_model(self, epoch, batch, logs):
        final = self.filepath
        with atomic.replacing(final) as partial:  # nothing saved (no improvement): kept as is
            self.filepath = str(partial)
            try:
                super()._save_model(epoch, batch, logs)
            finally:
                self.filepath = final


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that also saves at every epoch end when saving every N steps, so a
    process killed mid-epoch resumes from its last backup in that epoch, not from scratch. Keeps
    the previous backup too (``double_checkpoint``). Every file is written under a temporary name
    and renamed into place, so a kill at any moment leaves complete files (Keras writes them in
    place: a kill during its metadata write left an empty JSON that stopped the next start).

    Under several workers only the chief writes (``write=True``); every worker restores from
    the chief's backup, so all resume at the same epoch with the same weights."""

    def __init__(self, backup_dir, save_freq, write: bool = True):
        super().__init__(backup_dir, save_freq=save_freq, double_checkpoint=True,
                         delete_checkpoint=write)
        self.write = write

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":
            self._save_model()

    def on_train_begin(self, logs=None):
        backup_epoch(self.backup_dir)  # repairs damaged metadata from the previous backup
        super().on_train_begin(logs)

    def _save_model(self):
        if not self.write:
            return
        backup = Path(self.backup_dir)
        backup.mkdir(parents=True, exist_ok=True)
        weights, metadata = Path(self._weights_path), Path(self._training_metadata_path)
        if weights.exists():
            atomic.copy_file(weights, Path(self._prev_weights_path))
        if metadata.exists():
            atomic.copy_file(metadata, Path(self._prev_training_metadata_path))
        save_weights(self.model, weights)
        atomic.write_text(metadata, json.dumps({"epoch": self._current_epoch,
                                                "batch": self._last_batch_seen}))


def save_weights(model: keras.Model, path: Path) -> None:
    """``model.save_weights(path)``, whole or not at all: HDF5 writes the file into memory, then
    `ldct_tf.atomic` writes its bytes. (Written by HDF5 itself, a full disk crashed the process
    with a segmentation fault as h5py closed the file, Keras 3.15 / h5py 3.x.) The file is what
    `save_weights` writes; `load_weights` reads it."""
    from keras.src.saving import saving_lib

    buffer = io.BytesIO()
    store = saving_lib.H5IOStore(buffer, mode="w")
    saving_lib._save_state(model, weights_store=store, assets_store=None, inner_path="",
                           visited_saveables=set())
    store.close()
    atomic.write_bytes(path, buffer.getvalue())


def _read_epoch(path: Path) -> int | None:
    """The epoch in a backup's metadata JSON, or None when the file is not valid."""
    try:
        return int(json.loads(path.read_text())["epoch"])
    except (ValueError, KeyError, TypeError):
        return None


def backup_epoch(backup_dir: Path) -> int | None:
    """The (zero-based) epoch a `ResumableBackup` in ``backup_dir`` resumes at, or None when there
    is no backup. Damaged metadata is replaced by the previous backup's, which Keras then loads."""
    metadata = Path(backup_dir) / "training_metadata.json"
    if not metadata.exists():
        return None
    epoch = _read_epoch(metadata)
    if epoch is None:
        previous = metadata.with_name(metadata.name + ".bkp")  # Keras' double_checkpoint copy
        epoch = _read_epoch(previous) if previous.exists() else None
        if epoch is None:
            raise LdctError(f"training backup {metadata} is damaged; delete "
                            f"{metadata.parent} to start this phase over")
        atomic.copy_file(previous, metadata)
    return epoch


def panel_slices(dataset, count: int) -> list[dict]:
    """Up to ``count`` validation slices for the panels, lesion-present ones first."""
    present, absent = [], []
    for item in dataset:
        if len(present) >= count:
            break
        if int(item[F.LABEL]) == 1:
            present.append(item)
        elif len(absent) < count:  # only needed when too few lesion slices come
            absent.append(item)
    chosen = (present + absent)[:count]
    return [{F.LDCT: s[F.LDCT], F.NDCT: s[F.NDCT],
             F.MASK: s.get(F.MASK, tf.zeros_like(s[F.LDCT]))} for s in chosen]


def read_history(csv_path: Path) -> dict[str, list[float]]:
    """The CSVLogger history (every epoch of every resumed run) as columns; an epoch logged twice
    (a run killed between its row and its backup does it again) counts once, as last logged."""
    import csv

    if not csv_path.exists():
        return {}
    with open(csv_path, newline="") as f:
        # a row cut by a kill has fewer fields than the header: not an epoch that was logged
        rows = [row for row in csv.DictReader(f) if None not in row.values() and None not in row]
    if rows and "epoch" in rows[0]:
        rows = sorted({row["epoch"]: row for row in rows}.values(), key=lambda r: int(r["epoch"]))
    return {key: [float(r[key]) if r[key] not in ("", "nan") else np.nan for r in rows]
            for key in (rows[0] if rows else {})}


class LocalValidation(keras.callbacks.Callback):
    """Validation outside ``fit``, on this worker alone, into the epoch logs (``val_`` and each
    metric: ``val_loss``, ``val_psnr``, ...): what multi-worker training uses instead of
    ``validation_data``. Every worker copies its (synchronised, so identical) weights into
    ``evaluator``, a compiled model of the same form made outside the strategy, and evaluates the
    whole validation set; no worker waits on another, uneven last batches cannot leave a worker
    with an empty one, and every worker sees the same values (early stopping stops all at once).
    Must come before the loggers and checkpoints in the callback list."""

    def __init__(self, evaluator: keras.Model, data):
        super().__init__()
        self.evaluator, self.data = evaluator, data

    def on_epoch_end(self, epoch, logs=None):
        self.evaluator.set_weights(self.model.get_weights())
        results = self.evaluator.evaluate(self.data, verbose=0, return_dict=True)
        if logs is not None:
            logs.update({f"val_{key}": float(value) for key, value in results.items()})
