"""Which `tf.distribute` strategy a training process runs under, and what that changes.

`strategy_for(name)` picks, once per process (``[train] strategy``):

- ``"auto"``: `MultiWorkerMirroredStrategy` when ``TF_CONFIG`` describes a cluster of several
  workers (what Vertex AI, Kubeflow's TFJob or a hand-made launch set up); else
  `MirroredStrategy` when several local GPUs are visible; else the default strategy;
- ``"multiworker"``, ``"mirrored"``, ``"none"``: that one.

A multi-worker strategy must exist before TensorFlow's runtime starts (it configures the collective
ops), so the training command makes it first (`ldct_tf.train.phases.main`); made later, it is a
one-line error.

Under several workers

- the input is sharded by file when there are at least as many shards as workers, else by data
  (every worker reads everything and keeps its part of each global batch), with a warning
  (`shard_policy`, ``[train] input_sharding``); the global batch is ``input.batch_size`` times
  the replicas of all workers;
- only the chief writes into the work directory; the other workers write what they must into a
  temporary folder that is deleted when they finish (`output_dirs`);
- `adapt_for_multiworker` works around two Keras 3 bugs in ``fit`` under this strategy (the
  pinned Keras 3.15; keras-team/keras issue 20585 and its kin): building the model from a batch
  of per-replica values, and reducing scalar logs along an axis they do not have.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Iterator

from ldct_tf.config.training import STRATEGIES
from ldct_tf.errors import LdctError
from ldct_tf.tf_import import import_tensorflow

tf = import_tensorflow()

log = logging.getLogger("ldct_tf.train")


@dataclasses.dataclass(frozen=True)
class Distribution:
    """A strategy and the facts about this process that training needs."""

    strategy: "tf.distribute.Strategy"
    kind: str  # "multiworker", "mirrored" or "default"
    workers: int = 1
    task: str = "local"  # "worker 1", "chief 0", or "local"
    is_chief: bool = True

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    @property
    def multiworker(self) -> bool:
        return self.kind == "multiworker"


def cluster_workers(environ=os.environ) -> int:
    """The number of training tasks (chief and workers) ``TF_CONFIG`` describes; 0 without it.
    A ``TF_CONFIG`` that is not the JSON TensorFlow reads is a one-line error."""
    text = environ.get("TF_CONFIG", "").strip()
    if not text:
        return 0
    try:
        spec = json.loads(text)
        cluster = spec.get("cluster", {})
        task = spec["task"]
        if not isinstance(task, dict) or "type" not in task or "index" not in task:
            raise KeyError("task")
        return sum(len(cluster.get(job, [])) for job in ("chief", "worker"))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LdctError(f"TF_CONFIG is not a TensorFlow cluster description ({exc}); set it to "
                        '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": '
                        '"worker", "index": 0}} or unset it') from None


@functools.cache
def strategy_for(name: str) -> Distribution:
    """The process's strategy for ``name`` (see the module docstring); made once per process."""
    if name not in STRATEGIES:
        raise LdctError(f"train.strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    workers = cluster_workers()
    if name == "multiworker" or (name == "auto" and workers > 1):
        return _multiworker()
    # list_physical_devices does not start the runtime (a later multi-worker strategy could not)
    if name == "mirrored" or (name == "auto" and len(tf.config.list_physical_devices("GPU")) > 1):
        return Distribution(tf.distribute.MirroredStrategy(), "mirrored")
    return Distribution(tf.distribute.get_strategy(), "default")


def _multiworker() -> Distribution:
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.AUTO)
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except RuntimeError as exc:
        if "program startup" not in str(exc):
            raise
        raise LdctError("a multi-worker strategy must be made before TensorFlow starts; run "
                        "`python -m ldct_tf.train --phase PHASE` as its own process on every "
                        "worker") from None
    except ValueError as exc:  # a TF_CONFIG whose task is not in its cluster
        raise LdctError(f"TF_CONFIG does not describe this task's place in the cluster ({exc})"
                        ) from None
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type or "worker", int(resolver.task_id or 0)
    jobs = resolver.cluster_spec().as_dict()
    chief = task_type == "chief" or (task_type == "worker" and task_id == 0
                                     and "chief" not in jobs)
    workers = sum(len(jobs.get(job, [])) for job in ("chief", "worker")) or 1
    return Distribution(strategy, "multiworker", workers, f"{task_type} {task_id}", chief)


