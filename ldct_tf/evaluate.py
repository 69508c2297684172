"""`python -m ldct_tf.evaluate`: does the two-step denoiser remove noise and keep small features?

On the test split, image sets side by side: LDCT (input), NDCT (reference), a Gaussian filter and
BM3D (tuned on val), and the pretrain, finetune and finetune_pairs networks where they exist (each
missing set is listed with the reason). For every set:

- fidelity against NDCT: PSNR, SSIM, RMSE in the abdomen window [-160, 240] HU (data range 400)
  and the full range [-1024, 3072] HU (data range 4096);
- noise: global noise index (HU) in uniform soft tissue, and its ratio to LDCT's;
- small features: lesion contrast recovery (lesion minus ring, relative to NDCT) and the 10-90 %
  rise distance of the mean lesion-edge profile (relative to NDCT);
- detectability on the matched present/absent twins: a channelized Hotelling observer with
  Laguerre-Gauss channels (SKE; d' and AUC), and the trained classifier's AUC (a CNN observer);
- 95 % bootstrap intervals over slices or pairs; finetune minus pretrain as a paired comparison.

Writes ``<workdir>/eval/metrics.json``, ``report.md``, ``report.html`` and ``figures/*.png``.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ldct_tf import baselines, bootstrap, cli, data, features as F, metrics, observers, records
from ldct_tf.config import Config
from ldct_tf.errors import LdctError, run_cli
from ldct_tf.models.inference import for_inference
from ldct_tf.preprocessing import denormalize_hu, normalize_hu

EVAL_DIR = "eval"
NETWORK_SETS = ("pretrain", "finetune", "finetune_pairs")
MIN_CHO_PAIRS = 8  # fewer matched pairs give no usable CHO (covariance of the channels)
CLAIM_METRICS = ("psnr_abdomen", "ssim_abdomen", "contrast_recovery", "cho_auc",
                 "classifier_auc")


@dataclass
class Slices:
    """The test (or val) split in HU, with lesion geometry, in file order."""

    ldct: list = field(default_factory=list)
    ndct: list = field(default_factory=list)
    label: list = field(default_factory=list)
    lesion: list = field(default_factory=list)  # (row, col, radius_px, contrast_hu)
    pair_id: list = field(default_factory=list)
    spacing_mm: list = field(default_factory=list)


def load_slices(pattern: str, config: Config) -> Slices:
    out = Slices()
    with data.naming_corrupt_shards(pattern):
        for item in data.make_dataset(pattern, config, False):
            out.ldct.append(denormalize_hu(item[F.LDCT].numpy()[..., 0]))
            out.ndct.append(denormalize_hu(item[F.NDCT].numpy()[..., 0]))
            out.label.append(int(item[F.LABEL]))
            out.lesion.append(tuple(float(item[k]) for k in (
                F.LESION_ROW, F.LESION_COL, F.LESION_RADIUS_PX, F.LESION_CONTRAST_HU)))
            out.pair_id.append(int(item[F.PAIR_ID]))
            out.spacing_mm.append(float(np.mean(item[F.PIXEL_SPACING_MM].numpy())))
    return out


def load_network(path: Path):
    """A saved denoising network in the form evaluation and serving run (`for_inference`)."""
    import keras

    return for_inference(keras.models.load_model(path))


def denoise(network, images: list[np.ndarray], batch: int = 4) -> list[np.ndarray]:
    """HU in, HU out, through the shared normalisation; batches of consecutive same-size slices."""
    out = []
    for _, group in itertools.groupby(images, key=np.shape):
        group = list(group)
        for i in range(0, len(group), batch):
            chunk = np.stack(group[i:i + batch])[..., None]
            # a direct call, not predict: slices and patches differ in shape, and predict would
            # re-trace its tf.function for every new shape
            out += list(denormalize_hu(np.asarray(network(normalize_hu(chunk), training=False)))
                        [..., 0])
    return out


def make_sets(config: Config, workdir: Path, test: Slices, val: Slices | None
              ) -> tuple[dict, dict, dict]:
    """(images per set, skipped set -> reason, baseline settings)."""
    from ldct_tf.denoiser_training import model_path

    sets = {"ldct": test.ldct, "ndct": test.ndct}
    skipped, settings = {}, {}
    tune = val if val is not None and val.ldct else test
    if tune is test:
        settings["note"] = "val split empty: baselines tuned on test"
    sigma, scores = baselines.tune_gaussian(tune.ldct, tune.ndct, config.evaluate.gaussian_sigmas_px)
    sets["gaussian"] = baselines.gaussian(test.ldct, sigma)
    settings["gaussian"] = {"sigma_px": sigma, "val_rmse_abdomen_by_sigma": scores}
    _progress(f"gaussian filter: sigma {sigma} px (best val RMSE)")
    why = baselines.bm3d_available() if config.evaluate.bm3d else "disabled (evaluate.bm3d)"
    if why is None:
        noise = baselines.estimate_noise_sd(tune.ldct, tune.ndct)
        started = time.time()
        sets["bm3d"] = baselines.bm3d(test.ldct, noise)
        settings["bm3d"] = {"sigma_hu": round(noise, 2)}
        _progress(f"bm3d: sigma {noise:.1f} HU, {len(test.ldct)} slices in "
                  f"{time.time() - started:.0f} s")
    else:
        skipped["bm3d"] = why
    for name in NETWORK_SETS:
        path = model_path(workdir, name)
        if not path.is_file():
            skipped[name] = f"no model at {path}"
            continue
        sets[name] = denoise(load_network(path), test.ldct)
        _progress(f"{name}: denoised {len(test.ldct)} slices")
    return sets, skipped, settings


def evaluate_sets(config: Config, workdir: Path, test: Slices, sets: dict
                  ) -> tuple[dict, dict]:
    """Every metric of every set, with intervals; and each set's per-case values (`_cases`),
    which the paired `claim` reuses."""
    cfg = config.evaluate
    present = [i for i, lab in enumerate(test.label) if lab == 1]
    pairs = _pairs(test)
    classifier = _classifier(workdir)
    tissue = [metrics.uniform_tissue_mask(ref) for ref in test.ndct]  # one per slice, every set
    results, cases = {}, {}
    for name, images in sets.items():
        rng = np.random.default_rng(cfg.seed)
        case = _cases(images, test, present, pairs, classifier, cfg, with_fidelity=name != "ndct")
        fidelity = (_fidelity(case["fidelity"], cfg.resamples, rng) if name != "ndct"
                    else {window: None for window in metrics.WINDOWS})
        result = dict(fidelity)  # grouped by window: sets.<name>.abdomen.psnr
        result["noise"] = _noise(images, tissue, cfg.resamples, rng)
        result["contrast_recovery"] = _contrast_recovery(case.get("contrast_recovery"),
                                                         cfg.resamples, rng)
        result["edge"] = _edge(images, test, present, cfg.resamples, rng)
        result["cho"] = _cho(case.get("cho_auc"), cfg, rng)
        result["classifier_auc"] = _classifier_auc(case.get("classifier_auc"), cfg.resamples,
                                                   rng)
        results[name], cases[name] = result, case
        _progress(f"measured {name}")
    _relative(results)
    return results, cases


def claim(config: Config, cases: dict) -> dict:
    """Finetune minus pretrain with paired bootstrap intervals, and a plain verdict; ``cases``
    are the per-case values of `evaluate_sets`."""
    if "finetune" not in cases or "pretrain" not in cases:
        return {"available": False, "reason": "needs both the pretrain and finetune models"}
    cfg = config.evaluate
    rng = np.random.default_rng(cfg.seed + 1)
    out = {"available": True, "differences": {}}
    for metric in CLAIM_METRICS:
        fine, pre = cases["finetune"].get(metric), cases["pretrain"].get(metric)
        if fine is None or pre is None:
            continue
        value = _statistic(metric, fine) - _statistic(metric, pre)
        n = len(fine["cases"])
        low, high = bootstrap.interval(
            n, lambda i: _statistic(metric, fine, i) - _statistic(metric, pre, i),
            cfg.resamples, rng)
        out["differences"][metric] = {"value": value, "ci95": [low, high],
                                      "verdict": _verdict(metric, value, low, high)}
    out["verdict"] = "; ".join(d["verdict"] for d in out["differences"].values())
    out["seeds"] = ("one training seed: the intervals are over test cases only, not over "
                    "training runs")
    return out


def run(config: Config, workdir: Path) -> dict:
    workdir = Path(workdir)
    out = workdir / EVAL_DIR
    source = workdir / records.RECORDS_DIR
    sizes = records.split_sizes(source)
    if not sizes["test"]:
        raise LdctError(f"the test split of {source} is empty; prepare more series")
    cli.save_config(config, workdir, out)
    started = time.time()
    test = load_slices(records.pattern(source, "test"), config)
    val = load_slices(records.pattern(source, "val"), config) if sizes["val"] else None
    _progress(f"loaded {len(test.ldct)} test slices ({sum(test.label)} with a lesion, "
              f"{len(_pairs(test))} matched pairs)")
    sets, skipped, settings = make_sets(config, workdir, test, val)
    results, cases = evaluate_sets(config, workdir, test, sets)
    report = {
        "window": {name: {"hu": list(bounds), "data_range": bounds[1] - bounds[0]}
                   for name, bounds in metrics.WINDOWS.items()},
        "test_slices": len(test.ldct), "matched_pairs": len(_pairs(test)),
        "sets": results, "skipped": skipped, "baselines": settings,
        "claim": claim(config, cases),
        "conventions": _conventions(config),
        "seconds": round(time.time() - started, 1)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(_jsonable(report), indent=2) + "\n")
    from ldct_tf import report as report_writer

    paths = report_writer.write(report, test, sets, workdir, out)
    print(f"evaluate: report {paths['markdown']} (and {paths['html'].name}); metrics "
          f"{out / 'metrics.json'}")
    return report


# --- per-set measurements ----------------------------------------------------------------------

def _cases(images, test: Slices, present, pairs, classifier, cfg, with_fidelity: bool) -> dict:
    """Per-case values of one set, computed once: the per-set metrics and the paired claim
    (`_statistic`) both use them. A metric that cannot be measured here is missing."""
    cases: dict = {}
    if with_fidelity:
        per = [metrics.fidelity(im, ref) for im, ref in zip(images, test.ndct)]
        cases["fidelity"] = per
        for key in ("psnr", "ssim"):
            cases[f"{key}_abdomen"] = {"cases": np.array([p["abdomen"][key] for p in per])}
    if present:
        cases["contrast_recovery"] = {"cases": np.array(
            [[_signed_contrast(images[i], test.lesion[i]),
              _signed_contrast(test.ndct[i], test.lesion[i])] for i in present])}
    if len(pairs) >= MIN_CHO_PAIRS:
        size = _roi_size(test, cfg)
        present_rois, absent_rois = _rois(images, test, pairs, size)
        cases["cho_auc"] = {"cases": np.arange(len(pairs)), "present": present_rois,
                            "absent": absent_rois, "roi_px": size,
                            "channels": _cho_channels(test, pairs, size, cfg.cho_channels),
                            "splits": cfg.cho_splits, "seed": cfg.seed}
    if classifier is not None and pairs:
        cases["classifier_auc"] = {"cases": _classifier_scores(classifier, images, test, pairs)}
    return cases


def _fidelity(per: list[dict], resamples, rng) -> dict:
    return {window: {m: bootstrap.mean_with_interval([p[window][m] for p in per], resamples, rng)
                     for m in ("psnr", "ssim", "rmse")} for window in metrics.WINDOWS}


def _noise(images, tissue, resamples, rng) -> dict:
    values = [metrics.noise_index_hu(im, mask=mask) for im, mask in zip(images, tissue)]
    values = [v for v in values if v is not None]
    return {"noise_index_hu": bootstrap.mean_with_interval(values, resamples, rng)}


def _signed_contrast(image, lesion) -> float:
    row, col, radius, contrast = lesion
    return math.copysign(1.0, contrast) * metrics.lesion_contrast_hu(image, row, col, radius)


def _contrast_recovery(case: dict | None, resamples, rng) -> dict:
    if case is None:
        return {"value": None, "ci95": [None, None]}
    mine, ref = case["cases"][:, 0], case["cases"][:, 1]

    def ratio(idx):
        return float(mine[idx].sum() / ref[idx].sum())

    return {"value": ratio(np.arange(len(mine))),
            "ci95": list(bootstrap.interval(len(mine), ratio, resamples, rng)),
            "contrast_hu": float(mine.mean()), "ndct_contrast_hu": float(ref.mean())}


def _edge(images, test: Slices, present, resamples, rng) -> dict:
    if not present:
        return {"rise_distance_px": None}
    profiles = np.array([metrics.edge_profile(images[i], *test.lesion[i][:3],
                                              math.copysign(1.0, test.lesion[i][3]))
                         for i in present])
    spacing = float(np.mean([test.spacing_mm[i] for i in present]))

    def rise(idx):
        return metrics.rise_distance_px(_column_mean(profiles[idx]))

    value = rise(np.arange(len(present)))
    return {"rise_distance_px": value, "rise_distance_mm": value * spacing,
            "ci95_px": list(bootstrap.interval(len(present), rise, resamples, rng)),
            "mean_profile": _column_mean(profiles).tolist(),
            "offsets_px": metrics.EDGE_OFFSETS_PX.tolist()}


def _column_mean(profiles: np.ndarray) -> np.ndarray:
    """Mean over rows ignoring NaN (offsets outside the image); NaN where a column has none."""
    valid = np.isfinite(profiles)
    count = valid.sum(axis=0)
    total = np.where(valid, profiles, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _pairs(test: Slices) -> list[tuple[int, int]]:
    """(present index, absent index) of each matched twin pair."""
    by_id: dict[int, dict[int, int]] = {}
    for i, (pid, lab) in enumerate(zip(test.pair_id, test.label)):
        if pid >= 0:
            by_id.setdefault(pid, {})[lab] = i
    return [(v[1], v[0]) for v in by_id.values() if 0 in v and 1 in v]


def _roi_size(test: Slices, cfg) -> int:
    if cfg.roi_size:
        return cfg.roi_size
    largest = max((lesion[2] for lesion in test.lesion), default=4.0)
    return int(2 * math.ceil(2.5 * largest) + 1)


def _rois(images, test: Slices, pairs, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Present and absent ROIs centred on the lesion, sign-aligned (the SKE observer knows the
    signal, its sign included)."""
    half = size // 2

    def cut(i, sign, centre):
        padded = np.pad(images[i], half, mode="edge")
        r, c = int(round(centre[0])) + half, int(round(centre[1])) + half
        return sign * padded[r - half:r + half + 1, c - half:c + half + 1]

    present, absent = [], []
    for p, a in pairs:
        sign = math.copysign(1.0, test.lesion[p][3])
        present.append(cut(p, sign, test.lesion[p]))
        absent.append(cut(a, sign, test.lesion[p]))
    return np.array(present), np.array(absent)


