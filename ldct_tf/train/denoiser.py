"""Phases "pretrain" and "finetune": train the denoiser with the two-phase fit.

pretrain: plain MSE from a fresh network (initial weights and patch order from ``train.seed``).
finetune: starts from the pretrain network of the same work directory, with a fresh optimizer, its
own epochs and (cosine-decayed) learning rate, more patches on lesions
(``finetune.lesion_patch_fraction``), and one of these variants (``FinetuneConfig.variant``):

- ``finetune``: the method, MSE weighted by the activation map (``w = 1 + boost * A^gamma``);
- ``finetune_control``: the same fine-tune with ``w = 1`` everywhere, from the same weights, with
  the same patches in the same order, epochs and learning rate: what the map adds is the
  difference between the two;
- ``finetune_oracle``: the weight made from the true lesion disk instead of the map, a diagnostic
  of what the network and schedule could keep if told where the lesions are;
- ``finetune_pairs``: the paper's literal wording, MSE on LDCT*A -> NDCT*A.

The fine-tune keeps the network after its last epoch (``finetune.checkpoint = "last"``): the
phase's own val loss would pick differently for the method and the control (plain MSE rewards
blur). Each run writes

- ``<workdir>/denoiser/<phase>/``: ``best.weights.h5`` and ``last.weights.h5`` (the wrapped model),
  ``model.keras`` (the best network: what evaluation and export load), ``history.json`` (every
  epoch, resumed runs included), ``config.toml``;
- ``<workdir>/logs/<phase>/``: TensorBoard scalars (loss, val loss, val PSNR and SSIM in the
  abdomen window, learning rate) and ``images/`` panels LDCT | denoised | NDCT | map.

A killed run resumes from its last backup when the same command is run again; NaN losses stop
training; ``input.deterministic`` makes the run reproducible (seeded data and deterministic ops).
The phases "build" (the pretrain network loaded, the network built and compiled), "fit" and
"save" (the kept weights loaded and saved) are timed with `ldct_tf.progress.phase`.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from pathlib import Path

import numpy as np

from ldct_tf import atomic, cli, progress, records
from ldct_tf.config import Config
from ldct_tf.errors import LdctError
from ldct_tf.models import losses
from ldct_tf.models.denoiser import WINDOW_HU, Denoiser, build_network
from ldct_tf.records import denoiser_input, reader
from ldct_tf.records import schema as F
from ldct_tf.tf_import import import_tensorflow
from ldct_tf.train import distribute
from ldct_tf.train.callbacks import (
    ImagePanels,
    LearningRateLogger,
    LocalValidation,
    ResumableBackup,
    WeightsCheckpoint,
    backup_epoch,
    panel_slices,
    read_history,
)
from ldct_tf.train.precision import policy_scope
from ldct_tf.workdir import HISTORY_FILE, MODEL_FILE, SUMMARY_FILE, Workdir

tf = import_tensorflow()
import keras  # noqa: E402


def phase_name(config: Config, phase: str) -> str:
    """Output folder name: pretrain, or the fine-tune variant (`FinetuneConfig.variant`)."""
    return config.finetune.variant if phase == "finetune" else phase


def load_trained(workdir: Path, name: str) -> keras.Model:
    """The best network of phase ``name``; a clear error naming the command when missing."""
    path = Workdir(workdir).denoiser_model(name)
    if not path.is_file():
        raise LdctError(f"denoiser model {path} not found; train it with `python -m "
                        f"ldct_tf.train --phase {name} --workdir {workdir}`")
    return keras.models.load_model(path)


def run(config: Config, workdir: Path, phase: str) -> dict:
    """Train one phase; return its summary (also printed). Under several workers every worker
    runs this; only the chief writes into ``workdir`` (`ldct_tf.train.distribute`)."""
    distribution = distribute.strategy_for(config.train.strategy)  # before TensorFlow starts
    workdir = Path(workdir)
    name = phase_name(config, phase)
    with distribute.output_dirs(distribution, Workdir(workdir).denoiser(name),
                                Workdir(workdir).logs(name)) as (out, logs):
        return _train(config, workdir, phase, name, distribution, out, logs)


def _train(config: Config, workdir: Path, phase: str, name: str,
           distribution: distribute.Distribution, out: Path, logs: Path) -> dict:
    source = _records_dir(workdir, needs_mask=phase == "finetune")
    with_mask = source == Workdir(workdir).records_with_mask
    sizes = records.split_sizes(source)
    if not sizes["train"]:
        raise LdctError(f"the train split of {source} is empty; prepare more series")
    out.mkdir(parents=True, exist_ok=True)
    # only the chief writes into the work directory; another worker's ``out`` is its own scratch
    cli.save_config(config, *((workdir, out) if distribution.is_chief else (out,)))
    settings = config.pretrain if phase == "pretrain" else config.finetune
    loss_mode = "mse" if phase == "pretrain" else config.finetune.mode
    with progress.phase("build"):
        pretrained = load_trained(workdir, "pretrain") if phase == "finetune" else None
    keras.utils.set_random_seed(config.train.seed)
    started = time.time()
    backup_dir = Workdir(workdir).denoiser(name) / "backup"  # the chief's: every worker resumes
    with _determinism(config.input.deterministic), policy_scope(config.train.precision) as policy:
        strategy, replicas = distribution.strategy, distribution.replicas
        global_batch = config.input.batch_size * replicas
        steps = max(1, sizes["train"] * config.input.patches_per_slice // global_batch)
        with strategy.scope(), progress.phase("build"):
            model = _denoiser(config, loss_mode, pretrained, steps, phase)
        distribute.adapt_for_multiworker(model, distribution)
        policy_name = distribute.shard_policy(config.train.input_sharding,
                                              len(records.shards(source, "train")),
                                              distribution.workers)
        steps_per_epoch = None
        if policy_name == "FILE":
            # Each worker reads its own files; their patch counts differ, so every worker
            # loops its share and takes `steps` global batches per epoch.
            train = strategy.distribute_datasets_from_function(
                lambda context: _train_data(
                    source, config, phase, with_mask,
                    context.get_per_replica_batch_size(global_batch),
                    shard=(context.input_pipeline_id, context.num_input_pipelines)).repeat())
            steps_per_epoch = steps
        else:
            train = _train_data(source, config, phase, with_mask, global_batch)
            if policy_name == "DATA":  # one process's batches, split between the workers
                train = distribute.with_shard_policy(train, policy_name)
        val = _val_data(source, config, loss_mode, with_mask) if sizes["val"] else None
        resume = backup_epoch(backup_dir)
        if resume is None:  # a fresh run: an earlier run's history must not mix in
            (out / "history.csv").unlink(missing_ok=True)
        else:
            print(f"{name}: resuming from the backup in {backup_dir} at epoch {resume + 1}")
        if distribution.multiworker:
            print(f"{name}: {distribution.task} of {distribution.workers} workers, "
                  f"{replicas} replicas, global batch {global_batch}, input sharded by "
                  f"{policy_name.lower()}" + ("" if distribution.is_chief else
                                              f"; writes only to {out.parent}"))
        evaluator = None
        if distribution.multiworker and val is not None:  # validation outside the strategy
            with progress.phase("build"):
                evaluator = _denoiser(config, loss_mode, None, steps, phase)
        callbacks = _callbacks(config, out, logs, source, with_mask, val, backup_dir,
                               distribution, evaluator)
        with reader.naming_corrupt_shards(records.pattern(source, "*")), \
                warnings.catch_warnings(), distribute.peer_failures(
                    distribution, f"start every worker again with the same TF_CONFIG to "
                                  f"resume from the backup in {backup_dir}"), \
                progress.phase("fit"):
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            model.fit(train, validation_data=None if evaluator else val,
                      epochs=settings.epochs, steps_per_epoch=steps_per_epoch,
                      callbacks=callbacks, shuffle=False,
                      verbose=1 if distribution.is_chief else 0)
        history = read_history(out / "history.csv")
        monitor = "val_loss" if val is not None else "loss"
        keep = "last" if phase == "finetune" and config.finetune.checkpoint == "last" else "best"
        with progress.phase("save"):
            model.load_weights(out / f"{keep}.weights.h5")
            with atomic.replacing(out / MODEL_FILE) as partial:
                model.network.save(partial)
    summary = _summary(name, history, monitor, keep, time.time() - started, policy, replicas,
                       out, logs)
    summary["seed"] = config.train.seed
    if distribution.multiworker:
        summary.update(workers=distribution.workers, input_sharding=policy_name.lower())
    atomic.write_json(out / HISTORY_FILE, history)
    atomic.write_json(out / SUMMARY_FILE, summary)
    if distribution.is_chief:
        _print_summary(summary)
    else:
        print(f"{name}: {distribution.task} done; the chief wrote the model")
    return summary


def _denoiser(config: Config, loss_mode: str, pretrained, steps: int, phase: str) -> Denoiser:
    """A compiled, built `Denoiser` (under whatever strategy scope is active)."""
    network = build_network(config.model)
    if pretrained is not None:
        _copy_weights(pretrained, network)
    model = Denoiser(network, loss_mode)
    model.compile(optimizer=keras.optimizers.Adam(_learning_rate(config, phase, steps)))
    patch = config.input.patch_size
    model(tf.zeros((1, patch, patch, 1)))  # built before BackupAndRestore loads
    return model


def _records_dir(workdir: Path, needs_mask: bool) -> Path:
    masked = Workdir(workdir).records_with_mask
    if any(records.shards(masked, "train")):
        return masked
    if needs_mask:
        raise LdctError(f"finetuning needs the activation maps in {masked}; make them with "
                        f"`python -m ldct_tf.cam --workdir {workdir}`")
    plain = Workdir(workdir).records
    if not any(records.shards(plain, "train")):
        raise LdctError(f"no training records in {plain}; run `python -m ldct_tf.prepare "
                        f"--workdir {workdir}` first")
    return plain


def _learning_rate(config: Config, phase: str, steps_per_epoch: int):
    """Pretrain: constant. Finetune: cosine decay to 0 over the phase, or constant."""
    if phase == "pretrain":
        return config.pretrain.learning_rate
    ft = config.finetune
    if ft.lr_schedule == "constant":
        return ft.learning_rate
    return keras.optimizers.schedules.CosineDecay(ft.learning_rate, ft.epochs * steps_per_epoch)


def phase_seed(config: Config, phase: str) -> int:
    """Patch order and crops: the same for every fine-tune variant of one training seed, so the
    method and its control see the same patches."""
    return config.train.seed * 1000 + (1 if phase == "pretrain" else 2)


def loss_weights(activation_map, finetune):
    """The weighted mode's pixel weights: ``finetune.weight`` "uniform" (the control) gives 1
    everywhere; "map" and "oracle" apply `losses.map_weights` to the (map or oracle) A."""
    if finetune.weight == "uniform":
        return tf.ones_like(activation_map)
    return losses.map_weights(activation_map, form=finetune.weight_form, boost=finetune.boost,
                              gamma=finetune.gamma, floor=finetune.weight_floor,
                              threshold=finetune.threshold)


def _train_data(source: Path, config: Config, phase: str, with_mask: bool, batch_size: int,
                shard: tuple[int, int] | None = None):
    """Training batches in the form the mode's ``train_step`` takes. Every fine-tune variant
    reads the maps (the control ignores them), so all variants cut the same patches."""
    ft = config.finetune
    mode = "mse" if phase == "pretrain" else ft.mode
    ds = denoiser_input.make_dataset(
        records.pattern(source, "train"), config, True,
        with_mask=with_mask and mode != "mse", batch_size=batch_size,
        seed=phase_seed(config, phase),
        lesion_fraction=ft.lesion_patch_fraction if mode != "mse" else None,
        oracle=mode == "weighted" and ft.weight == "oracle", shard=shard)
    if mode == "weighted":  # the weight is made here, once, from the stored map A
        return ds.map(lambda x, y, a: (x, y, loss_weights(a, ft)))
    if mode == "pairs":
        return ds.map(lambda x, y, a: (x * a, y * a))
    return ds


def _val_data(source: Path, config: Config, mode: str, with_mask: bool):
    """Whole validation slices: (ldct, ndct[, w or A])."""
    ft = config.finetune
    ds = denoiser_input.make_dataset(records.pattern(source, "val"), config, False,
                                     with_mask=with_mask and mode != "mse",
                                     oracle=mode == "weighted" and ft.weight == "oracle")

    def to_tuple(item):
        if mode == "weighted":
            return item[F.LDCT], item[F.NDCT], loss_weights(item[F.MASK], ft)
        if mode == "pairs":
            return item[F.LDCT], item[F.NDCT], item[F.MASK]
        return item[F.LDCT], item[F.NDCT]

    # Synthetic slices share one size; DICOM series may not, so they go one by one.
    batch = 4 if config.data.source == "synthetic" else 1
    return ds.map(to_tuple).batch(batch).cache()


def _callbacks(config: Config, out: Path, logs: Path, source: Path, with_mask: bool,
               val, backup_dir: Path, distribution: distribute.Distribution,
               evaluator: Denoiser | None) -> list:
    monitor = "val_loss" if val is not None else "loss"
    previous = read_history(out / "history.csv").get(monitor)
    # A resumed run must not forget the best epoch before the interruption.
    best_so_far = float(np.nanmin(previous)) if previous and (out / "best.weights.h5").exists() \
        else np.inf
    best = WeightsCheckpoint(out / "best.weights.h5", monitor, best_so_far)
    backup = ResumableBackup(str(backup_dir), save_freq=config.train.backup_every_steps,
                             write=distribution.is_chief)
    panels = []
    if config.train.image_panels and val is not None and distribution.is_chief:
        slices = panel_slices(denoiser_input.make_dataset(
            records.pattern(source, "val"), config, False, with_mask=with_mask),
            config.train.image_panels)
        panels = [ImagePanels(logs / "images", slices)]
    validation = [LocalValidation(evaluator, val)] if evaluator is not None else []
    # The backup last: it saves epoch k once every other callback has recorded it (its history
    # row, best and last weights), so a run killed after that backup resumes missing nothing of
    # epoch k (killed before it, the run does epoch k again; `read_history` keeps one row).
    return [*validation, LearningRateLogger(),
            keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
            keras.callbacks.TensorBoard(str(logs)), best,
            WeightsCheckpoint(out / "last.weights.h5"),
            keras.callbacks.TerminateOnNaN(), *panels, backup]


def _copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Pretrained weights into a network built under the current precision policy."""
    try:
        target.set_weights(source.get_weights())
    except ValueError as exc:
        raise LdctError(f"the pretrain network does not match the [model] section now in the "
                        f"config ({exc}); finetune with the [model] settings used for pretrain"
                        ) from None


