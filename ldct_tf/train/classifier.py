"""Phase "classifier": train the lesion-present / lesion-absent CNN on the detection task.

Patches of NDCT (option: LDCT too) around the lesion or its sham twin, at random offsets and
orientations (`ldct_tf.records.classifier_input.make_lesion_patches`). With
``classifier.insert_lesions`` (default) the training set also holds twin pairs cut from every
lesion-absent training slice, once clean and once with a lesion drawn from the ``[lesion]`` ranges
inserted at the sham site: a few dozen real lesions are too few to learn small low-contrast ones
reliably, and a pair that differs by the lesion alone teaches the lesion, not the slice. Val and
test patches stay real (no insertion), so the reported AUCs are those of the real task. Validation
loss picks the best epoch and stops training after ``patience`` epochs without improvement. Writes

- ``<workdir>/classifier/model.keras`` (best val loss; loadable with ``keras.models.load_model``),
- ``<workdir>/classifier/metrics.json``: val AUC and test AUC on the NDCT and LDCT patch task
  (`ldct_tf.cam` refuses the maps of a classifier whose val AUC is below
  ``cam.min_classifier_auc``), accuracy at the decision threshold chosen on val (Youden's J), the
  threshold, whether lesions were inserted (``inserted_lesions``), and the training summary,
- TensorBoard logs under ``<workdir>/logs/classifier``.

Always trained in float32 (it is small; its gradients feed Grad-CAM, which wants float32).
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import numpy as np

from ldct_tf import atomic, cli, progress, records
from ldct_tf.config import Config, LesionConfig
from ldct_tf.errors import LdctError
from ldct_tf.evaluate import metrics
from ldct_tf.models.classifier import build_classifier
from ldct_tf.records import classifier_input, reader
from ldct_tf.records import schema as F
from ldct_tf.tf_import import import_tensorflow
from ldct_tf.train import distribute
from ldct_tf.train.callbacks import LocalValidation, ModelCheckpoint
from ldct_tf.train.precision import policy_scope
from ldct_tf.workdir import METRICS_FILE, MODEL_FILE, Workdir

tf = import_tensorflow()
import keras  # noqa: E402

log = logging.getLogger("ldct_tf.classifier")

def load_classifier(workdir: Path) -> keras.Model:
    """The trained classifier of ``workdir``; a clear error naming the command when missing, or
    when its training did not finish (a checkpoint without the ``metrics.json`` written last)."""
    path = Workdir(workdir).classifier_model
    if not path.is_file():
        raise LdctError(f"classifier model {path} not found; train it with `python -m "
                        f"ldct_tf.train --phase classifier --workdir {workdir}`")
    if not Workdir(workdir).classifier_metrics.is_file():
        raise LdctError(f"{Workdir(workdir).classifier_metrics} not found (classifier training "
                        f"did not finish); train it again with `python -m ldct_tf.train --phase "
                        f"classifier --workdir {workdir}`")
    return keras.models.load_model(path)


def run(config: Config, workdir: Path) -> dict:
    """Train, keep the best checkpoint, measure test AUC; return ``metrics.json`` as a dict."""
    cfg = config.classifier
    return train_patch_classifier(
        config, workdir, out=Workdir(workdir).classifier, seed=config.data.seed,
        epochs=cfg.epochs, use_ldct=cfg.use_ldct,
        lesions=config.lesion if cfg.insert_lesions else None)


def train_patch_classifier(config: Config, workdir: Path, *, out: Path, seed: int,
                           epochs: int, use_ldct: bool, lesions: LesionConfig | None,
                           extra: dict | None = None, ndct_warmup_epochs: int = 0,
                           learning_rate: float | None = None) -> dict:
    """Train a ``[classifier]`` network on the patch task into ``out`` (a `Workdir` folder);
    return (and write) its ``metrics.json``, with ``extra`` appended.

    One body for every lesion classifier of the method (the map classifier and the observer of
    `ldct_tf.train.observer`), so they differ only in what is passed here: ``seed`` fixes the
    initial weights and the patches (training at ``seed``, val and test at ``seed + 7``),
    ``use_ldct`` adds LDCT training patches to the NDCT ones, and ``lesions`` (None: none) the
    ranges of the lesions inserted at the sham sites of the training slices. With ``use_ldct``,
    the first ``ndct_warmup_epochs`` epochs train on NDCT patches alone (a detector that sees noisy
    patches from the start can sit at chance for many epochs); ``learning_rate`` overrides
    ``classifier.learning_rate``. TensorBoard logs go to
    ``<workdir>/logs/<out.name>``. Phases timed (`ldct_tf.progress.phase`): "build", "fit" (the
    warm-up included) and "test" (the best checkpoint loaded and measured).
    """
    distribution = distribute.strategy_for(config.train.strategy)  # before TensorFlow starts
    workdir = Path(workdir)
    with distribute.output_dirs(distribution, out, Workdir(workdir).logs(out.name)) as (o, logs):
        return _train(config, workdir, o, logs, distribution, seed=seed, epochs=epochs,
                      use_ldct=use_ldct, lesions=lesions, extra=extra,
                      ndct_warmup_epochs=ndct_warmup_epochs, learning_rate=learning_rate)


def _train(config: Config, workdir: Path, out: Path, logs: Path,
           distribution: distribute.Distribution, *, seed: int, epochs: int, use_ldct: bool,
           lesions: LesionConfig | None, extra: dict | None, ndct_warmup_epochs: int,
           learning_rate: float | None) -> dict:
    cfg = config.classifier
    out.mkdir(parents=True, exist_ok=True)
    (out / METRICS_FILE).unlink(missing_ok=True)  # back, last, once this training is complete
    # only the chief writes into the work directory; another worker's ``out`` is its own scratch
    cli.save_config(config, *((workdir, out) if distribution.is_chief else (out,)))
    rec = Workdir(workdir).records
    sizes = records.split_sizes(rec)
    if not sizes["train"]:
        raise LdctError(f"the train split of {rec} is empty; prepare more series")
    keras.utils.set_random_seed(seed)
    # Under several workers every one reads all patches and keeps its part of each global batch
    # (the batches of one process); validation runs on each worker outside `fit`.
    global_batch = cfg.batch_size * distribution.replicas

    def patches(split, key, training):
        ds = classifier_input.make_lesion_patches(
            records.pattern(rec, split), key, cfg.patch_size,
            cfg.patches_per_slice if training else 1, cfg.max_offset_px, training,
            global_batch if training else cfg.batch_size, seed=seed + (0 if training else 7),
            insert_lesions=lesions)
        if training and distribution.multiworker:
            ds = distribute.with_shard_policy(ds, "DATA")
        return ds

    ndct_only = train = patches("train", F.NDCT, True)
    if use_ldct:
        train = train.concatenate(patches("train", F.LDCT, True))
    warmup = min(ndct_warmup_epochs, epochs - 1) if use_ldct else 0
    val = patches("val", F.NDCT, False) if sizes["val"] else None
    # Val loss, not val AUC, picks the checkpoint: on a small val split AUC saturates at 1.0
    # early while the loss still tells better models apart.
    monitor = "val_loss" if val is not None else "loss"
    if val is None:
        log.warning("warning: the val split is empty; the checkpoint is chosen on training loss")
    started = time.time()
    with policy_scope("float32"), reader.naming_corrupt_shards(records.pattern(rec, "*")), \
            warnings.catch_warnings(), distribute.peer_failures(
                distribution, f"start every worker again with the same TF_CONFIG to train "
                              f"{out.name if distribution.is_chief else 'this phase'} anew"):
        # Keras warns at the end of every epoch of a tf.data input of unknown length.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        with distribution.strategy.scope(), progress.phase("build"):
            model = _compiled(cfg, learning_rate)
        distribute.adapt_for_multiworker(model, distribution)
        fit_val, validation = val, []
        if distribution.multiworker and val is not None:
            fit_val, validation = None, [LocalValidation(_compiled(cfg, learning_rate), val)]
        board = keras.callbacks.TensorBoard(str(logs))
        verbose = 2 if distribution.is_chief else 0
        if warmup:
            with progress.phase("fit"):
                model.fit(ndct_only, validation_data=fit_val, epochs=warmup, verbose=verbose,
                          shuffle=False,
                          callbacks=[*validation, board, keras.callbacks.TerminateOnNaN()])
        callbacks = [
            *validation,
            ModelCheckpoint(str(out / MODEL_FILE), monitor=monitor, mode="min",
                            save_best_only=True),
            # No stopping in the first epochs: a detector of small lesions often sits at chance
            # for a while before it learns.
            keras.callbacks.EarlyStopping(monitor=monitor, patience=cfg.patience,
                                          start_from_epoch=min(epochs // 2, 10)),
            board, keras.callbacks.TerminateOnNaN()]
        with progress.phase("fit"):
            history = model.fit(train, validation_data=fit_val, epochs=epochs,
                                initial_epoch=warmup, verbose=verbose, shuffle=False,
                                callbacks=callbacks)
        with progress.phase("test"):
            best = keras.models.load_model(out / MODEL_FILE)
            result = _evaluate(best, patches, sizes)
    result.update(training_seconds=round(time.time() - started, 1), epochs=epochs,
                  epochs_run=warmup + len(history.history[monitor]),
                  best_epoch=warmup + int(np.argmin(history.history[monitor])) + 1,
                  checkpoint_metric=monitor, patch_size=cfg.patch_size,
                  trained_on_ldct=use_ldct, inserted_lesions=lesions is not None, **(extra or {}))
    if distribution.multiworker:
        result["workers"] = distribution.workers
    atomic.write_json(out / METRICS_FILE, result)  # last: the training is complete
    if distribution.is_chief:
        print(f"{out.name}: test AUC NDCT {result['test_auc_ndct']}, LDCT "
              f"{result['test_auc_ldct']} (patch task, {result['test_patches']} patches); "
              f"threshold {result['threshold']}; model {out / MODEL_FILE}")
    return result


def _compiled(cfg, learning_rate: float | None) -> keras.Model:
    """A compiled classifier (under whatever strategy scope is active)."""
    model = build_classifier(cfg.filters)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate or cfg.learning_rate),
                  loss="binary_crossentropy",
                  metrics=[keras.metrics.AUC(name="auc"),
                           keras.metrics.BinaryAccuracy(name="accuracy")])
    return model


def _scores(model, batches) -> tuple[np.ndarray, np.ndarray]:
    scores, labels = [], []
    for x, y in batches:
        scores.append(model.predict_on_batch(x).ravel())
        labels.append(y.numpy().ravel())
    return np.concatenate(scores), np.concatenate(labels)


def _evaluate(model, patches, sizes) -> dict:
    """AUC on the val and test patch tasks, and accuracy at the val-chosen threshold."""
    result: dict = {}
    threshold = 0.5
    if sizes["val"]:
        val_scores, val_labels = _scores(model, patches("val", F.NDCT, False))
        threshold = metrics.youden_threshold(val_scores, val_labels)
        result["val_auc_ndct"] = round(metrics.auc(val_scores, val_labels), 4)
    result["threshold"] = round(threshold, 4)
    result["test_patches"] = 0
    for key, name in ((F.NDCT, "ndct"), (F.LDCT, "ldct")):
        if not sizes["test"]:
            result[f"test_auc_{name}"] = result[f"test_accuracy_{name}"] = None
            continue
        scores, labels = _scores(model, patches("test", key, False))
        result[f"test_auc_{name}"] = round(metrics.auc(scores, labels), 4)
        result[f"test_accuracy_{name}"] = round(float(np.mean((scores >= threshold) == labels)), 4)
        result["test_patches"] = int(labels.size)
    return result
