"""Cost of the custom two-phase train_step: finetune (activation-weighted MSE) through
`ldct_tf.models.denoiser.Denoiser` against plain ``compile(loss="mse"); fit`` of the same network
and batch.

Medians of interleaved repetitions (plain, custom, plain, custom, ...: this machine's speed drifts
between repeats). Prints one JSON line with custom_patches_per_s, plain_patches_per_s, overhead
(plain / custom; goal < 1.10) and patches/s per precision policy (float32, mixed_bfloat16, and
mixed_float16 when a GPU is visible).

    python benchmarks/train_step.py [--filters 16] [--patch 64] [--batch 16] [--steps 20]
        [--repeats 5]
    python benchmarks/train_step.py --filters 4 --patch 32 --batch 2 --steps 2 --repeats 1  # smoke
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

from ldct_tf import cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    cli.quiet_startup()
    import keras
    import tensorflow as tf

    from ldct_tf.config import ModelConfig
    from ldct_tf.models.denoiser import Denoiser, build_network
    from ldct_tf.train.precision import policy_scope

    rng = np.random.default_rng(0)
    shape = (args.batch, args.patch, args.patch, 1)
    x = rng.random(shape, np.float32) * 0.3
    y = x * 0.95
    w = 0.2 + 0.8 * rng.random(shape, np.float32)
    model_config = ModelConfig(filters=args.filters)

    def dataset(items):
        return tf.data.Dataset.from_tensors(items).repeat(args.steps)

    def timed(model, ds):
        started = time.perf_counter()
        model.fit(ds, epochs=1, verbose=0, shuffle=False)
        return args.steps * args.batch / (time.perf_counter() - started)

    def plain_model():
        model = build_network(model_config)
        model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse")
        return model

    def custom_model():
        model = Denoiser(build_network(model_config), "weighted")
        model.compile(optimizer=keras.optimizers.Adam(1e-4))
        return model

    plain, custom = plain_model(), custom_model()
    plain_ds, custom_ds = dataset((x, y)), dataset((x, y, w))
    timed(plain, plain_ds), timed(custom, custom_ds)  # warm-up: tracing
    rates = {"plain": [], "custom": []}
    for _ in range(args.repeats):
        rates["plain"].append(timed(plain, plain_ds))
        rates["custom"].append(timed(custom, custom_ds))
    result = {"custom_patches_per_s": round(statistics.median(rates["custom"]), 2),
              "plain_patches_per_s": round(statistics.median(rates["plain"]), 2)}
    result["overhead"] = round(result["plain_patches_per_s"] / result["custom_patches_per_s"], 3)
    policies = ["float32", "mixed_bfloat16"]
    if tf.config.list_physical_devices("GPU"):
        policies.append("mixed_float16")
    for policy in policies:
        with policy_scope(policy):
            model = custom_model()
            timed(model, custom_ds)
            result[f"{policy}_patches_per_s"] = round(statistics.median(
                [timed(model, custom_ds) for _ in range(max(1, args.repeats // 2))]), 2)
    result.update(filters=args.filters, patch=args.patch, batch=args.batch,
                  device="GPU" if "mixed_float16" in policies else "CPU")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