def _cho_channels(test: Slices, pairs, size: int, n_channels: int) -> np.ndarray:
    diameter = 2.0 * float(np.mean([test.lesion[p][2] for p, _ in pairs]))
    return observers.laguerre_gauss_channels(size, 2.0 / 3.0 * diameter, n_channels)


def _cho(case: dict | None, cfg, rng) -> dict | None:
    if case is None:
        return None
    present, absent, channels = case["present"], case["absent"], case["channels"]
    point = observers.cho_repeated(present, absent, channels, cfg.cho_splits, rng)
    boot = {"dprime": [], "auc": []}
    n = len(present)
    for _ in range(cfg.resamples):
        idx = rng.integers(0, n, n)
        train = np.zeros(n, bool)
        train[rng.permutation(n)[:n // 2]] = True
        try:
            r = observers.cho(present[idx], absent[idx], channels, train)
        except np.linalg.LinAlgError:
            continue
        for key in boot:
            boot[key].append(r[key])
    interval = {key: [float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5))]
                for key, v in boot.items()}
    return {"dprime": point["dprime"], "dprime_ci95": interval["dprime"], "auc": point["auc"],
            "auc_ci95": interval["auc"], "auc_empirical": point["auc_empirical"],
            "roi_px": case["roi_px"], "channels": cfg.cho_channels, "pairs": n}


