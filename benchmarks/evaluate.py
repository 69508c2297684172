"""Evaluation speed: slices/s per image set on a prepared and trained work directory.

For each set, the time to make the images (filter, BM3D in parallel processes, or the network)
plus the per-slice measurements (PSNR/SSIM/RMSE in both windows and the noise index). BM3D runs
as the evaluate step runs it: with the power spectrum of the LDCT noise (`baselines.
paired_noise_psd`, of val, or of the timed test slices without val; measured before timing),
one process per core unless --bm3d-workers. The networks are the run's trained ones in their
inference form (`sets.trained_networks`). Prints one JSON line.

    python benchmarks/evaluate.py --workdir runs/demo [--config pipelines/configs/demo.toml]
        [--slices 16]
    python benchmarks/evaluate.py --workdir W --config W/config.toml --slices 2 --bm3d-workers 1
        # smoke run on a tiny prepared work directory W (BM3D in this process: no worker start-up)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ldct_tf import cli
from ldct_tf.workdir import Workdir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/demo")
    parser.add_argument("--config", default="pipelines/configs/demo.toml")
    parser.add_argument("--slices", type=int, default=16)
    parser.add_argument("--bm3d-workers", type=int, default=None,
                        help="BM3D processes (default: one per CPU core, as evaluation; 1: in "
                             "this process)")
    args = parser.parse_args(argv)
    cli.quiet_startup()

    from ldct_tf import records
    from ldct_tf.config import load_config
    from ldct_tf.evaluate import baselines, metrics, sets

    config = load_config(args.config)
    workdir = Path(args.workdir)
    test = sets.load_slices(records.pattern(Workdir(workdir).records, "test"), config)
    ldct, ndct = test.ldct[:args.slices], test.ndct[:args.slices]
    makers = {"ldct": lambda: ldct, "gaussian": lambda: baselines.gaussian(ldct, 1.0)}
    if baselines.bm3d_available() is None:
        # as `sets.make_sets`: correlated FBP noise, so BM3D gets its power spectrum (val's)
        source = Workdir(workdir).records
        tune = (sets.load_slices(records.pattern(source, "val"), config)
                if records.split_sizes(source, verify=False)["val"] else test)
        psd = baselines.paired_noise_psd(tune.ldct, tune.ndct)
        makers["bm3d"] = lambda: baselines.bm3d(ldct, psd, args.bm3d_workers)
    networks, _ = sets.trained_networks(workdir)  # the inference form evaluation runs
    for name, network in networks.items():
        sets.denoise(network, ldct[:1])  # warm-up
        makers[name] = (lambda n=network: sets.denoise(n, ldct))
    result = {"slices": len(ldct)}
    for name, make in makers.items():
        started = time.perf_counter()
        for image, reference in zip(make(), ndct):
            metrics.fidelity(image, reference)
            metrics.noise_index_hu(image, reference=reference)
        result[f"{name}_slices_per_s"] = round(len(ldct) / (time.perf_counter() - started), 2)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