@contextlib.contextmanager
def _determinism(enabled: bool):
    """Deterministic TensorFlow ops for the block only (they are slower)."""
    from tensorflow.python.framework import config as tf_config

    was = tf_config.is_op_determinism_enabled()
    if enabled and not was:
        tf_config.enable_op_determinism()
    try:
        yield
    finally:
        if enabled and not was:
            tf_config.disable_op_determinism()


def _summary(name, history, monitor, keep, seconds, policy, replicas, out, logs) -> dict:
    """The kept epoch (the best by ``monitor``, or the last) and its validation figures."""
    values = history.get(monitor) or history.get("loss", [])
    if not values:
        chosen = None
    else:
        chosen = len(values) - 1 if keep == "last" else int(np.nanargmin(values))

    def pick(key):
        return (round(float(history[key][chosen]), 4)
                if chosen is not None and key in history else None)

    return {"phase": name, "epochs_total": len(values), "checkpoint": keep,
            "kept_epoch": None if chosen is None else chosen + 1, monitor: pick(monitor),
            "val_psnr_db": pick("val_psnr"), "val_ssim": pick("val_ssim"),
            "window_hu": list(WINDOW_HU), "data_range_hu": WINDOW_HU[1] - WINDOW_HU[0],
            "seconds": round(seconds, 1), "precision": policy, "replicas": replicas,
            "model": str(out / MODEL_FILE), "logs": str(logs)}


def _print_summary(s: dict) -> None:
    print(f"{s['phase']}: {s['epochs_total']} epochs ({s['seconds']:.0f} s, {s['precision']}, "
          f"{s['replicas']} replica(s), seed {s['seed']}); kept the {s['checkpoint']} epoch "
          f"{s['kept_epoch']}: val PSNR "
          f"{s['val_psnr_db']} dB, SSIM {s['val_ssim']} (abdomen window [-160, 240] HU, "
          f"data range 400)")
    print(f"  model {s['model']}; TensorBoard: tensorboard --logdir {Path(s['logs']).parent}")