def _classifier(workdir: Path):
    from ldct_tf.classifier_training import model_path

    if not model_path(workdir).is_file():
        return None
    from ldct_tf.classifier_training import load_classifier

    model = load_classifier(workdir)
    patch = json.loads((Path(workdir) / "classifier" / "metrics.json").read_text())["patch_size"]
    return model, patch


def _classifier_scores(classifier, images, test: Slices, pairs) -> np.ndarray:
    """Scores of [present, absent] patches (the classifier's patch size, centred on the lesion)."""
    model, patch = classifier
    half = patch // 2
    cuts = []
    for p, a in pairs:
        r, c = int(round(test.lesion[p][0])), int(round(test.lesion[p][1]))
        for i in (p, a):
            padded = np.pad(images[i], half, mode="edge")
            cuts.append(padded[r:r + patch, c:c + patch])
    scores = np.asarray(model(normalize_hu(np.array(cuts))[..., None], training=False)).ravel()
    return scores.reshape(-1, 2)


def _classifier_auc(case: dict | None, resamples, rng) -> dict | None:
    if case is None:
        return None
    scores = case["cases"]

    def auc(idx):
        s = scores[idx]
        return metrics.auc(np.concatenate([s[:, 0], s[:, 1]]),
                           np.concatenate([np.ones(len(s)), np.zeros(len(s))]))

    return {"value": auc(np.arange(len(scores))),
            "ci95": list(bootstrap.interval(len(scores), auc, resamples, rng))}


