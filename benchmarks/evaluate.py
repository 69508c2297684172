"""Evaluation speed: slices/s per image set on a prepared and trained work directory.

For each set, the time to make the images (filter, BM3D in parallel processes, or the network)
plus the per-slice measurements (PSNR/SSIM/RMSE in both windows and the noise index). Prints one
JSON line.

    python benchmarks/evaluate.py --workdir runs/demo [--config pipelines/configs/demo.toml] [--slices 16]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ldct_tf import cli
from ldct_tf.workdir import Workdir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/demo")
    parser.add_argument("--config", default="pipelines/configs/demo.toml")
    parser.add_argument("--slices", type=int, default=16)
    args = parser.parse_args()
    cli.quiet_startup()

    from ldct_tf.evaluate import baselines, metrics, sets
    from ldct_tf.models.inference import load_for_inference
    from ldct_tf import records
    from ldct_tf.config import load_config

    config = load_config(args.config)
    workdir = Path(args.workdir)
    test = sets.load_slices(records.pattern(Workdir(workdir).records, "test"), config)
    ldct, ndct = test.ldct[:args.slices], test.ndct[:args.slices]
    makers = {"ldct": lambda: ldct, "gaussian": lambda: baselines.gaussian(ldct, 1.0)}
    if baselines.bm3d_available() is None:
        makers["bm3d"] = lambda: baselines.bm3d(ldct, 17.0)
    for name in sets.NETWORK_SETS:
        path = Workdir(workdir).denoiser_model(name)
        if path.is_file():
            network = load_for_inference(path)  # the inference form evaluation runs
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
