"""`python -m ldct_tf.seed_study WORKDIR [WORKDIR ...] --out DIR`: is the method's effect larger
than the spread between training seeds?

A small CNN denoiser trained twice from different seeds often differs by as much as the effect
under test, so one run's intervals (over test cases) do not settle a claim. Given the work
directories of N training seeds, each evaluated (``eval/metrics.json`` and ``eval/cases.npz`` of
`ldct_tf.evaluate.study`) on the same test cases, this writes to ``DIR``:

- ``summary.json`` and ``summary.md``: per network set, the mean and SD over seeds of abdomen
  PSNR/SSIM, the contrast kept on the matched twins, the contrast invented at the sham site,
  contrast recovery and the CHO AUC; per comparison of `report.COMPARISONS` (finetune minus
  finetune_control: the attribution claim; finetune minus pretrain; the oracle minus the control,
  a diagnostic; finetune_pairs minus pretrain), the mean over seeds of the per-seed difference, its
  SD over seeds and a 95 % two-level bootstrap interval with a plain verdict;
- ``figures/tradeoff.png``: abdomen PSNR against contrast kept, one point per network and seed.

The two-level bootstrap resamples seeds with replacement and, within a replicate, the test cases
(test slices with all their twin pairs, the unit of `ldct_tf.evaluate.bootstrap`) with replacement, the
same draws for every seed and both sets: the test cases are shared, so case-level noise is paired
as in one run. The CHO, the LROC and the independent CNN observer are read from each seed's
metrics.json: their intervals resample seeds only.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ldct_tf.evaluate import metrics
from ldct_tf.errors import LdctError, run_cli
from ldct_tf.evaluate.report import COMPARISONS, ORDER, jsonable, label
from ldct_tf.workdir import FIGURES_DIR, SUMMARY_FILE, SUMMARY_MD_FILE, Workdir

SET_METRICS = ("contrast_kept", "cho_auc", "lroc_area", "fraction_localized",
               "cnn_observer_independent", "invented_contrast", "contrast_recovery",
               "psnr_abdomen", "ssim_abdomen")
# the case each metric resamples (cases.npz); metrics without one resample seeds only
UNITS = {"psnr_abdomen": "slices", "ssim_abdomen": "slices", "contrast_kept": "pairs",
         "invented_contrast": "pairs", "contrast_recovery": "present"}
REFERENCES = {"ldct": ("black", "x"), "gaussian": ("0.5", "^"), "bm3d": ("0.3", "s")}
NETWORKS = tuple(n for n in ORDER if n not in ("ldct", "ndct", "gaussian", "bm3d"))
SAME_CASES_HU = 1e-3  # NDCT twin means of two seeds' test splits must agree to this


@dataclass
class Seed:
    """One evaluated training seed: its metrics.json and cases.npz."""

    workdir: Path
    train_seed: int | None
    report: dict
    cases: dict

    def sets(self) -> list[str]:
        return [str(n) for n in self.cases["sets"]]


def load_seed(workdir: Path) -> Seed:
    """A work directory's evaluation; one-line errors naming the command when it is missing."""
    workdir = Path(workdir)
    paths = Workdir(workdir)
    command = (f"python -m ldct_tf.evaluate --workdir {workdir} (add --set "
               "evaluate.baselines=false for an extra seed)")
    if not paths.metrics.is_file():
        raise LdctError(f"{workdir} has no {paths.metrics.relative_to(workdir)}: run {command} "
                        "first")
    if not paths.cases.is_file():
        raise LdctError(f"{workdir} has no {paths.cases.relative_to(workdir)} (evaluated by an "
                        f"older version): run {command} again")
    with np.load(paths.cases) as npz:
        cases = {key: npz[key] for key in npz.files}
    report = json.loads(paths.metrics.read_text())
    return Seed(workdir, report.get("train_seed"), report, cases)


