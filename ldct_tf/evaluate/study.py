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

Phases timed (`ldct_tf.progress.phase`, shown by the local runner): "load" (the test and val
slices), "baselines" (Gaussian and BM3D, tuned), "denoise" (every network loaded and run),
"metrics" (twin contrast, localization, fidelity, contrast recovery), "cho", "cnn_observers" (the
map classifier and the observer loaded and read), "intervals" (per-set summaries and bootstrap
intervals, the paired claims), "contrast_detail" and "report" (metrics, cases, report, figures).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from ldct_tf import atomic, cli, records
from ldct_tf import progress as timing
from ldct_tf.config import Config
from ldct_tf.errors import LdctError, run_cli
from ldct_tf.evaluate import contrast_detail, localization, metrics
from ldct_tf.evaluate.claim_metrics import METRICS, SET
from ldct_tf.evaluate.claims import claims, headline
from ldct_tf.evaluate.display import jsonable
from ldct_tf.evaluate.readings import (
    INVENTED_TOLERANCE,
    LROC_HIT,
    LROC_SEARCH,
    MIN_CHO_PAIRS,
    evaluate_sets,
    twin_pairs,
    twin_signs,
)
from ldct_tf.evaluate.sets import Slices, load_slices, make_sets, progress
from ldct_tf.workdir import METRICS_FILE, Workdir


def run(config: Config, workdir: Path) -> dict:
    workdir = Path(workdir)
    out = Workdir(workdir).eval
    source = Workdir(workdir).records
    sizes = records.split_sizes(source)
    if not sizes["test"]:
        raise LdctError(f"the test split of {source} is empty; prepare more series")
    cli.save_config(config, workdir, out)
    started = time.time()
    with timing.phase("load"):
        test = load_slices(records.pattern(source, "test"), config)
        val = load_slices(records.pattern(source, "val"), config) if sizes["val"] else None
    progress(f"loaded {len(test.ldct)} test slices ({sum(test.label)} with a lesion, "
              f"{len(twin_pairs(test))} matched pairs)")
    sets, skipped, settings = make_sets(config, workdir, test, val)
    results, cases = evaluate_sets(config, workdir, test, sets)
    binned = time.time()
    with timing.phase("contrast_detail"):
        detail = contrast_detail.measure(config, test, sets, cases)
    progress(f"contrast-detail bins measured in {time.time() - binned:.0f} s")
    with timing.phase("intervals"):
        all_claims = claims(config, cases)
    report = {
        "window": {name: {"hu": list(bounds), "data_range": bounds[1] - bounds[0]}
                   for name, bounds in metrics.WINDOWS.items()},
        "test_slices": len(test.ldct), "matched_pairs": len(twin_pairs(test)),
        "units": len(set(test.unit)),
        "train_seed": config.train.seed,
        "sets": results, "contrast_detail": detail, "skipped": skipped, "baselines": settings,
        "claim": headline(all_claims), "claims": all_claims,
        "conventions": _conventions(config),
        "seconds": round(time.time() - started, 1)}
    with timing.phase("report"):
        out.mkdir(parents=True, exist_ok=True)
        (out / METRICS_FILE).unlink(missing_ok=True)  # back, last, once the rest is written
        write_cases(Workdir(workdir).cases, test, cases)
        from ldct_tf.evaluate import report as report_writer

        paths = report_writer.write(report, test, sets, workdir, out)
        # last: metrics.json says the evaluation is complete (the runner, the seed study)
        atomic.write_json(out / METRICS_FILE, jsonable(report))
    print(f"evaluate: report {paths['markdown']} (and {paths['html'].name}); metrics "
          f"{out / 'metrics.json'}")
    return report


def write_cases(path: Path, test: Slices, cases: dict) -> None:
    """The per-case values behind the twin measures, contrast recovery and abdomen PSNR/SSIM, so
    a seed study can bootstrap over seeds and cases (`ldct_tf.evaluate.seed_study`); the columns of
    each set are those of `claim_metrics.METRICS` (`Metric.stored`). Keys of the npz:

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
    pairs = twin_pairs(test)
    arrays = {"sets": np.array(list(cases), dtype=str), "n_slices": np.array(len(test.ldct)),
              "pair_index": np.array(pairs, dtype=np.int64).reshape(-1, 2),
              "pair_sign": twin_signs(test, pairs),
              "present_index": np.array([i for i, lab in enumerate(test.label) if lab == 1],
                                        dtype=np.int64)}
    # the bootstrap's unit (source test slice) of every slice, pair and present slice
    unit_ids = {key: k for k, key in enumerate(dict.fromkeys(test.unit))}
    slice_unit = np.array([unit_ids[u] for u in test.unit], dtype=np.int64)
    arrays.update(slice_unit=slice_unit,
                  pair_unit=slice_unit[arrays["pair_index"][:, 0]] if pairs else
                  np.zeros(0, np.int64),
                  present_unit=slice_unit[arrays["present_index"]])
    for name, case in cases.items():  # each claim metric's own columns (`Metric.stored`)
        for metric in METRICS:
            rows = case.get(metric.name, {}).get("cases") if metric.stored else None
            if rows is None:
                continue
            rows = rows.reshape(len(rows), -1)
            for k, column in enumerate(metric.stored):
                if column.startswith(SET):
                    arrays[column.format(set=name)] = rows[:, k]
    with atomic.replacing(path) as temp:
        np.savez_compressed(temp, **arrays)


# --- per-set measurements ----------------------------------------------------------------------


# --- the paired claims -------------------------------------------------------------------------


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
        "contrast_detail": "the twin pairs in equal-width bins of lesion diameter and |contrast| "
                           "over the [lesion_test] ranges (an edge value goes to the upper bin); "
                           "per set and bin the CHO as above, with channels of width 2/3 of the "
                           "bin's mean diameter and at most "
                           f"{contrast_detail.BIN_RESAMPLES} resamples (none with fewer than "
                           f"{MIN_CHO_PAIRS} slices in the bin), and the fraction localized",
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


def main(argv: list[str] | None = None) -> int:
    parser = cli.base_parser("python -m ldct_tf.evaluate",
                             "Measure noise removal and small-feature preservation on test.")
    args = parser.parse_args(argv)
    config, workdir = cli.resolve(args, create=False)  # reads a trained run
    from ldct_tf.evaluate.report import summary_table

    with cli.claim(workdir, parser.prog, argv):
        metrics = run(config, workdir)
    print(summary_table(metrics))
    return 0


if __name__ == "__main__":
    cli.quiet_startup()
    sys.exit(run_cli(main))