def _relative(results: dict) -> None:
    """Ratios to LDCT's noise and to NDCT's rise distance, in place."""
    ldct_noise = results["ldct"]["noise"]["noise_index_hu"]["value"]
    ndct_rise = results["ndct"]["edge"].get("rise_distance_px")
    for result in results.values():
        noise = result["noise"]["noise_index_hu"]["value"]
        result["noise"]["ratio_to_ldct"] = noise / ldct_noise if noise and ldct_noise else None
        rise = result["edge"].get("rise_distance_px")
        result["edge"]["ratio_to_ndct"] = rise / ndct_rise if rise and ndct_rise else None


# --- the paired claim ---------------------------------------------------------------------------

def _statistic(metric: str, case: dict, idx: np.ndarray | None = None) -> float:
    idx = np.arange(len(case["cases"])) if idx is None else idx
    values = case["cases"][idx]
    if metric in ("psnr_abdomen", "ssim_abdomen"):
        return float(values.mean())
    if metric == "contrast_recovery":
        return float(values[:, 0].sum() / values[:, 1].sum())
    if metric == "cho_auc":
        # the same splits for both sets (seeded), so the difference is paired
        rng = np.random.default_rng(case["seed"])
        return observers.cho_repeated(case["present"][idx], case["absent"][idx],
                                      case["channels"], max(1, case["splits"] // 4), rng)["auc"]
    return metrics.auc(np.concatenate([values[:, 0], values[:, 1]]),
                       np.concatenate([np.ones(len(values)), np.zeros(len(values))]))


def _verdict(metric: str, value: float, low: float, high: float) -> str:
    name = metric.replace("_", " ")
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{name}: not measurable"
    if low > 0:
        return f"{name}: finetune higher by {value:+.4g} (95 % CI {low:+.4g} to {high:+.4g})"
    if high < 0:
        return f"{name}: finetune lower by {value:+.4g} (95 % CI {low:+.4g} to {high:+.4g})"
    return (f"{name}: difference {value:+.4g} is within noise (95 % CI {low:+.4g} to "
            f"{high:+.4g} includes 0)")


def _conventions(config: Config) -> dict:
    return {
        "psnr_ssim_rmse": "against NDCT, both images clipped to the window first",
        "ssim": "Gaussian-weighted (sigma 1.5, 11x11), K1 0.01, K2 0.03, population covariance, "
                "5-px border excluded (skimage gaussian_weights=True, use_sample_covariance=False)",
        "noise": "global noise index: mode of the 9x9 local SD in uniform soft tissue (HU)",
        "contrast_recovery": "sum over lesion-present slices of (mean inside 0.6 R - mean of the "
                             "1.5-2 R ring), sign-aligned, over the same on NDCT",
        "edge": "10-90 % rise distance of the mean sign-aligned radial profile across the lesion "
                "edge",
        "cho": f"SKE, {config.evaluate.cho_channels} Laguerre-Gauss channels of width 2/3 of the "
               "mean lesion diameter, pooled covariance, half/half train/test splits, "
               "AUC = Phi(d'/sqrt 2)",
        "classifier_auc": "the trained lesion classifier on patches centred on the (sham) lesion",
        "intervals": f"95 % percentile bootstrap, {config.evaluate.resamples} resamples of test "
                     "slices (or matched pairs)",
    }


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _progress(message: str) -> None:
    print(f"evaluate: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = cli.base_parser("python -m ldct_tf.evaluate",
                             "Measure noise removal and small-feature preservation on test.")
    args = parser.parse_args(argv)
    config, workdir = cli.resolve(args)
    from ldct_tf.report import summary_table

    print(summary_table(run(config, workdir)))
    return 0


if __name__ == "__main__":
    cli.quiet_startup()
    sys.exit(run_cli(main))
