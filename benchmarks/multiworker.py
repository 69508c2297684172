"""Training throughput of one worker against two MultiWorkerMirroredStrategy workers on this
machine (127.0.0.1, CPU): the denoiser's own ``fit`` (`ldct_tf.train.distribute` fixes included),
the same per-replica batch, so two workers train a global batch twice as large per step.

Both runs are started by this script, one after the other, as fresh processes (a multi-worker
strategy needs its own process): ``one`` is a single process under the default strategy, ``two``
two worker processes with a ``TF_CONFIG`` each (``--one-in-process``: ``one`` runs in the
calling process instead, which saves a start-up; for smoke runs). Each times ``--steps``
training steps after ``--warmup`` steps (tracing, first all-reduce). Prints one JSON line:
patches/s of each, ``ratio`` (two / one: the scaling of throughput), and the step times.

On one machine the two workers share its cores, so the ratio says what the collective
communication costs, not what a second machine would add: on 2 cores expect a ratio near or
below 1; on separate hosts each worker brings its own cores or GPU.

    python benchmarks/multiworker.py [--filters 16] [--patch 64] [--batch 16] [--steps 30]
    python benchmarks/multiworker.py --filters 4 --patch 32 --batch 2 --steps 1 --warmup 1 \
        --timeout 120 --one-in-process   # smoke run: the baseline here, two short worker
        # processes, stopped after --timeout s
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def worker(args) -> None:
    """One training process; writes its timing as JSON to ``args.result``."""
    from ldct_tf import cli

    cli.quiet_startup()
    from ldct_tf.train import distribute

    distribution = distribute.strategy_for("auto")  # before TensorFlow starts
    import keras
    import numpy as np
    import tensorflow as tf

    from ldct_tf.config import ModelConfig
    from ldct_tf.models.denoiser import Denoiser, build_network

    rng = np.random.default_rng(0)
    shape = (args.batch, args.patch, args.patch, 1)
    x = (rng.random(shape, np.float32) * 0.3).astype("float32")
    y = x * 0.95

    def per_worker(context=None):  # every worker makes its own per-replica batches
        return tf.data.Dataset.from_tensors((x, y)).repeat()

    strategy = distribution.strategy
    with strategy.scope():
        model = Denoiser(build_network(ModelConfig(filters=args.filters)), "mse")
        model.compile(optimizer=keras.optimizers.Adam(1e-4))
        model(tf.zeros((1, args.patch, args.patch, 1)))
    distribute.adapt_for_multiworker(model, distribution)
    data = (strategy.distribute_datasets_from_function(per_worker) if distribution.multiworker
            else per_worker())
    marks = {}

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch in (args.warmup - 1, args.warmup + args.steps - 1):
                marks[batch] = time.perf_counter()

    model.fit(data, epochs=1, steps_per_epoch=args.warmup + args.steps, callbacks=[Clock()],
              verbose=0)
    seconds = marks[args.warmup + args.steps - 1] - marks[args.warmup - 1]
    patches = args.steps * args.batch * distribution.replicas
    Path(args.result).write_text(json.dumps({
        "patches_per_s": patches / seconds, "step_ms": 1000 * seconds / args.steps,
        "replicas": distribution.replicas, "task": distribution.task}))


def launch(workers: int, args, folder: Path) -> dict:
    """Run ``workers`` processes (1: no TF_CONFIG); the chief's timing.

    Within ``args.timeout`` seconds in all; when one worker fails, the others (which would wait
    for it in their collectives) are stopped at once."""
    from ldct_tf.train.distribute import local_cluster

    configs = local_cluster(workers)
    procs, logs = [], []
    for index in range(workers):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        env.pop("TF_CONFIG", None)
        if workers > 1:
            env["TF_CONFIG"] = configs[index]
        result = folder / f"{workers}-{index}.json"
        logs.append(folder / f"{workers}-{index}.log")
        with logs[-1].open("w") as log:  # a file, not a pipe: no worker blocks on a full pipe
            procs.append(subprocess.Popen(
                [sys.executable, __file__, "--worker", "--result", str(result),
                 *(f"--{k}={getattr(args, k)}" for k in ("filters", "patch", "batch", "steps",
                                                          "warmup"))],
                env=env, stdout=subprocess.DEVNULL, stderr=log))
    deadline = time.monotonic() + args.timeout
    try:
        while (any(p.poll() is None for p in procs) and not any(p.returncode for p in procs)
               and time.monotonic() < deadline):
            time.sleep(0.1)
        failed = next((i for i, p in enumerate(procs) if p.returncode), None)
    finally:  # also when this process is interrupted: no worker outlives the run
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    if failed is not None:
        raise SystemExit(f"error: a {workers}-worker run failed (worker {failed}):\n"
                         f"{logs[failed].read_text()[-2000:]}")
    if any(p.returncode for p in procs):
        raise SystemExit(f"error: a {workers}-worker run took more than --timeout "
                         f"{args.timeout:g} s; stopped")
    return json.loads((folder / f"{workers}-0.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16, help="patches per replica and step")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=600,
                        help="seconds for each run (one worker, then two) before it is stopped")
    parser.add_argument("--one-in-process", action="store_true",
                        help="run the one-worker baseline in this process, not a fresh one "
                             "(smoke runs: saves a process start-up)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be >= 1 (the clock starts after the warm-up)")
    if args.worker:
        worker(args)
        return 0
    if args.one_in_process and os.environ.get("TF_CONFIG"):
        parser.error("--one-in-process needs TF_CONFIG unset (the baseline is one process under "
                     "the default strategy)")
    with tempfile.TemporaryDirectory() as folder:
        if args.one_in_process:
            worker(argparse.Namespace(**{**vars(args), "result": f"{folder}/1-0.json"}))
            one = json.loads(Path(folder, "1-0.json").read_text())
        else:
            one = launch(1, args, Path(folder))
        two = launch(2, args, Path(folder))
    print(json.dumps({
        "benchmark": "multiworker", "cpu_cores": os.cpu_count(), "filters": args.filters,
        "patch": args.patch, "batch_per_replica": args.batch, "steps": args.steps,
        "one_worker_patches_per_s": round(one["patches_per_s"], 1),
        "two_workers_patches_per_s": round(two["patches_per_s"], 1),
        "ratio": round(two["patches_per_s"] / one["patches_per_s"], 3),
        "one_worker_step_ms": round(one["step_ms"], 1),
        "two_workers_step_ms": round(two["step_ms"], 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