def check_shared(seeds: list[Seed]) -> None:
    """The seeds must share their test cases: same slices, same twin pairs, same NDCT."""
    first = seeds[0]
    for other in seeds[1:]:
        for key in ("n_slices", "pair_index", "present_index"):
            if not np.array_equal(first.cases[key], other.cases[key]):
                raise LdctError(f"{other.workdir} and {first.workdir} were evaluated on different "
                                f"test cases ({key} differs); evaluate every seed on the same "
                                "records")
        for key in ("ndct.twin_present_hu", "ndct.twin_absent_hu"):
            if key in first.cases and (key not in other.cases or not np.allclose(
                    first.cases[key], other.cases[key], atol=SAME_CASES_HU)):
                raise LdctError(f"{other.workdir} and {first.workdir} have different NDCT test "
                                "images; evaluate every seed on the same records")
    known = [s.train_seed for s in seeds if s.train_seed is not None]
    if len(known) != len(set(known)):
        raise LdctError(f"two work directories share a training seed (train.seed {known}); a "
                        "seed study needs one directory per seed")


# --- per-seed values ----------------------------------------------------------------------------

def reported(result: dict, metric: str) -> float | None:
    """One set's value of ``metric`` as its metrics.json reports it (None where not measured)."""
    if metric in ("psnr_abdomen", "ssim_abdomen"):
        abdomen = result.get("abdomen")
        return abdomen[metric.split("_")[0]]["value"] if abdomen else None
    if metric == "cho_auc":
        return (result.get("cho") or {}).get("auc")
    if metric in ("lroc_area", "fraction_localized"):
        return ((result.get("lroc") or {}).get(metric) or {}).get("value")
    return (result.get(metric) or {}).get("value")


def statistic(metric: str, cases: dict, name: str, weights: np.ndarray | None = None):
    """``metric`` of set ``name`` from cases.npz; with ``weights`` (case counts, one row per
    bootstrap replicate) one value per replicate. The formulas of `ldct_tf.evaluate.study`."""
    if metric in ("psnr_abdomen", "ssim_abdomen"):
        values = cases[f"{name}.{metric}"]
        return values.mean() if weights is None else weights @ values / len(values)
    if metric in ("contrast_kept", "invented_contrast"):
        twin = (cases[f"{name}.twin_present_hu"], cases[f"{name}.twin_absent_hu"],
                cases["ndct.twin_present_hu"], cases["ndct.twin_absent_hu"], cases["pair_sign"])
        if metric == "contrast_kept":
            return metrics.twin_contrast_kept(*twin, weights=weights)
        return metrics.twin_invented_contrast(*twin[1:], weights=weights)
    mine, ndct = cases[f"{name}.lesion_contrast_hu"], cases["ndct.lesion_contrast_hu"]
    if weights is None:
        return mine.sum() / ndct.sum()
    return (weights @ mine) / (weights @ ndct)


def _has(seed: Seed, name: str, metric: str) -> bool:
    if metric in UNITS:
        key = {"slices": metric, "pairs": "twin_present_hu",
               "present": "lesion_contrast_hu"}[UNITS[metric]]
        return f"{name}.{key}" in seed.cases and (UNITS[metric] == "slices"
                                                  or f"ndct.{key}" in seed.cases)
    return reported(seed.report["sets"].get(name, {}), metric) is not None


def _spread(values: list[float]) -> dict:
    values = [float(v) for v in values]
    return {"mean": float(np.mean(values)) if values else None,
            "sd": float(np.std(values, ddof=1)) if len(values) > 1 else None,
            "n_seeds": len(values), "per_seed": values}


def per_set(seeds: list[Seed]) -> dict:
    """Mean and SD over seeds of every `SET_METRICS`, from each seed's metrics.json."""
    out = {}
    for name in ORDER:
        rows = [s.report["sets"][name] for s in seeds if name in s.report["sets"]]
        if rows:
            out[name] = {m: _spread([v for v in (reported(r, m) for r in rows) if v is not None])
                         for m in SET_METRICS}
    return out


# --- the comparisons ----------------------------------------------------------------------------

