"""`python -m ldct_tf.cam`: activation maps of the lesion classifier, stored beside the images.

For every slice of every split, the map A of the NDCT image with respect to the lesion-present score
is computed with tf-keras-vis (Grad-CAM by default; Grad-CAM++, Layer-CAM and Score-CAM on request)
on a clone of the classifier whose sigmoid is replaced by a linear output (``ReplaceToLinear``), so
gradients do not vanish where the classifier is confident. Post-processing is explicit
(`CamConfig`): the layer's map is upsampled to the slice (bilinear by default) and scaled per image
into [0, 1] (min-max by default). The map is stored as it is, as ``mask`` (uint8, round(255 * A),
see `ldct_tf.features`); the training weight ``w = floor + (1 - floor) * A`` is applied later by the
finetune input pipeline, exactly once.

Writes ``<workdir>/records_with_mask/`` (every input record plus ``mask``, same shard names, with
``schema.json``, ``stats.json`` and ``quarantine.json``), ``<workdir>/cam/summary.json`` (method,
layer, post-processing, and per split the mean map inside the lesion disc over the mean map over the
body for lesion-present slices) and ``<workdir>/cam/figures/*.png``.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from ldct_tf import cli, features as F, records
from ldct_tf.classifier_training import load_classifier
from ldct_tf.config import CAM_METHODS, SPLITS, CamConfig, Config
from ldct_tf.errors import LdctError, run_cli
from ldct_tf.preprocessing import ABDOMEN_WINDOW_HU, normalize_hu
from ldct_tf.tf_import import import_tensorflow

tf = import_tensorflow()
import keras  # noqa: E402

CAM_DIR = "cam"
BODY_HU = -500.0  # body = NDCT above this (excludes air and gas, keeps fat and lung edges)
_FIGURE_SLICES = 8


def last_conv_layer(model: keras.Model) -> str:
    """Name of the model's last 2-D convolution (the default Grad-CAM layer)."""
    convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    if not convs:
        raise LdctError(f"model {model.name} has no Conv2D layer to take activation maps from")
    return convs[-1]


def make_visualizer(model: keras.Model, method: str):
    """The tf-keras-vis object for ``method``, on a linear-output clone of ``model``."""
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.layercam import Layercam
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

    kinds = {"gradcam": Gradcam, "gradcam++": GradcamPlusPlus, "layercam": Layercam,
             "scorecam": Scorecam}
    return kinds[method](model, model_modifier=ReplaceToLinear(), clone=True)


def lesion_score(output):
    """The tf-keras-vis score: the (linearised) lesion-present output of each image."""
    return output[:, 0]


def activation_maps(visualizer, images: np.ndarray, layer: str, cam: CamConfig) -> np.ndarray:
    """Maps in [0, 1], shape ``[batch, H, W]``, of ``images`` (``[batch, H, W, 1]``, network range).

    tf-keras-vis gives the ReLU'd map at the layer's resolution (``expand_cam=False``,
    ``normalize_cam=False``); upsampling and per-image scaling follow ``cam`` explicitly.
    """
    raw = visualizer(lesion_score, np.asarray(images, np.float32), penultimate_layer=layer,
                     expand_cam=False, normalize_cam=False)
    raw = tf.convert_to_tensor(raw, tf.float32)[..., None]
    height, width = images.shape[1:3]
    upsampled = tf.image.resize(raw, (height, width), method=cam.upsample)[..., 0].numpy()
    return normalize_maps(upsampled, cam.normalize)


def normalize_maps(maps: np.ndarray, how: str) -> np.ndarray:
    """Per-image scaling into [0, 1]: "minmax" or "max"; an all-zero map stays zero."""
    maps = np.maximum(np.asarray(maps, np.float64), 0.0)
    axes = tuple(range(1, maps.ndim))
    top = maps.max(axis=axes, keepdims=True)
    low = maps.min(axis=axes, keepdims=True) if how == "minmax" else np.zeros_like(top)
    span = top - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1.0), 0.0).astype(
        np.float32)


