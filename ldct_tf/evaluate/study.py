"""`python -m ldct_tf.evaluate`: does the two-step denoiser remove noise and keep small features?

On the test split, image sets side by side: LDCT (input), NDCT (reference), a Gaussian filter and
BM3D (tuned on val; ``evaluate.baselines = false`` skips both), and the networks where they exist
(each missing set is listed with the reason): pretrain (plain MSE), finetune (the method:
activation-map-weighted MSE), finetune_control (the same fine-tune with uniform weight: the
control), finetune_oracle (weight = the true lesion disk: a diagnostic, never the method) and
finetune_pairs (the paper's literal LDCT*A -> NDCT*A). The test lesions come from ``[lesion_test]``
(matched twins: the same slice with and without the lesion), set apart from training's so that no
observer is saturated. For every set, diagnostic first:

- contrast kept on the twins (present minus absent inside 0.6 R, over NDCT's), overall and by
  size and sign, and the contrast invented at the absent twin's sham site (within +-0.1);
- detection: a channelized Hotelling observer (SKE, Laguerre-Gauss channels; d' and AUC) and the
  independent CNN observer (`ldct_tf.train.observer`: never used for maps);
- localization: a scanning matched filter over 4 lesion radii; fraction localized within 1 radius
  and the LROC area (`ldct_tf.evaluate.localization`);
- fidelity against NDCT: PSNR, SSIM, RMSE in the abdomen window [-160, 240] HU (data range 400)
  and the full range [-1024, 3072] HU (data range 4096); noise index (HU) and its ratio to LDCT's;
  ring-based contrast recovery, the edge's 10-90 % rise distance and step (relative to NDCT);
- 95 % bootstrap intervals that resample test *slices* with all their twins (`Design`); paired
  comparisons (`claims`): finetune minus finetune_control (what the map adds: the attribution
  claim), finetune minus pretrain, the oracle minus the control (diagnostic), finetune_pairs minus
  pretrain, and NDCT minus LDCT (what the study can resolve).

Writes ``<workdir>/eval/metrics.json``, ``cases.npz`` (the per-case values a seed study
bootstraps, `write_cases`), ``report.md``, ``report.html`` and ``figures/*.png``.
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

from ldct_tf.evaluate import baselines, bootstrap, localization, metrics, observers
from ldct_tf import cli, records
from ldct_tf.records import dataset as data, schema as F
from ldct_tf.config import Config
from ldct_tf.errors import LdctError, run_cli
from ldct_tf.models.inference import for_inference
from ldct_tf.models.preprocessing import denormalize_hu, normalize_hu
from ldct_tf.evaluate.report import COMPARISONS, jsonable, label
from ldct_tf.workdir import Workdir

NETWORK_SETS = ("pretrain", "finetune", "finetune_control", "finetune_oracle", "finetune_pairs")
MIN_CHO_PAIRS = 8  # fewer matched pairs give no usable CHO (covariance of the channels)
# diagnostic first, then fidelity (the order of the report)
CLAIM_METRICS = ("contrast_kept", "cho_auc", "lroc_area", "fraction_localized",
                 "cnn_observer_independent", "invented_contrast", "contrast_recovery",
                 "psnr_abdomen", "ssim_abdomen")
# the scanning observer searches a disk of 4 lesion radii around the site and localizes correctly
# within 1 radius
LROC_SEARCH, LROC_HIT = localization.DEFAULT_SEARCH_FACTOR, localization.DEFAULT_HIT_FACTOR
# A denoiser may paint at most this share of the true lesion contrast where there is no lesion.
INVENTED_TOLERANCE = 0.1
TWIN_INNER = 0.6  # twin measures average inside 0.6 lesion radii: the core, clear of the edge


@dataclass
class Slices:
    """The test (or val) split in HU, with lesion geometry, in file order."""

    ldct: list = field(default_factory=list)
    ndct: list = field(default_factory=list)
    label: list = field(default_factory=list)
    lesion: list = field(default_factory=list)  # (row, col, radius_px, contrast_hu)
    pair_id: list = field(default_factory=list)
    spacing_mm: list = field(default_factory=list)
    unit: list = field(default_factory=list)  # the source slice: the bootstrap's unit


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
            out.unit.append(f"{item[F.SERIES_KEY].numpy().decode()}/{int(item[F.SLICE_INDEX])}")
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
    sets = {"ldct": test.ldct, "ndct": test.ndct}
    skipped, settings = {}, {}
    if config.evaluate.baselines:
        sets.update(_baselines(config, test, val, skipped, settings))
    else:
        for name in ("gaussian", "bm3d"):
            # they do not depend on the training seed: a seed study measures them once
            skipped[name] = "disabled (evaluate.baselines = false)"
    for name in NETWORK_SETS:
        path = Workdir(workdir).denoiser_model(name)
        if not path.is_file():
            skipped[name] = f"no model at {path}"
            continue
        sets[name] = denoise(load_network(path), test.ldct)
        _progress(f"{name}: denoised {len(test.ldct)} slices")
    return sets, skipped, settings


def _baselines(config: Config, test: Slices, val: Slices | None, skipped: dict, settings: dict
               ) -> dict:
    """The Gaussian filter and BM3D, tuned on val; fills ``skipped`` and ``settings``."""
    sets = {}
    tune = val if val is not None and val.ldct else test
    if tune is test:
        settings["note"] = "val split empty: baselines tuned on test"
    sigma, scores, note = baselines.tune_gaussian(tune.ldct, tune.ndct,
                                                  config.evaluate.gaussian_sigmas_px)
    sets["gaussian"] = baselines.gaussian(test.ldct, sigma)
    settings["gaussian"] = {"sigma_px": sigma, "val_rmse_abdomen_by_sigma": scores}
    if note:
        settings["gaussian"]["note"] = note
        _progress(note)
    _progress(f"gaussian filter: sigma {sigma} px (best val RMSE)")
    why = baselines.bm3d_available() if config.evaluate.bm3d else "disabled (evaluate.bm3d)"
    if why is None:
        # FBP noise is correlated: BM3D gets the LDCT noise's power spectrum, not a white sigma
        psd = baselines.estimate_noise_psd(tune.ldct, tune.ndct)
        started = time.time()
        sets["bm3d"] = baselines.bm3d(test.ldct, psd)
        settings["bm3d"] = {"noise": "power spectrum of LDCT - NDCT on val (NDCT share removed)",
                            "sigma_hu_equivalent": round(baselines.psd_sd_hu(psd), 2)}
        _progress(f"bm3d: noise power spectrum (white-equivalent sigma "
                  f"{baselines.psd_sd_hu(psd):.1f} HU), {len(test.ldct)} slices in "
                  f"{time.time() - started:.0f} s")
    else:
        skipped["bm3d"] = why
    return sets


@dataclass(frozen=True)
class Design:
    """The bootstrap's units for each kind of case: slices, matched pairs and lesion-present slices
    are grouped by their source test slice (a slice and all its twins form one unit; see
    `ldct_tf.evaluate.bootstrap`)."""

    slices: bootstrap.Clusters
    pairs: bootstrap.Clusters
    present: bootstrap.Clusters

    @classmethod
    def of(cls, test: Slices, pairs, present) -> "Design":
        unit = test.unit or [str(i) for i in range(len(test.ldct))]
        return cls(bootstrap.Clusters.of(unit),
                   bootstrap.Clusters.of([unit[p] for p, _ in pairs]),
                   bootstrap.Clusters.of([unit[i] for i in present]))


def evaluate_sets(config: Config, workdir: Path, test: Slices, sets: dict
                  ) -> tuple[dict, dict]:
    """Every metric of every set, with intervals; and each set's per-case values (`_cases`),
    which the paired `claims` and `write_cases` reuse."""
    cfg = config.evaluate
    present = [i for i, lab in enumerate(test.label) if lab == 1]
    pairs = _pairs(test)
    design = Design.of(test, pairs, present)
    readers = {"classifier_auc": _classifier(workdir),
               "cnn_observer_independent": _observer(workdir)}
    tissue = [metrics.uniform_tissue_mask(ref) for ref in test.ndct]  # one per slice, every set
    reference = _twin_reference(test, pairs)  # NDCT's twin contrast: every set's denominator
    results, cases = {}, {}
    for name, images in sets.items():
        rng = np.random.default_rng(cfg.seed)
        case = _cases(images, test, present, pairs, readers, cfg, with_fidelity=name != "ndct",
                      reference=reference, design=design)
        fidelity = (_fidelity(case["fidelity"], cfg.resamples, rng, design.slices)
                    if name != "ndct" else {window: None for window in metrics.WINDOWS})
        result = {
            # diagnostic first (the report's order), then fidelity
            "contrast_kept": _contrast_kept(case.get("contrast_kept"), test, pairs,
                                            cfg.resamples, rng),
            "cho": _cho(case.get("cho_auc")),
            "lroc": _lroc(case.get("lroc_area"), cfg.resamples, rng),
            "cnn_observer_independent": _auc_of_scores(case.get("cnn_observer_independent"),
                                                       cfg.resamples, rng),
            "invented_contrast": _invented(case.get("invented_contrast"), cfg.resamples, rng),
            **fidelity,  # grouped by window: sets.<name>.abdomen.psnr
            "noise": _noise(images, tissue, cfg.resamples, rng, design.slices),
            "contrast_recovery": _contrast_recovery(case.get("contrast_recovery"),
                                                    cfg.resamples, rng),
            "edge": _edge(images, test, present, cfg.resamples, rng, design.present),
            "classifier_auc": _auc_of_scores(case.get("classifier_auc"), cfg.resamples, rng),
        }
        results[name], cases[name] = result, case
        _progress(f"measured {name}")
    _relative(results)
    return results, cases


def claims(config: Config, cases: dict) -> list[dict]:
    """Every comparison of `COMPARISONS` whose two sets exist, each a `compare`."""
    return [compare(config, cases, a, b, role) for a, b, role in COMPARISONS
            if a in cases and b in cases]


def compare(config: Config, cases: dict, a: str, b: str, role: str) -> dict:
    """Set ``a`` minus set ``b`` on every `CLAIM_METRICS` with paired bootstrap intervals (the
    same resampled units for both sets: pairs' source slices), and a plain verdict naming both
    sets; ``cases`` are the per-case values of `evaluate_sets`."""
    cfg = config.evaluate
    rng = np.random.default_rng(cfg.seed + 1)  # each comparison draws alike, whatever else exists
    out = {"available": True, "name": f"{label(a)} vs {label(b)}", "a": a, "b": b, "role": role,
           "differences": {}}
    for metric in CLAIM_METRICS:
        one, other = cases[a].get(metric), cases[b].get(metric)
        if one is None or other is None:
            continue
        if metric == "cho_auc":  # same seed, same draws and splits: paired by construction
            diff = observers.paired_difference(one["study"], other["study"], "auc")
            value, (low, high) = diff["value"], diff["ci95"]
        else:
            value = _statistic(metric, one) - _statistic(metric, other)
            low, high = bootstrap.interval(
                len(one["cases"]),
                lambda i: _statistic(metric, one, i) - _statistic(metric, other, i),
                cfg.resamples, rng, clusters=one["clusters"])
        out["differences"][metric] = {"value": value, "ci95": [low, high],
                                      "resolvable": _resolvable(low, high),
                                      "verdict": _verdict(metric, a, b, value, low, high)}
    out["verdict"] = "; ".join(d["verdict"] for d in out["differences"].values())
    out["seeds"] = (f"the intervals are over the test cases of one training seed "
                    f"(train.seed = {config.train.seed}); a seed study (python -m "
                    "ldct_tf.seed_study) repeats the comparison over training seeds")
    return out


def _resolvable(low: float, high: float) -> float | None:
    """The smallest true difference this comparison would detect with 80 % power at the 5 %
    level: (1.96 + 0.84) standard errors, the standard error read off the 95 % interval's
    half-width (1.96 SE)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return None
    return float((1.96 + 0.84) / 1.96 * (high - low) / 2.0)


def headline(all_claims: list[dict]) -> dict:
    """The one claim older readers of ``metrics.json`` expect under ``claim``: finetune vs its
    control (what the map adds) where the control exists, else finetune vs pretrain."""
    for a, b in (("finetune", "finetune_control"), ("finetune", "pretrain")):
        for item in all_claims:
            if (item["a"], item["b"]) == (a, b):
                return item
    return {"available": False,
            "reason": "needs the finetune model and its control (finetune_control) or pretrain"}


def run(config: Config, workdir: Path) -> dict:
    workdir = Path(workdir)
    out = Workdir(workdir).eval
    source = Workdir(workdir).records
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
    all_claims = claims(config, cases)
    report = {
        "window": {name: {"hu": list(bounds), "data_range": bounds[1] - bounds[0]}
                   for name, bounds in metrics.WINDOWS.items()},
        "test_slices": len(test.ldct), "matched_pairs": len(_pairs(test)),
        "units": len(set(test.unit)),
        "train_seed": config.train.seed,
        "sets": results, "skipped": skipped, "baselines": settings,
        "claim": headline(all_claims), "claims": all_claims,
        "conventions": _conventions(config),
        "seconds": round(time.time() - started, 1)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(jsonable(report), indent=2) + "\n")
    write_cases(Workdir(workdir).cases, test, cases)
    from ldct_tf.evaluate import report as report_writer

    paths = report_writer.write(report, test, sets, workdir, out)
    print(f"evaluate: report {paths['markdown']} (and {paths['html'].name}); metrics "
          f"{out / 'metrics.json'}")
    return report


def write_cases(path: Path, test: Slices, cases: dict) -> None:
    """The per-case values behind the twin measures, contrast recovery and abdomen PSNR/SSIM, so
    a seed study can bootstrap over seeds and cases (`ldct_tf.seed_study`). Keys of the npz:

    - ``sets``: the set names; ``n_slices``: test slices;
    - ``slice_unit`` [slices], ``pair_unit`` [pairs], ``present_unit`` [present slices]: the
      bootstrap unit (source test slice, numbered from 0) of each case;
    - ``pair_index`` [pairs, 2]: (present, absent) slice index of each matched twin pair;
      ``pair_sign`` [pairs]: sign of the lesion contrast; ``present_index`` [present slices];
    - ``<set>.twin_present_hu``, ``<set>.twin_absent_hu`` [pairs]: mean HU inside 0.6 lesion
      radii at the lesion site, present and absent twin (``ndct.*`` is the reference);
    - ``<set>.lesion_contrast_hu`` [present slices]: sign-aligned lesion minus ring (HU);
    - ``<set>.psnr_abdomen``, ``<set>.ssim_abdomen`` [slices]: against NDCT, abdomen window
      (not for ndct).
    """
    pairs = _pairs(test)
    arrays = {"sets": np.array(list(cases), dtype=str), "n_slices": np.array(len(test.ldct)),
              "pair_index": np.array(pairs, dtype=np.int64).reshape(-1, 2),
              "pair_sign": _twin_signs(test, pairs),
              "present_index": np.array([i for i, lab in enumerate(test.label) if lab == 1],
                                        dtype=np.int64)}
    # the bootstrap's unit (source test slice) of every slice, pair and present slice
    unit_ids = {key: k for k, key in enumerate(dict.fromkeys(test.unit))}
    slice_unit = np.array([unit_ids[u] for u in test.unit], dtype=np.int64)
    arrays.update(slice_unit=slice_unit,
                  pair_unit=slice_unit[arrays["pair_index"][:, 0]] if pairs else
                  np.zeros(0, np.int64),
                  present_unit=slice_unit[arrays["present_index"]])
    for name, case in cases.items():
        if "contrast_kept" in case:
            twin = case["contrast_kept"]["cases"]
            arrays[f"{name}.twin_present_hu"] = twin[:, 0]
            arrays[f"{name}.twin_absent_hu"] = twin[:, 1]
        if "contrast_recovery" in case:
            arrays[f"{name}.lesion_contrast_hu"] = case["contrast_recovery"]["cases"][:, 0]
        for key in ("psnr_abdomen", "ssim_abdomen"):
            if key in case:
                arrays[f"{name}.{key}"] = case[key]["cases"]
    np.savez_compressed(path, **arrays)


# --- per-set measurements ----------------------------------------------------------------------

def _cases(images, test: Slices, present, pairs, readers: dict, cfg, with_fidelity: bool,
           reference: np.ndarray, design: Design) -> dict:
    """Per-case values of one set, computed once: the per-set metrics and the paired claims
    (`_statistic`) both use them; each carries the ``clusters`` its bootstrap resamples. A metric
    that cannot be measured here is missing. ``reference`` is `_twin_reference`."""
    cases: dict = {}
    if pairs:
        # columns: m(img_p), m(img_a), m(ndct_p), m(ndct_a), sign; one case per pair
        twins = {"cases": np.column_stack([_twin_means(images, test, pairs), reference]),
                 "clusters": design.pairs}
        cases["contrast_kept"] = cases["invented_contrast"] = twins
        found = localization.localize_pairs([images[p] for p, _ in pairs],
                                            [images[a] for _, a in pairs],
                                            [test.lesion[p] for p, _ in pairs],
                                            search_factor=LROC_SEARCH, hit_factor=LROC_HIT)
        cases["lroc_area"] = cases["fraction_localized"] = {
            "cases": np.column_stack([found["present_rating"], found["correct"],
                                      found["absent_rating"]]).astype(np.float64),
            "clusters": design.pairs, "distance_px": found["distance_px"]}
    if with_fidelity:
        per = [metrics.fidelity(im, ref) for im, ref in zip(images, test.ndct)]
        cases["fidelity"] = per
        for key in ("psnr", "ssim"):
            cases[f"{key}_abdomen"] = {"cases": np.array([p["abdomen"][key] for p in per]),
                                       "clusters": design.slices}
    if present:
        cases["contrast_recovery"] = {"cases": np.array(
            [[_signed_contrast(images[i], test.lesion[i]),
              _signed_contrast(test.ndct[i], test.lesion[i])] for i in present]),
            "clusters": design.present}
    if design.pairs.n_units >= MIN_CHO_PAIRS:
        size = _roi_size(test, cfg)
        present_rois, absent_rois = _rois(images, test, pairs, size)
        study = observers.cho_study(present_rois, absent_rois,
                                    _cho_channels(test, pairs, size, cfg.cho_channels),
                                    design.pairs, cfg.cho_splits, cfg.resamples, cfg.seed)
        cases["cho_auc"] = {"cases": np.arange(len(pairs)), "clusters": design.pairs,
                            "study": study, "roi_px": size, "channels": cfg.cho_channels}
    for key, reader in readers.items():
        if reader is not None and pairs:
            cases[key] = {"cases": _classifier_scores(reader, images, test, pairs),
                          "clusters": design.pairs}
    return cases


def _fidelity(per: list[dict], resamples, rng, clusters) -> dict:
    return {window: {m: bootstrap.mean_with_interval([p[window][m] for p in per], resamples, rng,
                                                     clusters)
                     for m in ("psnr", "ssim", "rmse")} for window in metrics.WINDOWS}


def _noise(images, tissue, resamples, rng, clusters) -> dict:
    values = np.array([np.nan if v is None else v for v in (
        metrics.noise_index_hu(im, mask=mask) for im, mask in zip(images, tissue))], np.float64)
    if not np.isfinite(values).any():
        return {"noise_index_hu": {"value": None, "ci95": [None, None]}}
    low, high = bootstrap.interval(len(values), lambda i: float(np.nanmean(values[i])),
                                   resamples, rng, clusters=clusters)
    return {"noise_index_hu": {"value": float(np.nanmean(values)), "ci95": [low, high]}}


def _signed_contrast(image, lesion) -> float:
    row, col, radius, contrast = lesion
    return math.copysign(1.0, contrast) * metrics.lesion_contrast_hu(image, row, col, radius)


def _contrast_recovery(case: dict | None, resamples, rng) -> dict:
    if case is None:
        return {"value": None, "ci95": [None, None]}
    mine, ref = case["cases"][:, 0], case["cases"][:, 1]
    value = _statistic("contrast_recovery", case)
    low, high = bootstrap.interval(len(mine), lambda i: _statistic("contrast_recovery", case, i),
                                   resamples, rng, clusters=case["clusters"])
    return {"value": value, "ci95": [low, high],
            "contrast_hu": float(mine.mean()), "ndct_contrast_hu": float(ref.mean())}


def _edge(images, test: Slices, present, resamples, rng, clusters) -> dict:
    if not present:
        return {"rise_distance_px": None}
    profiles = np.array([metrics.edge_profile(images[i], *test.lesion[i][:3],
                                              math.copysign(1.0, test.lesion[i][3]))
                         for i in present])
    spacing = float(np.mean([test.spacing_mm[i] for i in present]))

    def rise(idx):
        return metrics.rise_distance_px(_column_mean(profiles[idx]))

    value = rise(np.arange(len(present)))
    mean_profile = _column_mean(profiles)
    return {"rise_distance_px": value, "rise_distance_mm": value * spacing,
            "ci95_px": list(bootstrap.interval(len(present), rise, resamples, rng,
                                               clusters=clusters)),
            "step_hu": metrics.edge_step(mean_profile),
            "mean_profile": mean_profile.tolist(),
            "offsets_px": metrics.EDGE_OFFSETS_PX.tolist()}


def _column_mean(profiles: np.ndarray) -> np.ndarray:
    """Mean over rows ignoring NaN (offsets outside the image); NaN where a column has none."""
    valid = np.isfinite(profiles)
    count = valid.sum(axis=0)
    total = np.where(valid, profiles, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _twin_means(images, test: Slices, pairs) -> np.ndarray:
    """[pairs, 2]: mean HU inside 0.6 lesion radii of the present and of the absent twin, both at
    the present twin's lesion site (the absent twin is the same slice without the lesion)."""
    return np.array([[metrics.disk_mean_hu(images[i], *test.lesion[p][:3], inner=TWIN_INNER)
                      for i in (p, a)] for p, a in pairs], dtype=np.float64).reshape(-1, 2)


def _twin_signs(test: Slices, pairs) -> np.ndarray:
    """[pairs]: the sign of each twin pair's lesion contrast."""
    return np.array([math.copysign(1.0, test.lesion[p][3]) for p, _ in pairs], np.float64)


def _twin_reference(test: Slices, pairs) -> np.ndarray:
    """[pairs, 3]: NDCT's twin means (`_twin_means`) and the sign of each lesion's contrast."""
    return np.column_stack([_twin_means(test.ndct, test, pairs), _twin_signs(test, pairs)])


def _twin_measure(metric: str, case: dict | None, resamples, rng) -> dict:
    if case is None:
        return {"value": None, "ci95": [None, None]}
    n = len(case["cases"])
    low, high = bootstrap.interval(n, lambda i: _statistic(metric, case, i), resamples, rng,
                                   clusters=case["clusters"])
    return {"value": _statistic(metric, case), "ci95": [low, high], "pairs": n}


def _contrast_kept(case: dict | None, test: Slices, pairs, resamples, rng) -> dict:
    """`_twin_measure` of contrast kept, overall and by lesion size (diameter below or above the
    median of the test lesions) and sign, each with its own pair-unit interval."""
    result = _twin_measure("contrast_kept", case, resamples, rng)
    if case is None:
        return result
    diameter_mm = np.array([2.0 * test.lesion[p][2] * test.spacing_mm[p] for p, _ in pairs])
    sign = _twin_signs(test, pairs)
    cut = float(np.median(diameter_mm))
    groups = {f"diameter < {cut:.1f} mm": diameter_mm < cut,
              f"diameter >= {cut:.1f} mm": diameter_mm >= cut,
              "positive": sign > 0, "negative": sign < 0}
    result["by_group"] = {}
    for name, chosen in groups.items():
        idx = np.flatnonzero(chosen)
        if len(idx) < 2:
            continue
        sub = {"cases": case["cases"][idx], "clusters": case["clusters"].subset(idx)}
        result["by_group"][name] = _twin_measure("contrast_kept", sub, resamples, rng)
    return result


def _invented(case: dict | None, resamples, rng) -> dict:
    result = _twin_measure("invented_contrast", case, resamples, rng)
    value = result["value"]
    result["tolerance"] = INVENTED_TOLERANCE
    result["outside_tolerance"] = (bool(abs(value) > INVENTED_TOLERANCE)
                                   if value is not None and np.isfinite(value) else None)
    return result


def _lroc(case: dict | None, resamples, rng) -> dict | None:
    """Fraction localized and LROC area with pair-unit intervals, and the LROC curve."""
    if case is None:
        return None
    out = {}
    for metric in ("fraction_localized", "lroc_area"):
        low, high = bootstrap.interval(len(case["cases"]),
                                       lambda i: _statistic(metric, case, i), resamples, rng,
                                       clusters=case["clusters"])
        out[metric] = {"value": _statistic(metric, case), "ci95": [low, high]}
    rating, correct, absent = case["cases"].T
    fpf, tpf = localization.lroc_curve(rating, correct > 0.5, absent)
    out.update(chance_fraction=localization.chance_fraction(LROC_SEARCH, LROC_HIT),
               search_radius_r=LROC_SEARCH, hit_radius_r=LROC_HIT,
               median_distance_px=float(np.median(case["distance_px"])),
               curve={"fpf": np.round(fpf, 4).tolist(), "tpf": np.round(tpf, 4).tolist()})
    return out


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


def _cho(case: dict | None) -> dict | None:
    if case is None:
        return None
    study = case["study"]
    return {"dprime": study["dprime"], "dprime_ci95": study["dprime_ci95"],
            "auc": study["auc"], "auc_ci95": study["auc_ci95"],
            "auc_empirical": study["auc_empirical"], "roi_px": case["roi_px"],
            "channels": case["channels"], "pairs": len(case["cases"]),
            "units": case["clusters"].n_units}


def _classifier(workdir: Path):
    """The map classifier and its patch size, or None (its AUC is reported, not claimed: its maps
    trained the fine-tune, so it is not an independent reader)."""
    if not Workdir(workdir).classifier_model.is_file():
        return None
    from ldct_tf.train.classifier import load_classifier

    model = load_classifier(workdir)
    patch = json.loads(Workdir(workdir).classifier_metrics.read_text())["patch_size"]
    return model, patch


def _observer(workdir: Path):
    """The independent CNN observer and its patch size, or None when it was not trained."""
    from ldct_tf.train.observer import load_observer

    return load_observer(workdir)


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


def _auc_of_scores(case: dict | None, resamples, rng) -> dict | None:
    if case is None:
        return None
    low, high = bootstrap.interval(len(case["cases"]), lambda i: _statistic("auc", case, i),
                                   resamples, rng, clusters=case["clusters"])
    return {"value": _statistic("auc", case), "ci95": [low, high]}


def _relative(results: dict) -> None:
    """Ratios to LDCT's noise and to NDCT's rise distance, in place."""
    ldct_noise = results["ldct"]["noise"]["noise_index_hu"]["value"]
    ndct_rise = results["ndct"]["edge"].get("rise_distance_px")
    ndct_step = results["ndct"]["edge"].get("step_hu")
    for result in results.values():
        noise = result["noise"]["noise_index_hu"]["value"]
        result["noise"]["ratio_to_ldct"] = noise / ldct_noise if noise and ldct_noise else None
        rise = result["edge"].get("rise_distance_px")
        result["edge"]["ratio_to_ndct"] = rise / ndct_rise if rise and ndct_rise else None
        step = result["edge"].get("step_hu")
        result["edge"]["step_ratio_to_ndct"] = step / ndct_step if step and ndct_step else None


# --- the paired claims -------------------------------------------------------------------------

def _statistic(metric: str, case: dict, idx: np.ndarray | None = None) -> float:
    idx = np.arange(len(case["cases"])) if idx is None else idx
    values = case["cases"][idx]
    if metric in ("psnr_abdomen", "ssim_abdomen"):
        return float(values.mean())
    if metric == "contrast_recovery":
        return float(values[:, 0].sum() / values[:, 1].sum())
    if metric == "contrast_kept":
        return float(metrics.twin_contrast_kept(*values.T))
    if metric == "invented_contrast":
        return float(metrics.twin_invented_contrast(*values[:, 1:].T))
    if metric == "fraction_localized":
        return float(values[:, 1].mean())
    if metric == "lroc_area":
        return localization.lroc_area(values[:, 0], values[:, 1] > 0.5, values[:, 2])
    # an AUC of [present, absent] scores: the CNN observers
    return metrics.auc(np.concatenate([values[:, 0], values[:, 1]]),
                       np.concatenate([np.ones(len(values)), np.zeros(len(values))]))


def _verdict(metric: str, a: str, b: str, value: float, low: float, high: float) -> str:
    name, a, b = metric.replace("_", " "), label(a), label(b)
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{name}: {a} vs {b} not measurable"
    if low > 0:
        return (f"{name}: {a} higher than {b} by {value:+.4g} (95 % CI {low:+.4g} to "
                f"{high:+.4g})")
    if high < 0:
        return (f"{name}: {a} lower than {b} by {value:+.4g} (95 % CI {low:+.4g} to "
                f"{high:+.4g})")
    return (f"{name}: {a} minus {b} = {value:+.4g} is within noise (95 % CI {low:+.4g} to "
            f"{high:+.4g} includes 0)")


def _conventions(config: Config) -> dict:
    cfg = config.evaluate
    return {
        "test_lesions": "the test split's lesions come from [lesion_test] (diameter "
                        f"{list(config.lesion_test.diameter_mm)} mm, contrast "
                        f"{list(config.lesion_test.contrast_hu)} HU, "
                        f"{config.lesion_test.pairs_per_slice} twin pairs per slice), apart from "
                        "training's [lesion], so the observers are not saturated",
        "contrast_kept": "matched twins: sum over pairs of s (m(img_p) - m(img_a)) over sum of "
                         "s (m(ndct_p) - m(ndct_a)); m = mean inside 0.6 R of the lesion centre, "
                         "s = sign of the lesion contrast; 1 = all contrast kept; also by "
                         "diameter (below/above the median) and sign",
        "cho": f"SKE, {cfg.cho_channels} Laguerre-Gauss channels of width 2/3 of the mean lesion "
               "diameter, pooled covariance, template trained on one half of the test slices "
               "and read on the other (twins of a slice always on one side), mean over "
               f"{cfg.cho_splits} splits, AUC = Phi(d'/sqrt 2); the interval is the bias-"
               f"corrected percentile of the same {cfg.cho_splits}-split mean over resampled "
               "slices",
        "lroc": f"scanning observer: a zero-mean matched filter of the known lesion disk scanned "
                f"over a disk of {LROC_SEARCH:g} R around the site; a present case is localized "
                f"when the maximum lies within {LROC_HIT:g} R of the centre; LROC area = "
                "P(present rated above absent and localized); guessing localizes "
                f"{localization.chance_fraction(LROC_SEARCH, LROC_HIT):.4f}",
        "cnn_observer_independent": "a second lesion classifier (`train --phase observer`: own "
                                    "seed, LDCT and NDCT patches, clear lesions inserted) "
                                    "never used for maps, on patches centred on the (sham) "
                                    "lesion; AUC over the twins",
        "invented_contrast": "matched twins: sum over pairs of s (m(img_a) - m(ndct_a)) over the "
                             "same denominator: contrast painted at the absent twin's sham site, "
                             "relative to the true contrast; must stay within "
                             f"+-{INVENTED_TOLERANCE} (flagged otherwise)",
        "psnr_ssim_rmse": "against NDCT, both images clipped to the window first",
        "ssim": "Gaussian-weighted (sigma 1.5, 11x11), K1 0.01, K2 0.03, population covariance, "
                "5-px border excluded (skimage gaussian_weights=True, use_sample_covariance=False)",
        "noise": "global noise index: mode of the 9x9 local SD in uniform soft tissue (HU)",
        "contrast_recovery": "second figure, ring-based: sum over lesion-present slices of (mean "
                             "inside 0.6 R - mean of the 1.5-2 R ring), sign-aligned, over the "
                             "same on NDCT (the ring can straddle organ edges and blur halos)",
        "edge": "10-90 % rise distance of the mean sign-aligned radial profile across the lesion "
                "edge (normalised by the image's own step, so amplitude is reported apart: the "
                "step over NDCT's)",
        "classifier_auc": "the map classifier (whose activation maps trained the fine-tune; not "
                          "an independent reader, shown for reference only)",
        "claims": "paired differences (set a minus set b) on the same resampled units; "
                  "'resolves' = the difference detectable with 80 % power at the 5 % level "
                  "(2.8 standard errors); over the test cases of one training seed "
                  f"(train.seed = {config.train.seed}); finetune_oracle is a diagnostic, never "
                  "the method",
        "intervals": f"95 % percentile bootstrap, {cfg.resamples} resamples of test slices: a "
                     "slice's twin pairs (and their two images) are one unit, drawn together",
        "baselines": "Gaussian width and BM3D noise power spectrum chosen on val; the width "
                     "search widens beyond its grid when the best lies at an edge",
    }


def _progress(message: str) -> None:
    print(f"evaluate: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = cli.base_parser("python -m ldct_tf.evaluate",
                             "Measure noise removal and small-feature preservation on test.")
    args = parser.parse_args(argv)
    config, workdir = cli.resolve(args)
    from ldct_tf.evaluate.report import summary_table

    print(summary_table(run(config, workdir)))
    return 0


if __name__ == "__main__":
    cli.quiet_startup()
    sys.exit(run_cli(main))
