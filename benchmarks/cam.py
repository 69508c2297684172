"""Activation-map speed: tf-keras-vis as `ldct_tf.cam` uses it, against a traced tf.GradientTape
Grad-CAM of the same layer, same batch, same process.

Both scale the maps as the cam step does (`CamConfig.normalize`, "global" by default): one
constant, `ldct_tf.cam.global_scale` of the per-slice maxima of the raw maps (the step fixes it
on the train split; here on the benchmark's batch, computed once before timing, as the step
computes it once before writing), divides every map, which is clipped to [0, 1].

Prints one JSON line: tfkv_maps_per_s (batched calls, as used), tape_maps_per_s, ratio (= tape /
tf-keras-vis; goal <= 10), tfkv_single_maps_per_s (one image per call, for comparison),
max_abs_diff (tape against tf-keras-vis maps: the two compute the same thing), normalize and
global_scale.

    python benchmarks/cam.py [--size 256] [--batch 8] [--repeats 5]
    python benchmarks/cam.py --size 32 --batch 2 --repeats 1 --filters 4   # smoke run, seconds
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from ldct_tf import cli


def rate(fn, images, repeats: int) -> float:
    fn(images)  # warm-up (cloning, tracing)
    started = time.perf_counter()
    for _ in range(repeats):
        fn(images)
    return repeats * len(images) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--filters", type=int, default=16)
    args = parser.parse_args(argv)
    cli.quiet_startup()
    import keras
    import tensorflow as tf

    from ldct_tf.cam import activation_maps, global_scale, make_visualizer, raw_maps
    from ldct_tf.config import CamConfig
    from ldct_tf.models.classifier import CAM_LAYER, build_classifier

    model = build_classifier(args.filters)
    cam = CamConfig()
    visualizer = make_visualizer(model, "gradcam")
    images = np.random.default_rng(0).random((args.batch, args.size, args.size, 1), np.float32)
    # the "global" constant, as `ldct_tf.cam.run` fixes it before any map is scaled: from the
    # per-slice maxima of the raw maps (there of the train split, here of this batch)
    scale = (global_scale(raw_maps(visualizer, images, CAM_LAYER, cam.upsample).max(axis=(1, 2)))
             if cam.normalize == "global" else None)
    extractor = keras.Model(model.inputs, [model.get_layer(CAM_LAYER).output,
                                              model.get_layer("pool").output])
    head = model.get_layer("lesion_score")

    @tf.function
    def tape_gradcam(x):
        # Same as tf-keras-vis with ReplaceToLinear: the logit of the dense head.
        with tf.GradientTape() as tape:
            features, pooled = extractor(x)
            logit = tf.matmul(pooled, head.kernel) + head.bias
        grads = tape.gradient(logit, features)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        raw = tf.nn.relu(tf.reduce_sum(features * weights, axis=-1, keepdims=True))
        up = tf.nn.relu(tf.image.resize(raw, tf.shape(x)[1:3], method=cam.upsample)[..., 0])
        if scale is not None:  # "global": one constant, clipped (`ldct_tf.cam.normalize_maps`)
            return tf.clip_by_value(up / scale, 0.0, 1.0)
        low = (tf.reduce_min(up, axis=(1, 2), keepdims=True) if cam.normalize == "minmax"
               else tf.zeros_like(up[:, :1, :1]))
        span = tf.reduce_max(up, axis=(1, 2), keepdims=True) - low
        return tf.math.divide_no_nan(up - low, span)

    def tfkv_maps(x):
        return activation_maps(visualizer, x, CAM_LAYER, cam, scale)

    tfkv = rate(tfkv_maps, images, args.repeats)
    tape = rate(lambda x: tape_gradcam(x).numpy(), images, args.repeats)
    single = rate(lambda x: [tfkv_maps(x[i:i + 1]) for i in range(len(x))], images,
                  max(1, args.repeats // 2))
    diff = float(np.abs(tape_gradcam(images).numpy() - tfkv_maps(images)).max())
    print(json.dumps({"tfkv_maps_per_s": round(tfkv, 2), "tape_maps_per_s": round(tape, 2),
                      "ratio": round(tape / tfkv, 2), "tfkv_single_maps_per_s": round(single, 2),
                      "size": args.size, "batch": args.batch, "normalize": cam.normalize,
                      "global_scale": scale, "max_abs_diff": round(diff, 5)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