def case_weights(seeds: list[Seed], resamples: int, rng: np.random.Generator) -> dict:
    """Bootstrap case counts [resamples, n] per kind of case, drawn once: every seed, set and
    comparison resamples the same test cases (they are shared). The draws are of test *slices*
    (a slice with all its twin pairs: the unit of `ldct_tf.evaluate.bootstrap`); a case counts as often as
    its slice was drawn. cases.npz from before units were written resamples cases."""
    cases = seeds[0].cases
    if "slice_unit" in cases:
        units = {"slices": cases["slice_unit"], "pairs": cases["pair_unit"],
                 "present": cases["present_unit"]}
    else:
        units = {"slices": np.arange(int(cases["n_slices"])),
                 "pairs": np.arange(len(cases["pair_index"])),
                 "present": np.arange(len(cases["present_index"]))}
    n_units = int(max((u.max() + 1 for u in units.values() if len(u)), default=0))
    counts = rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=resamples) \
        if n_units else None
    return {kind: counts[:, unit] if counts is not None and len(unit) else None
            for kind, unit in units.items()}


def compare(seeds: list[Seed], a: str, b: str, role: str, weights: dict, resamples: int,
            rng: np.random.Generator) -> dict:
    """Set ``a`` minus set ``b`` over the seeds that have both: mean and SD over seeds of the
    per-seed difference, and a two-level bootstrap interval."""
    out = {"a": a, "b": b, "name": f"{label(a)} vs {label(b)}", "role": role, "differences": {}}
    for metric in SET_METRICS:
        both = [s for s in seeds if _has(s, a, metric) and _has(s, b, metric)]
        if not both:
            continue
        unit = UNITS.get(metric)
        if unit:
            per_seed = [float(statistic(metric, s.cases, a) - statistic(metric, s.cases, b))
                        for s in both]
            replicates = _replicates(metric, both, a, b, weights[unit])
            levels = f"seeds and {unit}"
        else:  # read from metrics.json: resample seeds only
            per_seed = [reported(s.report["sets"][a], metric) - reported(s.report["sets"][b],
                                                                          metric) for s in both]
            replicates = np.tile(per_seed, (resamples, 1))
            levels = "seeds only"
        entry = _spread(per_seed)
        low, high = _two_level(replicates, resamples, rng)
        entry.update(ci95=[low, high], levels=levels, verdict=verdict(low, high))
        out["differences"][metric] = entry
    out["n_seeds"] = max((d["n_seeds"] for d in out["differences"].values()), default=0)
    return out


def _replicates(metric: str, seeds: list[Seed], a: str, b: str, weights: np.ndarray | None
                ) -> np.ndarray | None:
    """[resamples, seeds]: a minus b on each resample of the cases, for every seed."""
    if weights is None:
        return None
    # a resample may miss every lesion of one sign: a ratio's denominator can then be 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.column_stack([statistic(metric, s.cases, a, weights)
                                - statistic(metric, s.cases, b, weights) for s in seeds])


