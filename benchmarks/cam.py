"""Activation-map speed: tf-keras-vis as `ldct_tf.cam` uses it, against a traced tf.GradientTape
Grad-CAM of the same layer, same batch, same process.

Prints one JSON line: tfkv_maps_per_s (batched calls, as used), tape_maps_per_s, ratio (= tape /
tf-keras-vis; goal <= 10), and tfkv_single_maps_per_s (one image per call, for comparison).

    python benchmarks/cam.py [--size 256] [--batch 8] [--repeats 5]
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--filters", type=int, default=16)
    args = parser.parse_args()
    cli.quiet_startup()
    import keras
    import tensorflow as tf

    from ldct_tf.cam import activation_maps, make_visualizer
    from ldct_tf.config import CamConfig
    from ldct_tf.models.classifier import CAM_LAYER, build_classifier

    model = build_classifier(args.filters)
    cam = CamConfig()
    visualizer = make_visualizer(model, "gradcam")
    images = np.random.default_rng(0).random((args.batch, args.size, args.size, 1), np.float32)
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
        up = tf.image.resize(raw, tf.shape(x)[1:3])[..., 0]
        low = tf.reduce_min(up, axis=(1, 2), keepdims=True)
        span = tf.reduce_max(up, axis=(1, 2), keepdims=True) - low
        return tf.math.divide_no_nan(up - low, span)

    tfkv = rate(lambda x: activation_maps(visualizer, x, CAM_LAYER, cam), images, args.repeats)
    tape = rate(lambda x: tape_gradcam(x).numpy(), images, args.repeats)
    single = rate(lambda x: [activation_maps(visualizer, x[i:i + 1], CAM_LAYER, cam)
                             for i in range(len(x))], images, max(1, args.repeats // 2))
    print(json.dumps({"tfkv_maps_per_s": round(tfkv, 2), "tape_maps_per_s": round(tape, 2),
                      "ratio": round(tape / tfkv, 2), "tfkv_single_maps_per_s": round(single, 2),
                      "size": args.size, "batch": args.batch}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
