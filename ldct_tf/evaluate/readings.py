"""Each set's per-case readings and their summaries: fidelity and noise, contrast kept and invented
on the matched twins, contrast recovery, the edge, the CHO, the scanning LROC observer and the
CNN observers; every interval resamples test slices (`ldct_tf.evaluate.bootstrap.Clusters`)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ldct_tf import progress as timing
from ldct_tf.config import Config
from ldct_tf.evaluate import bootstrap, localization, metrics, observers
from ldct_tf.evaluate.claim_metrics import METRICS, statistic
from ldct_tf.evaluate.sets import Slices, progress
from ldct_tf.models.preprocessing import normalize_hu
from ldct_tf.workdir import Workdir

MIN_CHO_PAIRS = 8  # fewer matched pairs give no usable CHO (covariance of the channels)


# A denoiser may paint at most this share of the true lesion contrast where there is no lesion.
INVENTED_TOLERANCE = 0.1


TWIN_INNER = 0.6  # twin measures average inside 0.6 lesion radii: the core, clear of the edge


# the scanning observer searches a disk of 4 lesion radii around the site and localizes correctly
# within 1 radius
LROC_SEARCH, LROC_HIT = localization.DEFAULT_SEARCH_FACTOR, localization.DEFAULT_HIT_FACTOR


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
    """Every metric of every set, with intervals; and each set's per-case values (`read_cases`),
    which the paired `claims` and `write_cases` reuse."""
    cfg = config.evaluate
    present = [i for i, lab in enumerate(test.label) if lab == 1]
    pairs = twin_pairs(test)
    design = Design.of(test, pairs, present)
    with timing.phase("cnn_observers"):
        readers = {"classifier_auc": _classifier(workdir),
                   "cnn_observer_independent": _observer(workdir)}
    with timing.phase("metrics"):
        tissue = [metrics.uniform_tissue_mask(ref) for ref in test.ndct]  # per slice, every set
        reference = _twin_reference(test, pairs)  # NDCT's twin contrast: every set's denominator
    results, cases = {}, {}
    for name, images in sets.items():
        rng = np.random.default_rng(cfg.seed)
        case = read_cases(images, test, present, pairs, readers, cfg, with_fidelity=name != "ndct",
                      reference=reference, design=design)
        with timing.phase("intervals"):  # the summaries: noise and edge, every interval
            fidelity = (_fidelity(case["fidelity"], cfg.resamples, rng, design.slices)
                        if name != "ndct" else {window: None for window in metrics.WINDOWS})
            result = {
                # diagnostic first (the report's order), then fidelity
                "contrast_kept": _contrast_kept(case.get("contrast_kept"), test, pairs,
                                                cfg.resamples, rng),
                "cho": cho_summary(case.get("cho_auc")),
                "lroc": _lroc(case.get("lroc_area"), cfg.resamples, rng),
                "cnn_observer_independent": _auc_of_scores(
                    "cnn_observer_independent", case.get("cnn_observer_independent"),
                    cfg.resamples, rng),
                "invented_contrast": _invented(case.get("invented_contrast"), cfg.resamples, rng),
                **fidelity,  # grouped by window: sets.<name>.abdomen.psnr
                "noise": _noise(images, tissue, cfg.resamples, rng, design.slices),
                "contrast_recovery": _contrast_recovery(case.get("contrast_recovery"),
                                                        cfg.resamples, rng),
                "edge": _edge(images, test, present, cfg.resamples, rng, design.present),
                "classifier_auc": _auc_of_scores("classifier_auc", case.get("classifier_auc"),
                                             cfg.resamples, rng),
            }
        results[name], cases[name] = result, case
        progress(f"measured {name}")
    _relative(results)
    return results, cases


def read_cases(images, test: Slices, present, pairs, readers: dict, cfg, with_fidelity: bool,
           reference: np.ndarray, design: Design) -> dict:
    """Per-case values of one set, computed once: the per-set metrics and the paired claims
    (`statistic`) both use them; each carries the ``clusters`` its bootstrap resamples. A metric
    that cannot be measured here is missing. ``reference`` is `_twin_reference`."""
    cases: dict = {}
    with timing.phase("metrics"):
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
            for metric in METRICS:  # the table's fidelity metrics: per slice, in a window
                window, key = metric.reading[0], metric.reading[-1]
                if window in metrics.WINDOWS:
                    cases[metric.name] = {"cases": np.array([p[window][key] for p in per]),
                                          "clusters": design.slices}
        if present:
            cases["contrast_recovery"] = {"cases": np.array(
                [[_signed_contrast(images[i], test.lesion[i]),
                  _signed_contrast(test.ndct[i], test.lesion[i])] for i in present]),
                "clusters": design.present}
    with timing.phase("cho"):
        cho = cho_reading(images, test, pairs, design.pairs, cfg)
    if cho is not None:
        cases["cho_auc"] = cho
    with timing.phase("cnn_observers"):
        for key, reader in readers.items():
            if reader is not None and pairs:
                cases[key] = {"cases": _classifier_scores(reader, images, test, pairs),
                              "clusters": design.pairs}
    return cases


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
    value = statistic("contrast_recovery", case["cases"])
    low, high = bootstrap.interval(len(mine),
                                   lambda i: statistic("contrast_recovery", case["cases"], i),
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


def twin_signs(test: Slices, pairs) -> np.ndarray:
    """[pairs]: the sign of each twin pair's lesion contrast."""
    return np.array([math.copysign(1.0, test.lesion[p][3]) for p, _ in pairs], np.float64)