def _two_level(replicates: np.ndarray | None, resamples: int, rng: np.random.Generator
               ) -> tuple[float, float]:
    """95 % percentile interval of the mean over resampled seeds of ``replicates`` [resamples,
    seeds] (each row: the per-seed differences on one resample of the cases)."""
    if replicates is None:
        return float("nan"), float("nan")
    k = replicates.shape[1]
    seed_counts = rng.multinomial(k, np.full(k, 1.0 / k), size=resamples)
    with np.errstate(invalid="ignore"):  # inf - inf where a resample had a zero denominator
        values = (seed_counts * replicates).sum(axis=1) / k
    values = values[np.isfinite(values)]
    if not values.size:
        return float("nan"), float("nan")
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def verdict(low: float, high: float) -> str:
    """"above 0", "below 0" or "within noise" from a 95 % interval."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "not measurable"
    return "above 0" if low > 0 else "below 0" if high < 0 else "within noise"


# --- outputs ------------------------------------------------------------------------------------

def aggregate(workdirs: list[Path], out: Path, resamples: int = 1000, seed: int = 0) -> dict:
    """Summarise the evaluations of N training seeds (see the module docstring); writes
    ``out/summary.json``, ``out/summary.md`` and ``out/figures/tradeoff.png``."""
    if resamples < 1:
        raise LdctError(f"resamples must be >= 1, got {resamples}")
    workdirs = [Path(w) for w in workdirs]
    if not workdirs:
        raise LdctError("give the work directory of at least one evaluated seed")
    if len({w.resolve() for w in workdirs}) != len(workdirs):
        raise LdctError(f"a work directory is listed twice: {[str(w) for w in workdirs]}")
    seeds = [load_seed(w) for w in workdirs]
    check_shared(seeds)
    rng = np.random.default_rng(seed)
    weights = case_weights(seeds, resamples, rng)
    comparisons = [compare(seeds, a, b, role, weights, resamples, rng)
                   for a, b, role in COMPARISONS
                   if (a in NETWORKS or b in NETWORKS)  # the others do not depend on the seed
                   and any(a in s.sets() and b in s.sets() for s in seeds)]
    summary = {
        "workdirs": [str(w) for w in workdirs],
        "train_seeds": [s.train_seed for s in seeds], "n_seeds": len(seeds),
        "test_slices": int(seeds[0].cases["n_slices"]),
        "matched_pairs": len(seeds[0].cases["pair_index"]),
        "resamples": resamples, "seed": seed,
        "sets": per_set(seeds), "claims": comparisons,
        "notes": _notes(len(seeds)),
    }
    out = Path(out)
    (out / FIGURES_DIR).mkdir(parents=True, exist_ok=True)
    summary["figures"] = {"tradeoff": str(tradeoff_figure(seeds, out / FIGURES_DIR /
                                                          "tradeoff.png").relative_to(out))}
    (out / SUMMARY_FILE).write_text(json.dumps(jsonable(summary), indent=2) + "\n")
    (out / SUMMARY_MD_FILE).write_text(markdown(summary))
    return summary


def _notes(n_seeds: int) -> dict:
    return {
        "bootstrap": "two-level percentile bootstrap: seeds with replacement, then the shared "
                     "test slices, each with all its twin pairs (the cases of twin measures, "
                     "PSNR/SSIM and contrast recovery follow their slice), with the same draws "
                     "for every seed and both sets; the CHO AUC, LROC and the independent CNN "
                     "observer resample seeds only",
        "seed_level": f"{n_seeds} seed(s): a resample of {n_seeds} seeds takes few distinct "
                      "values, so the seed level of the bootstrap is coarse; the SD over seeds is "
                      "the plainer measure of training spread"
                      + (" (one seed: no seed spread at all)" if n_seeds == 1 else ""),
        "oracle": "finetune_oracle weights the true lesion disk: a diagnostic, never the method",
    }


def tradeoff_figure(seeds: list[Seed], path: Path) -> Path:
    """Abdomen PSNR (x) against contrast kept on the twins (y): one point per network and seed
    with that seed's 95 % intervals (over test cases); LDCT and the baselines as references."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.6))
    colours = plt.get_cmap("tab10")
    drawn: set[str] = set()
    for seed in seeds:
        for name in [n for n in ORDER if n in seed.report["sets"]]:  # legend in table order
            point = _tradeoff_point(seed.report["sets"][name])
            if point is None or name == "ndct":
                continue
            (x, (x_low, x_high)), (y, (y_low, y_high)) = point
            if name in REFERENCES:
                colour, marker = REFERENCES[name]
            elif name in NETWORKS:
                colour, marker = colours(NETWORKS.index(name)), "o"
            else:
                continue
            ax.errorbar(x, y, xerr=[[x - x_low], [x_high - x]], yerr=[[y - y_low], [y_high - y]],
                        fmt=marker, color=colour, ms=5, capsize=2, lw=0.8,
                        label=None if name in drawn else label(name))
            drawn.add(name)
    ax.axhline(1.0, color="0.6", ls="--", lw=0.8)  # NDCT keeps all of its own contrast
    ax.set_xlabel("PSNR dB, abdomen window [-160, 240] HU (data range 400)")
    ax.set_ylabel("contrast kept (matched twins; NDCT = 1)")
    ax.set_title(f"Noise removal against lesion contrast, {len(seeds)} training seed(s)\n"
                 "(bars: each seed's 95 % interval over test cases)", fontsize=9)
    if drawn:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _tradeoff_point(result: dict):
    abdomen, kept = result.get("abdomen"), result.get("contrast_kept") or {}
    if not abdomen or abdomen["psnr"]["value"] is None or kept.get("value") is None:
        return None

    def with_interval(entry):
        value = entry["value"]
        low, high = entry["ci95"]
        return value, (value if low is None else low, value if high is None else high)

    return with_interval(abdomen["psnr"]), with_interval(kept)


