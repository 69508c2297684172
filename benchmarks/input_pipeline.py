"""Input pipeline speed: is the tf.data reader fast enough not to limit denoiser training?

Prints one JSON line with the reader's patches/s from records on disk, the demo denoiser's training
patches/s on the same machine in the same process, their ratio (goal: >= 5), and the prepare
pipeline's throughput in slices/s for synthetic 256x256 slices with 1 and 2 Beam workers.

    python benchmarks/input_pipeline.py [--slices 16] [--batches 200] [--skip-prepare]
    python benchmarks/input_pipeline.py --slices 2 --batches 2 --train-steps 2 --filters 4 \
        --image-size 64 --patch-size 32 --batch-size 2 --beam-in-process   # smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from ldct_tf import cli, records
from ldct_tf.config import load_config
from ldct_tf.workdir import Workdir


def prepare_rate(workdir: Path, slices: int, workers: int, image_size: int,
                 in_process: bool = False) -> float:
    from ldct_tf.prepare import pipeline as prepare

    config = load_config(None, [f"data.n_series={slices}", "data.slices_per_series=1",
                                f"data.image_size={image_size}",
                                "data.split_fractions=[1.0, 0.0, 0.0]", "data.num_shards=2"])
    beam_args = [f"--direct_num_workers={workers}"]
    if in_process:
        beam_args.append("--direct_running_mode=in_memory")
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON line
        prepare.run(config, workdir, beam_args)
    return slices / (time.perf_counter() - started)


def reader_rate(pattern: str, config, batches: int) -> float:
    from ldct_tf.records import denoiser_input

    ds = denoiser_input.make_dataset(pattern, config, training=True).repeat()
    it = iter(ds)
    for _ in range(20):  # warm-up: tracing, file opening, shuffle buffer fill
        next(it)
    started = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * config.input.batch_size / (time.perf_counter() - started)


def train_rate(config, steps: int, filters: int) -> float:
    import numpy as np

    from ldct_tf.models.redcnn import build_redcnn

    size, batch = config.input.patch_size, config.input.batch_size
    model = build_redcnn(filters)
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).random((batch * steps, size, size, 1), np.float32)
    model.fit(x, x, batch_size=batch, epochs=1, steps_per_epoch=min(5, steps),
              verbose=0)  # warm-up
    started = time.perf_counter()
    model.fit(x, x, batch_size=batch, epochs=1, verbose=0)
    return batch * steps / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=24, help="synthetic slices to prepare")
    parser.add_argument("--batches", type=int, default=200, help="reader batches to time")
    parser.add_argument("--train-steps", type=int, default=40)
    parser.add_argument("--filters", type=int, default=32, help="demo RED-CNN width")
    parser.add_argument("--skip-prepare", action="store_true")
    parser.add_argument("--image-size", type=int, default=256,
                        help="synthetic slice size, px (>= 64: room for the default lesion)")
    parser.add_argument("--patch-size", type=int,
                        help="input.patch_size (default: the config's; >= 21 for the RED-CNN)")
    parser.add_argument("--batch-size", type=int, help="input.batch_size (default: the config's)")
    parser.add_argument("--beam-in-process", action="store_true",
                        help="prepare with Beam's in-memory runner, no worker processes (smoke "
                             "runs; the prepare rates then say nothing about worker scaling)")
    args = parser.parse_args(argv)
    cli.quiet_startup()
    config = load_config(None, [f"input.{key}_size={value}" for key, value in
                                (("patch", args.patch_size), ("batch", args.batch_size))
                                if value is not None])
    result = {"cpu_count": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_prepare:
            for workers in (1, 2):
                result[f"prepare_slices_per_s_{workers}_workers"] = round(
                    prepare_rate(Path(tmp) / f"w{workers}", args.slices, workers,
                                 args.image_size, args.beam_in_process), 3)
            workdir = Path(tmp) / "w2"
        else:
            workdir = Path(tmp) / "w"
            prepare_rate(workdir, args.slices, 2, args.image_size, args.beam_in_process)
        pattern = records.pattern(Workdir(workdir).records, "train")
        result["reader_patches_per_s"] = round(reader_rate(pattern, config, args.batches), 1)
    result["train_patches_per_s"] = round(train_rate(config, args.train_steps, args.filters), 1)
    result["ratio"] = round(result["reader_patches_per_s"] / result["train_patches_per_s"], 2)
    result["patch_size"] = config.input.patch_size
    result["batch_size"] = config.input.batch_size
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
