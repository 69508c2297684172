"""Phase "observer": train the independent CNN observer that `evaluate` reads every image set with.

Why a second classifier: the map classifier (`ldct_tf.train.classifier`) makes the Grad-CAM
maps that weight the fine-tune's loss, so the fine-tune is trained to keep what that network looks
at. Scoring the denoised images with the same network would measure how well the fine-tune pleases
its own teacher, not how detectable the lesions are: a circular reading that favours the method
over its control. The observer is a network of the same architecture and patch task (the same
`ldct_tf.train.classifier.train_patch_classifier` body, the ``[classifier]`` settings), but

- trained from its own seed (``observer.seed``: initial weights, patch draws, inserted lesions)
  for ``observer.epochs``,
- on LDCT and NDCT patches alike (after the warm-up), since it reads noisy and denoised images,
- with lesions inserted at the sham sites of the training slices (sizes and signs of ``[lesion]``,
  contrast ``observer.insert_contrast_hu``, 100-200 HU by default) and its first
  ``observer.ndct_warmup_epochs`` on NDCT alone. A detector of this kind can sit at chance for
  many epochs: on the benchmark, with the training contrasts (40-80 HU), three seeds were still at
  chance after 13-18 epochs, with or without LDCT (and two at a third of the learning rate after
  10); with 100-200 HU it learnt by epoch 5 (val AUC 0.94-0.99 on the real 40-80 HU lesions).
  Clear lesions teach it what a lesion is; it then reads the faint test lesions,
- and never used to make maps: nothing of the method has seen it.

Writes

- ``<workdir>/observer/model.keras`` (best val loss), ``config.toml``,
- ``<workdir>/observer/metrics.json``: the classifier's keys, plus ``seed`` and ``role``,
- TensorBoard logs under ``<workdir>/logs/observer``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from ldct_tf.config import Config
from ldct_tf.errors import LdctError
from ldct_tf.tf_import import import_tensorflow
from ldct_tf.train.classifier import train_patch_classifier
from ldct_tf.workdir import METRICS_FILE, Workdir

tf = import_tensorflow()
import keras  # noqa: E402

ROLE = "independent CNN observer"


def run(config: Config, workdir: Path) -> dict:
    """Train the observer, keep its best checkpoint, measure test AUC; return ``metrics.json``.
    An observer at chance on val (below ``observer.min_val_auc``) is removed, with an error that
    names the fix: its readings of the image sets would say nothing."""
    seed = config.observer.seed
    result = train_patch_classifier(
        config, workdir, out=Workdir(workdir).observer, seed=seed,
        epochs=config.observer.epochs, use_ldct=True,
        lesions=dataclasses.replace(config.lesion, contrast_hu=config.observer.insert_contrast_hu),
        extra={"seed": seed, "role": ROLE,
               "ndct_warmup_epochs": config.observer.ndct_warmup_epochs},
        ndct_warmup_epochs=config.observer.ndct_warmup_epochs,
        learning_rate=config.observer.learning_rate)
    check_learnt(result, config, workdir)
    return result


def check_learnt(result: dict, config: Config, workdir: Path) -> None:
    """Remove the observer of ``workdir`` and stop with the fix when its val AUC (``result``, its
    metrics) is below ``observer.min_val_auc``; no val split, no check."""
    val_auc = result.get("val_auc_ndct")
    if val_auc is None or val_auc >= config.observer.min_val_auc:
        return
    shutil.rmtree(Workdir(workdir).observer, ignore_errors=True)
    raise LdctError(
        f"the independent CNN observer reached val AUC {val_auc:.2f}, below "
        f"observer.min_val_auc = {config.observer.min_val_auc} (at chance: it would read "
        f"nothing); retrain it from another seed (--set observer.seed={config.observer.seed + 1})"
        f" or for more epochs (--set observer.epochs=...)")


def load_observer(workdir: Path) -> tuple[keras.Model, int] | None:
    """The trained observer of ``workdir`` and its patch size; None when it was never trained (the
    caller decides whether to go without it). A model without its ``metrics.json`` is a training
    that did not finish: an error naming the command that redoes it."""
    path = Workdir(workdir).observer_model
    if not path.is_file():
        return None
    metrics_path = path.parent / METRICS_FILE
    if not metrics_path.is_file():
        raise LdctError(f"{metrics_path} not found (observer training did not finish); retrain "
                        f"with `python -m ldct_tf.train --phase observer --workdir {workdir}`")
    patch_size = int(json.loads(metrics_path.read_text())["patch_size"])
    return keras.models.load_model(path), patch_size