def lesion_to_body_ratio(mask: np.ndarray, ndct_hu: np.ndarray, row: float, col: float,
                         radius_px: float) -> float | None:
    """Mean map inside the lesion disc over the mean map over the body (NDCT > -500 HU)."""
    rr, cc = np.ogrid[:mask.shape[0], :mask.shape[1]]
    disc = np.hypot(rr - row, cc - col) <= radius_px
    body = ndct_hu > BODY_HU
    body_mean = mask[body].mean() if body.any() else 0.0
    return float(mask[disc].mean() / body_mean) if disc.any() and body_mean > 0 else None


def run(config: Config, workdir: Path) -> dict:
    """Compute and store the maps of every split; return ``cam/summary.json`` as a dict."""
    workdir = Path(workdir)
    source = workdir / records.RECORDS_DIR
    target = workdir / records.RECORDS_WITH_MASK_DIR
    out = workdir / CAM_DIR
    if not any(records.shards(source, s) for s in SPLITS):
        raise LdctError(f"no records in {source}; run `python -m ldct_tf.prepare --workdir "
                        f"{workdir}` first")
    model = load_classifier(workdir)
    layer = config.cam.layer or last_conv_layer(model)
    if layer not in [lyr.name for lyr in model.layers]:
        raise LdctError(f"layer {layer!r} is not in the classifier; choose one of "
                        f"{', '.join(lyr.name for lyr in model.layers if 'conv' in lyr.name)}")
    visualizer = make_visualizer(model, config.cam.method)
    target.mkdir(parents=True, exist_ok=True)
    records.remove_shards(target)
    cli.save_config(config, workdir, out)
    started, per_split, shown = time.time(), {}, []
    for split in SPLITS:
        ratios = []
        for shard in records.shards(source, split):
            ratios += _map_shard(shard, target / shard.name, visualizer, layer, config.cam, shown)
        valid = [r for r in ratios if r is not None]
        per_split[split] = {
            "lesion_present_slices": len(ratios),
            "lesion_to_body_ratio_mean": round(float(np.mean(valid)), 3) if valid else None,
            "lesion_to_body_ratio_median": round(float(np.median(valid)), 3) if valid else None}
    for name in ("stats.json", "quarantine.json"):
        shutil.copy(source / name, target / name)
    records.write_schema(target, config.data.compression, with_mask=True)
    summary = {"method": config.cam.method, "layer": layer, "library": "tf-keras-vis",
               "model_modifier": "ReplaceToLinear", "score": "lesion-present output (linear)",
               "image": "NDCT", "upsample": config.cam.upsample, "normalize": config.cam.normalize,
               "stored_as": "uint8 round(255 * A)", "seconds": round(time.time() - started, 1),
               "splits": per_split}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    figure = _figure(shown, out / "figures" / "maps.png")
    ratio = per_split["test"]["lesion_to_body_ratio_mean"]
    print(f"cam: {config.cam.method} on layer {layer}; lesion-to-body map ratio on test {ratio}; "
          f"records -> {target}; figure -> {figure}")
    return summary


def _map_shard(shard: Path, target: Path, visualizer, layer: str, cam: CamConfig,
               shown: list) -> list:
    """Write ``target`` = ``shard`` with masks; return lesion-to-body ratios of present slices."""
    compression = records.compression_of(shard)
    options = tf.io.TFRecordOptions(compression_type=compression)
    ratios, count, started = [], 0, time.time()
    with tf.io.TFRecordWriter(str(target), options) as writer:
        for batch in _batches(shard, compression, cam.batch_size):
            ndct = np.stack([hu for _, hu in batch])
            maps = activation_maps(visualizer, normalize_hu(ndct)[..., None], layer, cam)
            for (example, hu), mask in zip(batch, maps):
                raw = F.mask_to_bytes(mask)
                example.features.feature[F.MASK].bytes_list.value.append(raw)
                writer.write(example.SerializeToString())
                # figures and ratios from the map as stored (uint8), not the float one
                stored = F.mask_from_bytes(raw, hu.shape)
                g = _geometry(example)
                if g["label"] == 1:
                    ratios.append(lesion_to_body_ratio(stored, hu, g["row"], g["col"],
                                                       g["radius_px"]))
                _keep_for_figure(shown, shard.name, hu, stored, g)
            count += len(batch)
    rate = count / max(time.time() - started, 1e-9)
    print(f"cam: {shard.name}: {count} maps ({rate:.1f}/s)", file=sys.stderr, flush=True)
    return ratios