def local_cluster(workers: int) -> list[str]:
    """``TF_CONFIG`` values for ``workers`` worker processes on this machine (127.0.0.1, ports
    free now), index 0 first: what the tests and `benchmarks/multiworker.py` start."""
    sockets = [socket.socket() for _ in range(workers)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    addresses = [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    for s in sockets:
        s.close()
    return [json.dumps({"cluster": {"worker": addresses},
                        "task": {"type": "worker", "index": index}})
            for index in range(workers)]


def shard_policy(choice: str, num_shards: int, workers: int) -> str:
    """The `tf.data.experimental.AutoShardPolicy` name for ``[train] input_sharding``: "OFF" for
    one worker; "auto" is "FILE" when every worker gets at least one shard of its own, else
    "DATA" with a warning (every worker then reads all the records and keeps its part of each
    global batch)."""
    if workers <= 1:
        return "OFF"
    if choice == "file" and num_shards < workers:
        raise LdctError(f"train.input_sharding = \"file\" needs at least {workers} training "
                        f"shards for {workers} workers, found {num_shards}; prepare with "
                        f"data.num_shards >= {workers} or set train.input_sharding = \"auto\"")
    if choice != "auto":
        return choice.upper()
    if num_shards >= workers:
        return "FILE"
    log.warning("warning: %d training shard(s) for %d workers: sharding the input by data "
                "(every worker reads every record); prepare with data.num_shards >= %d to shard "
                "by file", num_shards, workers, workers)
    return "DATA"


def with_shard_policy(dataset, policy: str):
    """``dataset`` with the auto-shard policy (a name of `tf.data.experimental.AutoShardPolicy`).
    "FILE" is not applied this way: tf.data's rewrite cannot shard a pipeline that zips in a
    random-seed dataset (ours does, for seeded crops); the trainer gives each worker its files
    through ``distribute_datasets_from_function`` instead."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = getattr(
        tf.data.experimental.AutoShardPolicy, policy)
    return dataset.with_options(options)


@contextlib.contextmanager
def output_dirs(distribution: Distribution, *dirs: Path) -> Iterator[tuple[Path, ...]]:
    """The chief gets ``dirs``; another worker a folder of the same shape for each under one
    temporary folder, deleted when the block ends (the tf.distribute guide's pattern). The
    temporary folder is named after the task and ``dirs``, so a worker killed before it could
    delete it removes it when it is started again."""
    if distribution.is_chief:
        yield dirs
        return
    key = hashlib.sha256("\0".join(str(Path(d).resolve()) for d in dirs).encode()).hexdigest()
    scratch = Path(tempfile.gettempdir()) / (
        f"ldct_tf-{distribution.task.replace(' ', '')}-{key[:10]}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        yield tuple(scratch / f"{i}-{d.name}" for i, d in enumerate(dirs))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def peer_failures(distribution: Distribution, resume: str):
    """Under several workers, a lost peer ends this worker with one line that names it and says
    how to go on (``resume``)."""
    if not distribution.multiworker:
        yield
        return
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
            tf.errors.CancelledError, tf.errors.AbortedError, tf.errors.InternalError) as exc:
        raise LdctError(f"{distribution.task}: a worker of the cluster stopped "
                        f"({failure_reason(exc)}); {resume}") from None


def failure_reason(exc: Exception) -> str:
    """A short reason from a collective-op error: the tasks that stopped, when it names them."""
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", str(exc))
    lost = re.findall(r"(/job:\w+/replica:\d+/task:\d+)\s*$", text, flags=re.MULTILINE)
    if "stopped sending heartbeats" in text and lost:
        return f"{', '.join(sorted(set(lost)))} stopped sending heartbeats"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:160]


def adapt_for_multiworker(model, distribution: Distribution) -> None:
    """Patch ``model`` (this instance only) around the two Keras 3 ``fit`` bugs under
    `MultiWorkerMirroredStrategy`; a no-op under any other strategy.

    1. ``_maybe_symbolic_build`` takes a batch from the input and reduces it with
       ``strategy.reduce``, which cross-worker collectives cannot do on a tuple of differently
       shaped tensors. Building needs shapes and dtypes only, so they are taken from the
       dataset's element spec; no batch is drawn (drawing one starts an extra pass over the
       input, and with seeded crops that re-randomise per pass every epoch would then see the
       crops of the next: not the batches of one process).
    2. ``reduce_per_replica`` takes the mean of every log value along axis 0 across workers,
       which fails on scalars; each step's logs get a leading axis of 1 (the mean of those is
       the mean of the scalars).
    """
    if not distribution.multiworker:
        return
    strategy = distribution.strategy
    train_step, test_step = model.train_step, model.test_step

    def local_spec(spec):
        if hasattr(spec, "_value_specs"):  # a PerReplicaSpec: several replicas on this worker
            return spec._value_specs[0]
        return spec

    def symbolic_build(iterator=None, data_batch=None):
        if data_batch is None and iterator is not None:
            data_batch = tf.nest.map_structure(local_spec,
                                               iterator._distributed_dataset.element_spec)
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    def rank1(logs):
        return {key: tf.reshape(value, [1]) for key, value in logs.items()}

    model._maybe_symbolic_build = symbolic_build
    model.train_step = lambda data: rank1(train_step(data))
    model.test_step = lambda data: rank1(test_step(data))
