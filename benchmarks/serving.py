"""Serving speed of an exported SavedModel on 512x512 slices, and how close it gets to the CPU's
practical peak.

slices_per_s_b1 / _b8: the ``serving_default`` signature at batch 1 and 8. peak_fraction: the
model's achieved FLOP/s (its convolutions' FLOPs counted from the architecture in the export's
provenance) over the best FLOP/s of its own most expensive convolution run alone on a large batch
in a ``tf.function`` in the same process: how close the whole model gets to its best layer (goal
>= 0.5). One JSON line.

    python benchmarks/serving.py --model saved_models/ldct_denoiser/1 [--size 512] [--repeats 3]
    python benchmarks/serving.py --model M --size 32 --repeats 1   # smoke run on a tiny export M
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from ldct_tf import cli


def conv_flops(network, size: int) -> list[tuple[object, float, tuple]]:
    """(layer, FLOPs per slice, input shape) of every convolution at ``size`` x ``size``."""
    import keras

    convs = [lyr for lyr in network.layers
             if isinstance(lyr, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))]
    probe = keras.Model(network.inputs, [lyr.input for lyr in convs] +
                        [lyr.output for lyr in convs])
    shapes = [t.shape for t in probe(np.zeros((1, size, size, 1), np.float32))]
    out = []
    for lyr, x, y in zip(convs, shapes[:len(convs)], shapes[len(convs):]):
        kh, kw = lyr.kernel_size
        spatial = x[1] * x[2] if isinstance(lyr, keras.layers.Conv2DTranspose) else y[1] * y[2]
        out.append((lyr, 2.0 * kh * kw * x[3] * y[3] * spatial, tuple(x[1:])))
    return out


def best_layer_flops_per_s(layer, input_shape, batch: int, repeats: int) -> float:
    import keras
    import tensorflow as tf

    clone = layer.__class__.from_config({**layer.get_config(), "name": "probe"})
    x = tf.random.uniform((batch, *input_shape))
    clone(x)
    run = tf.function(lambda t: clone(t))
    run(x)
    kh, kw = layer.kernel_size
    y = run(x)
    spatial = (input_shape[0] * input_shape[1]
               if isinstance(layer, keras.layers.Conv2DTranspose) else y.shape[1] * y.shape[2])
    flops = 2.0 * kh * kw * input_shape[2] * y.shape[3] * spatial * batch
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        run(x).numpy()
        best = max(best, flops / (time.perf_counter() - started))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    cli.quiet_startup()
    import tensorflow as tf

    from ldct_tf.config import ModelConfig
    from ldct_tf.models.denoiser import build_network
    from ldct_tf.provenance import read_provenance

    arch = read_provenance(args.model)["training"]["architecture"]
    network = build_network(ModelConfig(**arch))
    layers = conv_flops(network, args.size)
    model_flops = sum(f for _, f, _ in layers)
    serve = tf.saved_model.load(args.model).signatures["serving_default"]
    result = {"size": args.size, "architecture": arch,
              "gflop_per_slice": round(model_flops / 1e9, 2)}
    rng = np.random.default_rng(0)
    for batch in (1, 8):
        x = tf.constant(rng.uniform(-1000, 1000, (batch, args.size, args.size, 1)), tf.float32)
        serve(ldct_hu=x)  # warm-up
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            serve(ldct_hu=x)["denoised_hu"].numpy()
            times.append(time.perf_counter() - started)
        result[f"slices_per_s_b{batch}"] = round(batch / min(times), 3)
    heaviest, _, shape = max(layers, key=lambda item: item[1])
    peak = best_layer_flops_per_s(heaviest, shape, 8, args.repeats)
    achieved = model_flops * result["slices_per_s_b8"]
    result.update(model_gflop_per_s_b8=round(achieved / 1e9, 1),
                  peak_layer=heaviest.name, peak_gflop_per_s=round(peak / 1e9, 1),
                  peak_fraction=round(achieved / peak, 3))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