def _pm(entry: dict | None, digits: int) -> str:
    if not entry or entry["mean"] is None:
        return "-"
    sd = "" if entry["sd"] is None else f" ± {entry['sd']:.{digits}f}"
    return f"{entry['mean']:.{digits}f}{sd}"


DIGITS = {"psnr_abdomen": 2, "ssim_abdomen": 4, "contrast_kept": 3, "invented_contrast": 3,
          "contrast_recovery": 3, "cho_auc": 3, "lroc_area": 3, "fraction_localized": 3,
          "cnn_observer_independent": 3}


def markdown(summary: dict) -> str:
    """``summary.md``: per-set means ± SD over seeds, then every comparison with its verdict."""
    seeds = ", ".join(str(s) for s in summary["train_seeds"])
    lines = ["# Seed study", "",
             f"{summary['n_seeds']} training seed(s) (train.seed: {seeds}), the same test split: "
             f"{summary['test_slices']} slices, {summary['matched_pairs']} matched twin pairs. "
             "Mean ± SD over seeds; PSNR/SSIM in the abdomen window [-160, 240] HU (data range "
             "400).", "",
             "| set | " + " | ".join(m.replace("_", " ") for m in SET_METRICS) + " | seeds |",
             "|" + "---|" * (len(SET_METRICS) + 2)]
    for name, values in summary["sets"].items():
        n = max(v["n_seeds"] for v in values.values())
        lines.append(f"| {label(name)} | "
                     + " | ".join(_pm(values.get(m), DIGITS[m]) for m in SET_METRICS)
                     + f" | {n} |")
    lines += ["", "## Paired comparisons (a minus b)", "",
              "| comparison | metric | mean over seeds | SD over seeds | 95 % interval | "
              "resampled | verdict |", "|---|---|---|---|---|---|---|"]
    for item in summary["claims"]:
        for metric, d in item["differences"].items():
            digits = DIGITS[metric] + 1
            low, high = d["ci95"]
            interval = ("-" if not (np.isfinite(low) and np.isfinite(high))
                        else f"[{low:+.{digits}f}, {high:+.{digits}f}]")
            sd = "-" if d["sd"] is None else f"{d['sd']:.{digits}f}"
            lines.append(f"| {item['name']} | {metric.replace('_', ' ')} | "
                         f"{d['mean']:+.{digits}f} | {sd} | {interval} | {d['levels']} | "
                         f"{d['verdict']} |")
    lines += ["", "Roles:", ""]
    lines += [f"- **{item['name']}**: {item['role']}" for item in summary["claims"]]
    lines += ["", "Notes:", ""] + [f"- {text}" for text in summary["notes"].values()]
    lines += ["", f"![tradeoff]({summary['figures']['tradeoff']})", "",
              "Abdomen PSNR against contrast kept on the matched twins, one point per network and "
              "seed (bars: that seed's 95 % interval over test cases).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ldct_tf.seed_study",
        description="Mean and spread over training seeds, and the paired comparisons with a "
                    "two-level bootstrap, from evaluated work directories (one per seed).")
    parser.add_argument("workdirs", nargs="+", metavar="WORKDIR",
                        help="an evaluated work directory per training seed")
    parser.add_argument("--out", help="output folder (default: <first WORKDIR>/seed_study)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else Path(args.workdirs[0]) / "seed_study"
    summary = aggregate([Path(w) for w in args.workdirs], out, args.resamples, args.seed)
    for item in summary["claims"]:
        print(f"{item['name']}: " + "; ".join(f"{m.replace('_', ' ')} {d['verdict']}"
                                               for m, d in item["differences"].items()))
    print(f"seed study: {out / 'summary.md'} (and summary.json, figures/tradeoff.png)")
    return 0


if __name__ == "__main__":
    # no TensorFlow start-up here (cli.quiet_startup): the study reads JSON and NumPy files only
    sys.exit(run_cli(main))
