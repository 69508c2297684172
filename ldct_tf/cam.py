"""`python -m ldct_tf.cam`: activation maps of the lesion classifier, stored beside the images.

First the gate: the classifier's val AUC on the NDCT patch task (test AUC without a val split, from
``<workdir>/classifier/metrics.json``) must reach ``cam.min_classifier_auc``; the Grad-CAM of a
classifier near chance highlights noise, and a fine-tune weighted by noise would only look like the
method (`check_classifier`).

For every slice of every split, the map A of the NDCT image with respect to the lesion-present score
is computed with tf-keras-vis (Grad-CAM by default; Grad-CAM++, Layer-CAM and Score-CAM on request)
on a clone of the classifier whose sigmoid is replaced by a linear output (``ReplaceToLinear``), so
gradients do not vanish where the classifier is confident. Post-processing is explicit
(`CamConfig`): the layer's map is upsampled to the slice (bilinear by default) and scaled into
[0, 1]: by default ("global") divided by one constant for every slice of every split, fixed on the
train split (`global_scale`) and clipped, so a slice the classifier finds nothing in keeps a dark
map instead of having its strongest noise stretched to 1; "minmax" and "max" scale each map on its
own. The map is stored as it is, as ``mask`` (uint8, round(255 * A), see
`ldct_tf.records.schema`); the training weight is applied later by the finetune input pipeline,
exactly once.

Writes ``<workdir>/records_with_mask/`` (every input record plus ``mask``, same shard names, with
``schema.json``, ``stats.json`` and ``quarantine.json``; the shards by `ldct_tf.records.writer`),
``<workdir>/cam/summary.json`` (method, layer, post-processing and the global scale, the classifier
AUC that passed the gate, and per split the map quality on lesion-present slices: the mean map
inside the lesion disc over the mean map over the body, the share of map mass within 1.5 lesion
radii of the lesion centre (`mass_within`), and the share of slices whose map peaks there
(`peak_within`; goal >= 0.7, a warning below 0.5 on test), overall and per lesion size x contrast
bin, `ldct_tf.ct.lesions.lesion_bins`) and ``<workdir>/cam/figures/*.png``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ldct_tf import atomic, cli, progress, records
from ldct_tf.config import CAM_METHODS, SPLITS, CamConfig, Config
from ldct_tf.ct.lesions import lesion_bins
from ldct_tf.errors import LdctError, run_cli
from ldct_tf.models.preprocessing import ABDOMEN_WINDOW_HU, normalize_hu
from ldct_tf.records import reader, writer
from ldct_tf.records import schema as F
from ldct_tf.tf_import import import_tensorflow
from ldct_tf.train.classifier import load_classifier
from ldct_tf.workdir import QUARANTINE_FILE, SCHEMA_FILE, STATS_FILE, SUMMARY_FILE, Workdir

tf = import_tensorflow()
import keras  # noqa: E402

BODY_HU = -500.0  # body = NDCT above this (excludes air and gas, keeps fat and lung edges)
_FIGURE_SLICES = 8
GLOBAL_PERCENTILE = 99.0  # of the per-slice maxima of the raw train maps: the "global" scale
LESION_REACH = 1.5  # map quality counts what lies within this many lesion radii of the centre
PEAK_WITHIN_GOAL, PEAK_WITHIN_WARN = 0.7, 0.5  # test share of lesion maps peaking at the lesion


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


def activation_maps(visualizer, images: np.ndarray, layer: str, cam: CamConfig,
                    scale: float | None = None) -> np.ndarray:
    """Maps in [0, 1], shape ``[batch, H, W]``, of ``images`` (``[batch, H, W, 1]``, network range),
    scaled by ``cam.normalize`` (``scale``: the constant of "global", see `global_scale`)."""
    return normalize_maps(raw_maps(visualizer, images, layer, cam.upsample), cam.normalize, scale)


def raw_maps(visualizer, images: np.ndarray, layer: str, upsample: str) -> np.ndarray:
    """Unscaled maps (>= 0), ``[batch, H, W]`` float32, upsampled to the images' size.

    tf-keras-vis gives the ReLU'd map at the layer's resolution (``expand_cam=False``,
    ``normalize_cam=False``); upsampling and scaling are done here, explicitly.
    """
    raw = visualizer(lesion_score, np.asarray(images, np.float32), penultimate_layer=layer,
                     expand_cam=False, normalize_cam=False)
    raw = tf.convert_to_tensor(raw, tf.float32)[..., None]
    height, width = images.shape[1:3]
    upsampled = tf.image.resize(raw, (height, width), method=upsample)[..., 0].numpy()
    return np.maximum(upsampled, 0.0)


def global_scale(maxima) -> float:
    """The "global" constant: the `GLOBAL_PERCENTILE` (99th) percentile of the per-slice maxima of
    the raw train maps. A high percentile rather than the maximum, so that one outlier slice does
    not darken every other map (the top 1 % of slices saturate at 1 instead); 1.0 when every map
    is zero."""
    maxima = np.asarray(maxima, np.float64)
    if maxima.size == 0:
        raise ValueError("global_scale needs the maxima of some train maps, got none")
    value = float(np.percentile(maxima, GLOBAL_PERCENTILE))
    return value if value > 0 else 1.0


def normalize_maps(maps: np.ndarray, how: str, scale: float | None = None) -> np.ndarray:
    """Scaling into [0, 1]: "global" (divided by ``scale`` and clipped: the same for every map),
    or per image "minmax" or "max"; an all-zero map stays zero."""
    maps = np.maximum(np.asarray(maps, np.float64), 0.0)
    if how == "global":
        if scale is None or not scale > 0:
            raise ValueError(f"normalize 'global' needs a scale > 0 (see global_scale), "
                             f"got {scale}")
        return np.clip(maps / scale, 0.0, 1.0).astype(np.float32)
    axes = tuple(range(1, maps.ndim))
    top = maps.max(axis=axes, keepdims=True)
    low = maps.min(axis=axes, keepdims=True) if how == "minmax" else np.zeros_like(top)
    span = top - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1.0), 0.0).astype(
        np.float32)


def lesion_to_body_ratio(mask: np.ndarray, ndct_hu: np.ndarray, row: float, col: float,
                         radius_px: float) -> float | None:
    """Mean map inside the lesion disc over the mean map over the body (NDCT > -500 HU)."""
    disc = _near_lesion(mask.shape, row, col, radius_px, 1.0)
    body = ndct_hu > BODY_HU
    body_mean = mask[body].mean() if body.any() else 0.0
    return float(mask[disc].mean() / body_mean) if disc.any() and body_mean > 0 else None


def _near_lesion(shape, row: float, col: float, radius_px: float, factor: float) -> np.ndarray:
    rr, cc = np.ogrid[:shape[0], :shape[1]]
    return np.hypot(rr - row, cc - col) <= factor * radius_px


def mass_within(mask: np.ndarray, row: float, col: float, radius_px: float,
                factor: float = LESION_REACH) -> float:
    """Share of the map's total mass within ``factor`` lesion radii (pixels) of the lesion centre;
    0 for an all-zero map (it finds nothing)."""
    mask = np.asarray(mask, np.float64)
    total = mask.sum()
    near = _near_lesion(mask.shape, row, col, radius_px, factor)
    return float(mask[near].sum() / total) if total > 0 else 0.0


def peak_within(mask: np.ndarray, row: float, col: float, radius_px: float,
                factor: float = LESION_REACH) -> bool:
    """Whether the map's maximum (the first, in row-major order) lies within ``factor`` lesion radii
    of the lesion centre; False for an all-zero map."""
    mask = np.asarray(mask)
    if not mask.max() > 0:
        return False
    peak = np.unravel_index(np.argmax(mask), mask.shape)
    return bool(_near_lesion(mask.shape, row, col, radius_px, factor)[peak])


def classifier_auc(workdir: Path) -> tuple[str, float] | None:
    """(key, value) of the classifier's val AUC on the NDCT patch task, or its test AUC without a
    val split; None when ``classifier/metrics.json`` is missing or has neither."""
    path = Workdir(workdir).classifier_metrics
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    for key in ("val_auc_ndct", "test_auc_ndct"):
        value = saved.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            return key, float(value)
    return None


def check_classifier(workdir: Path, min_auc: float) -> tuple[str, float] | None:
    """`classifier_auc`, refusing a classifier below ``min_auc`` (0: no check): the Grad-CAM of a
    classifier near chance is a map of noise, not of lesions."""
    found = classifier_auc(workdir)
    if min_auc <= 0:
        return found
    if found is None:
        raise LdctError(f"{Workdir(workdir).classifier_metrics} has no val or test AUC "
                        f"to check against cam.min_classifier_auc {min_auc:g}; train the "
                        f"classifier with `python -m ldct_tf.train --phase classifier --workdir "
                        f"{workdir}` or pass --set cam.min_classifier_auc=0")
    key, value = found
    if value < min_auc:
        raise LdctError(f"classifier {key.split('_')[0]} AUC {value:g} (NDCT patch task) is below "
                        f"cam.min_classifier_auc {min_auc:g}: its maps would be noise; train a "
                        "better classifier (more classifier.epochs, "
                        "classifier.insert_lesions=true) or pass --set cam.min_classifier_auc=0 "
                        "to use them anyway")
    return found


def run(config: Config, workdir: Path) -> dict:
    """Compute and store the maps of every split; return ``cam/summary.json`` as a dict."""
    workdir = Path(workdir)
    source = Workdir(workdir).records
    target = Workdir(workdir).records_with_mask
    out = Workdir(workdir).cam
    if not any(records.shards(source, s) for s in SPLITS):
        raise LdctError(f"no records in {source}; run `python -m ldct_tf.prepare --workdir "
                        f"{workdir}` first")
    if (source / STATS_FILE).is_file():
        records.verify_shards(source)  # a cut shard is named here, before any map is written
    model = load_classifier(workdir)
    gate = check_classifier(workdir, config.cam.min_classifier_auc)
    layer = config.cam.layer or last_conv_layer(model)
    if layer not in [lyr.name for lyr in model.layers]:
        raise LdctError(f"layer {layer!r} is not in the classifier; choose one of "
                        f"{', '.join(lyr.name for lyr in model.layers if 'conv' in lyr.name)}")
    visualizer = make_visualizer(model, config.cam.method)
    target.mkdir(parents=True, exist_ok=True)
    (target / STATS_FILE).unlink(missing_ok=True)  # back, last, once the maps are all written
    records.remove_shards(target)
    cli.save_config(config, workdir, out)
    started, per_split, shown = time.time(), {}, []
    pending, scale = {}, None
    if config.cam.normalize == "global":
        with progress.phase("maps"):
            pending, scale = _train_maps_and_scale(source, visualizer, layer, config.cam)
    for split in SPLITS:
        quality = []
        for shard in records.shards(source, split):
            with progress.phase("maps"):
                maps = pending.pop(shard) if shard in pending else _shard_maps(
                    shard, visualizer, layer, config.cam)
            with progress.phase("write"):
                written = target / shard.name
                writer.write_with_masks(shard, written, (normalize_maps(
                    raw[None], config.cam.normalize, scale)[0] for raw in maps))
                quality += _shard_quality(written, maps, shown)
        per_split[split] = _split_quality(quality, *_lesion_ranges(config, split))
    atomic.copy_file(source / QUARANTINE_FILE, target / QUARANTINE_FILE)
    records.write_schema(target, config.data.compression, with_mask=True)
    summary = {"method": config.cam.method, "layer": layer, "library": "tf-keras-vis",
               "model_modifier": "ReplaceToLinear", "score": "lesion-present output (linear)",
               "image": "NDCT", "upsample": config.cam.upsample, "normalize": config.cam.normalize,
               "global_scale": scale,
               "global_scale_rule": f"percentile {GLOBAL_PERCENTILE:g} of the per-slice maxima of "
                                    "the raw train maps" if scale is not None else None,
               "classifier_auc": dict([gate]) if gate else None,
               "min_classifier_auc": config.cam.min_classifier_auc,
               "stored_as": "uint8 round(255 * A)", "seconds": round(time.time() - started, 1),
               "splits": per_split}
    atomic.write_json(out / SUMMARY_FILE, summary)
    figure = _figure(shown, Workdir(workdir).cam_figure)
    test = per_split["test"]
    print(f"cam: {config.cam.method} on layer {layer}; test lesion maps: peak within 1.5 R "
          f"{test['peak_within_1_5R']} (goal >= {PEAK_WITHIN_GOAL}), mass within 1.5 R "
          f"{test['mass_within_1_5R']}, lesion-to-body ratio {test['lesion_to_body_ratio_mean']}; "
          f"records -> {target}; figure -> {figure}")
    _check_maps(per_split, config.cam.min_peak_within, target)
    # last, once the maps passed: a stats.json says the records are complete (and checks them)
    atomic.copy_file(source / STATS_FILE, target / STATS_FILE)
    peak = test["peak_within_1_5R"]
    if peak is not None and peak < PEAK_WITHIN_WARN:
        print(f"cam: WARNING: the test maps peak within 1.5 lesion radii on only {peak:.0%} of "
              "lesion-present slices: the fine-tune weight will mostly miss the lesions; train a "
              "better classifier before fine-tuning on these maps", flush=True)
    return summary


def _check_maps(per_split: dict, minimum: float, target: Path) -> None:
    """The second gate: maps that miss the lesions on val (train when val has no lesion slice)
    are removed and the step stops, so no fine-tune trains on them; the summary and figure stay
    for inspection."""
    split = "val" if per_split.get("val", {}).get("peak_within_1_5R") is not None else "train"
    peak = per_split.get(split, {}).get("peak_within_1_5R")
    if not minimum or peak is None or peak >= minimum:
        return
    records.remove_shards(target)
    for name in (STATS_FILE, SCHEMA_FILE, QUARANTINE_FILE):  # nothing says "done" now
        (target / name).unlink(missing_ok=True)
    raise LdctError(f"the {split} maps peak within 1.5 lesion radii on only {peak:.0%} of lesion "
                    f"slices (cam.min_peak_within {minimum:.0%}): they would weight noise, not "
                    "lesions; train a better classifier (more classifier.epochs or series) or pass "
                    "--set cam.min_peak_within=0 to use them anyway")


def _train_maps_and_scale(source: Path, visualizer, layer: str,
                          cam: CamConfig) -> tuple[dict, float]:
    """The raw maps of the train shards (kept: float32, a few hundred slices at most, rather than
    computed twice) and the `global_scale` fixed on them."""
    maps = {shard: _shard_maps(shard, visualizer, layer, cam)
            for shard in records.shards(source, "train")}
    if not maps:
        raise LdctError(f"the train split of {source} is empty, and cam.normalize=global fixes its "
                        "scale there; prepare more series or pass --set 'cam.normalize=\"max\"'")
    return maps, global_scale([m.max() for shard_maps in maps.values() for m in shard_maps])


def _shard_maps(shard: Path, visualizer, layer: str, cam: CamConfig) -> list[np.ndarray]:
    """The raw upsampled maps (`raw_maps`) of every slice of ``shard``, in file order."""
    maps, started = [], time.time()
    ndct = (values[F.NDCT] for values in reader.read_values(shard))
    for batch in _batches(ndct, cam.batch_size):
        maps += list(raw_maps(visualizer, normalize_hu(np.stack(batch))[..., None], layer,
                              cam.upsample))
    rate = len(maps) / max(time.time() - started, 1e-9)
    print(f"cam: {shard.name}: {len(maps)} maps ({rate:.1f}/s)", file=sys.stderr, flush=True)
    return maps


def _shard_quality(written: Path, maps: list, shown: list) -> list[dict]:
    """The map quality of every lesion-present slice of a shard just written with its maps
    (`_slice_quality`; ``maps``: the raw ones, in file order), keeping test slices for the figure.
    Figures and quality use the map read back as stored (uint8), not the float one."""
    quality = []
    for values, raw in zip(reader.read_values(written), maps, strict=True):
        hu, stored, g = values[F.NDCT], values[F.MASK], _geometry(values)
        if g["label"] == 1:
            quality.append(_slice_quality(stored, raw, hu, g))
        _keep_for_figure(shown, written.name, hu, stored, g)
    return quality


def _slice_quality(stored: np.ndarray, raw: np.ndarray, hu: np.ndarray, g: dict) -> dict:
    """Ratio and mass on the map as stored (what the loss sees); the peak on the raw map, whose
    maximum the clipping of "global" and the uint8 rounding do not turn into ties."""
    where = (g["row"], g["col"], g["radius_px"])
    return {"ratio": lesion_to_body_ratio(stored, hu, *where),
            "mass": mass_within(stored, *where), "peak": peak_within(raw, *where),
            "diameter_mm": g["diameter_mm"], "contrast_hu": abs(g["contrast_hu"])}


def _mean(values) -> float | None:
    return round(float(np.mean(values)), 3) if len(values) else None


def _lesion_ranges(config: Config, split: str) -> tuple[tuple, tuple]:
    """(diameter, contrast) ranges of the split's lesions: `[lesion_test]` for test, `[lesion]`
    for val, and for train `[lesion]` joined with `[lesion_variants]` when it adds any."""
    if split == "test":
        return config.lesion_test.diameter_mm, config.lesion_test.contrast_hu
    sections = [config.lesion]
    if split == "train" and config.lesion_variants.count:
        sections.append(config.lesion_variants)
    return tuple((min(getattr(s, key)[0] for s in sections), max(getattr(s, key)[1]
                  for s in sections)) for key in ("diameter_mm", "contrast_hu"))


def _split_quality(quality: list[dict], diameter_range, contrast_range) -> dict:
    """One split's summary of `_slice_quality` over its lesion-present slices, overall and per
    lesion size and contrast bin (`lesion_bins` of the split's lesion ranges, `_lesion_ranges`)."""
    ratios = [q["ratio"] for q in quality if q["ratio"] is not None]
    return {"lesion_present_slices": len(quality),
            "lesion_to_body_ratio_mean": _mean(ratios),
            "lesion_to_body_ratio_median": round(float(np.median(ratios)), 3) if ratios else None,
            "mass_within_1_5R": _mean([q["mass"] for q in quality]),
            "peak_within_1_5R": _mean([q["peak"] for q in quality]),
            "bins": _bin_quality(quality, diameter_range, contrast_range)}


def _bin_quality(quality: list[dict], diameter_range, contrast_range) -> list[dict]:
    """`mass_within_1_5R` and `peak_within_1_5R` per lesion size x contrast bin."""
    found = lesion_bins([q["diameter_mm"] for q in quality], [q["contrast_hu"] for q in quality],
                        diameter_range, contrast_range)
    out = []
    for (size, contrast), members in found.items():
        chosen = [quality[i] for i in members]
        out.append({"diameter_mm": list(size), "contrast_hu": list(contrast),
                    "lesion_present_slices": len(chosen),
                    "mass_within_1_5R": _mean([q["mass"] for q in chosen]),
                    "peak_within_1_5R": _mean([q["peak"] for q in chosen])})
    return out


def _batches(images: Iterable[np.ndarray], size: int) -> Iterator[list]:
    """Lists of images of one shape, at most ``size`` long, in their order."""
    batch = []
    for image in images:
        if batch and (len(batch) == size or batch[0].shape != image.shape):
            yield batch
            batch = []
        batch.append(image)
    if batch:
        yield batch


def _keep_for_figure(shown: list, shard_name: str, hu, mask, g: dict) -> None:
    """Up to half of the figure's slices per class, from the test split."""
    same_class = sum(1 for *_, other in shown if other["label"] == g["label"])
    if shard_name.startswith("test") and same_class < _FIGURE_SLICES // 2:
        shown.append((hu, mask, g))


def _geometry(values: dict) -> dict:
    """The (sham) lesion of one slice (`schema.parse_values`): label, centre and radius in pixels,
    diameter in mm (the mean pixel spacing) and contrast in HU."""
    radius_px = values[F.LESION_RADIUS_PX]
    spacing_mm = float(np.mean(values[F.PIXEL_SPACING_MM]))
    return {"label": values[F.LABEL], "row": values[F.LESION_ROW], "col": values[F.LESION_COL],
            "radius_px": radius_px, "diameter_mm": 2.0 * radius_px * spacing_mm,
            "contrast_hu": values[F.LESION_CONTRAST_HU]}


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
    with atomic.replacing(path) as temp:
        fig.savefig(temp, dpi=80)
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
    with cli.claim(workdir, parser.prog, argv):
        run(config, workdir)
    return 0


if __name__ == "__main__":
    cli.quiet_startup()
    sys.exit(run_cli(main))
