"""Interval widths of the observer study before and after issue 13's resampling, on one prepared
work directory's test split (LDCT and NDCT; no network needed). Prints one JSON line.

- ``psnr_ldct``: abdomen PSNR of LDCT; before: slices resampled as independent; after: test slices
  with all their twins (`ldct_tf.evaluate.bootstrap.Clusters`).
- ``contrast_kept_ldct``: before: pairs resampled as independent; after: test slices.
- ``cho_auc_<set>``: before: cases with replacement, halves by position (copies on both sides),
  one split per resample; after: `ldct_tf.evaluate.observers.cho_study` (halves of distinct
  slices, the same split-averaged estimator as the point value).
- ``cho_auc_ndct_minus_ldct``: the paired difference and its interval (after only).

    python benchmarks/interval_widths.py --config pipelines/configs/benchmark.toml \\
        --workdir runs/benchmark
    python benchmarks/interval_widths.py --config W/config.toml --workdir W --resamples 20
        # smoke run on a tiny prepared work directory W (its test split needs >= 4 twin pairs)
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ldct_tf import records
from ldct_tf.config import load_config
from ldct_tf.evaluate import bootstrap, metrics, observers, readings, sets
from ldct_tf.evaluate.claim_metrics import statistic


def _old_cho(present, absent, channels, splits, resamples, seed):
    rng = np.random.default_rng(seed)
    point = observers.cho_repeated(present, absent, channels, splits, rng)
    values = observers.position_split_replicates(present, absent, channels, resamples, rng, "auc")
    return point["auc"], bootstrap.percentile_interval(values)


def _entry(value, before, after):
    return {"value": round(float(value), 4), "before": [round(v, 4) for v in before],
            "after": [round(v, 4) for v in after],
            "width_before": round(before[1] - before[0], 4),
            "width_after": round(after[1] - after[0], 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    cfg = config.evaluate
    test = sets.load_slices(records.pattern(f"{args.workdir}/records", "test"), config)
    pairs = readings.twin_pairs(test)
    present = [i for i, lab in enumerate(test.label) if lab == 1]
    design = readings.Design.of(test, pairs, present)
    out = {"test_slices": len(test.ldct), "pairs": len(pairs), "units": design.slices.n_units}

    psnr = np.array([metrics.fidelity(im, ref)["abdomen"]["psnr"]
                     for im, ref in zip(test.ldct, test.ndct)])
    before = bootstrap.mean_with_interval(psnr, args.resamples, np.random.default_rng(0))
    after = bootstrap.mean_with_interval(psnr, args.resamples, np.random.default_rng(0),
                                         design.slices)
    out["psnr_ldct"] = _entry(before["value"], before["ci95"], after["ci95"])

    twins = np.column_stack([readings._twin_means(test.ldct, test, pairs),
                             readings._twin_reference(test, pairs)])

    def kept(i):
        return statistic("contrast_kept", twins, i)

    out["contrast_kept_ldct"] = _entry(
        kept(None), bootstrap.interval(len(pairs), kept, args.resamples, np.random.default_rng(0)),
        bootstrap.interval(len(pairs), kept, args.resamples, np.random.default_rng(0),
                           clusters=design.pairs))

    size = readings._roi_size(test, cfg)
    channels = readings._cho_channels(test, pairs, size, cfg.cho_channels)
    studies = {}
    for name, images in (("ldct", test.ldct), ("ndct", test.ndct)):
        rois = readings._rois(images, test, pairs, size)
        old_value, old_interval = _old_cho(*rois, channels, cfg.cho_splits, args.resamples,
                                           cfg.seed)
        studies[name] = observers.cho_study(*rois, channels, design.pairs, cfg.cho_splits,
                                            args.resamples, cfg.seed)
        out[f"cho_auc_{name}"] = _entry(studies[name]["auc"], old_interval,
                                        studies[name]["auc_ci95"])
        out[f"cho_auc_{name}"]["value_before"] = round(old_value, 4)
        out[f"cho_dprime_{name}"] = round(studies[name]["dprime"], 3)
    diff = observers.paired_difference(studies["ndct"], studies["ldct"])
    out["cho_auc_ndct_minus_ldct"] = {"value": round(diff["value"], 4),
                                      "ci95": [round(v, 4) for v in diff["ci95"]]}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