def _batches(shard: Path, compression: str, size: int) -> Iterator[list]:
    """Lists of (Example, NDCT HU) of one shape, at most ``size`` long, in file order."""
    batch = []
    for raw in tf.data.TFRecordDataset(str(shard), compression_type=compression):
        example = tf.train.Example.FromString(raw.numpy())
        feature = example.features.feature
        shape = (feature[F.HEIGHT].int64_list.value[0], feature[F.WIDTH].int64_list.value[0])
        hu = F.hu_from_bytes(feature[F.NDCT].bytes_list.value[0], shape)
        if batch and (len(batch) == size or batch[0][1].shape != shape):
            yield batch
            batch = []
        batch.append((example, hu))
    if batch:
        yield batch


def _keep_for_figure(shown: list, shard_name: str, hu, mask, g: dict) -> None:
    """Up to half of the figure's slices per class, from the test split."""
    same_class = sum(1 for *_, other in shown if other["label"] == g["label"])
    if shard_name.startswith("test") and same_class < _FIGURE_SLICES // 2:
        shown.append((hu, mask, g))


def _geometry(example) -> dict:
    f = example.features.feature
    return {"label": f[F.LABEL].int64_list.value[0], "row": f[F.LESION_ROW].float_list.value[0],
            "col": f[F.LESION_COL].float_list.value[0],
            "radius_px": f[F.LESION_RADIUS_PX].float_list.value[0]}


def _figure(shown: list, path: Path) -> Path | None:
    """NDCT slices (abdomen window) with the map overlaid and the (sham) lesion outlined."""
    if not shown:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    path.parent.mkdir(parents=True, exist_ok=True)
    cols = min(4, len(shown))
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    shown = sorted(shown, key=lambda item: -item[2]["label"])
    for ax, (hu, mask, g) in zip(axes.ravel(), shown):
        ax.imshow(hu, cmap="gray", vmin=ABDOMEN_WINDOW_HU[0], vmax=ABDOMEN_WINDOW_HU[1])
        ax.imshow(np.ma.masked_less(mask, 0.05), cmap="jet", alpha=0.5, vmin=0, vmax=1)
        ax.add_patch(Circle((g["col"], g["row"]), g["radius_px"] * 1.6, fill=False, lw=1.2,
                            color="white", ls="-" if g["label"] else "--"))
        ax.set_title("lesion" if g["label"] else "no lesion (sham position)", fontsize=9)
    fig.suptitle("NDCT [-160, 240] HU with activation map A (shown where A >= 0.05); circle: "
                 "lesion (dashed: sham position)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = cli.base_parser("python -m ldct_tf.cam",
                             "Store the classifier's activation maps beside the images.")
    parser.add_argument("--method", choices=CAM_METHODS)
    parser.add_argument("--layer", help="convolutional layer (default: the last one)")
    args = parser.parse_args(argv)
    extra = [f"cam.method={json.dumps(args.method)}"] if args.method else []
    extra += [f"cam.layer={json.dumps(args.layer)}"] if args.layer else []
    config, workdir = cli.resolve(args, extra)
    run(config, workdir)
    return 0


if __name__ == "__main__":
    cli.quiet_startup()
    sys.exit(run_cli(main))