def _twin_reference(test: Slices, pairs) -> np.ndarray:
    """[pairs, 3]: NDCT's twin means (`_twin_means`) and the sign of each lesion's contrast."""
    return np.column_stack([_twin_means(test.ndct, test, pairs), twin_signs(test, pairs)])


def _twin_measure(metric: str, case: dict | None, resamples, rng) -> dict:
    if case is None:
        return {"value": None, "ci95": [None, None]}
    n = len(case["cases"])
    low, high = bootstrap.interval(n, lambda i: statistic(metric, case["cases"], i), resamples,
                                   rng, clusters=case["clusters"])
    return {"value": statistic(metric, case["cases"]), "ci95": [low, high], "pairs": n}


def _contrast_kept(case: dict | None, test: Slices, pairs, resamples, rng) -> dict:
    """`_twin_measure` of contrast kept, overall and by lesion size (diameter below or above the
    median of the test lesions) and sign, each with its own pair-unit interval."""
    result = _twin_measure("contrast_kept", case, resamples, rng)
    if case is None:
        return result
    diameter_mm = np.array([2.0 * test.lesion[p][2] * test.spacing_mm[p] for p, _ in pairs])
    sign = twin_signs(test, pairs)
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
                                       lambda i: statistic(metric, case["cases"], i),
                                       resamples, rng, clusters=case["clusters"])
        out[metric] = {"value": statistic(metric, case["cases"]), "ci95": [low, high]}
    rating, correct, absent = case["cases"].T
    fpf, tpf = localization.lroc_curve(rating, correct > 0.5, absent)
    out.update(chance_fraction=localization.chance_fraction(LROC_SEARCH, LROC_HIT),
               search_radius_r=LROC_SEARCH, hit_radius_r=LROC_HIT,
               median_distance_px=float(np.median(case["distance_px"])),
               curve={"fpf": np.round(fpf, 4).tolist(), "tpf": np.round(tpf, 4).tolist()})
    return out


def twin_pairs(test: Slices) -> list[tuple[int, int]]:
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


def cho_reading(images, test: Slices, pairs, clusters: bootstrap.Clusters, cfg,
                resamples: int | None = None) -> dict | None:
    """The CHO of the twin ``pairs`` (``clusters``: their units) on ``images``: sign-aligned ROIs
    of the split's ROI size, Laguerre-Gauss channels of width 2/3 of these pairs' mean diameter,
    `observers.cho_study` with ``cfg``'s splits and seed and ``resamples`` (default
    ``cfg.resamples``). None with fewer than `MIN_CHO_PAIRS` units."""
    if clusters.n_units < MIN_CHO_PAIRS:
        return None
    size = _roi_size(test, cfg)
    present_rois, absent_rois = _rois(images, test, pairs, size)
    study = observers.cho_study(present_rois, absent_rois,
                                _cho_channels(test, pairs, size, cfg.cho_channels), clusters,
                                cfg.cho_splits, resamples or cfg.resamples, cfg.seed)
    return {"cases": np.arange(len(pairs)), "clusters": clusters, "study": study,
            "roi_px": size, "channels": cfg.cho_channels}


def _cho_channels(test: Slices, pairs, size: int, n_channels: int) -> np.ndarray:
    diameter = 2.0 * float(np.mean([test.lesion[p][2] for p, _ in pairs]))
    return observers.laguerre_gauss_channels(size, 2.0 / 3.0 * diameter, n_channels)


def cho_summary(case: dict | None) -> dict | None:
    """What metrics.json shows of a `cho_reading`: d' and AUC with intervals, and the setup."""
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


def _auc_of_scores(metric: str, case: dict | None, resamples, rng) -> dict | None:
    if case is None:
        return None
    low, high = bootstrap.interval(len(case["cases"]),
                                   lambda i: statistic(metric, case["cases"], i),
                                   resamples, rng, clusters=case["clusters"])
    return {"value": statistic(metric, case["cases"]), "ci95": [low, high]}
