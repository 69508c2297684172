"""`python -m ldct_tf.seed_study WORKDIR [WORKDIR ...] --out DIR`: is the method's effect larger
than the spread between training seeds?

A small CNN denoiser trained twice from different seeds often differs by as much as the effect
under test, so one run's intervals (over test cases) do not settle a claim. Given the work
directories of N training seeds, each evaluated (``eval/metrics.json`` and ``eval/cases.npz`` of
`ldct_tf.evaluate.study`) on the same test cases, this writes to ``DIR``:

- ``summary.json`` and ``summary.md`` (`seed_study_report`): per network set, the mean and SD
  over seeds of every claim metric of `claim_metrics.METRICS`; per comparison of
  `claim_metrics.COMPARISONS` (finetune minus finetune_control: the attribution claim; finetune
  minus pretrain; the oracle minus the control, a diagnostic; finetune_pairs minus pretrain), the
  mean over seeds of the per-seed difference, its SD over seeds and a 95 % two-level bootstrap
  interval with a plain verdict (`claim_metrics.verdict`);
- ``figures/tradeoff.png``: abdomen PSNR against contrast kept, one point per network and seed.

The two-level bootstrap resamples seeds with replacement and, within a replicate, the test cases
(test slices with all their twin pairs, the unit of `ldct_tf.evaluate.bootstrap`) with
replacement, the same draws for every seed and both sets: the test cases are shared, so
case-level noise is paired as in one run. A metric whose cases ``cases.npz`` keeps
(`Metric.stored`) is recomputed on every draw with the formula the single-seed claims use
(`claim_metrics.statistic`); the others (the CHO, the LROC and the independent CNN observer) are
read from each seed's metrics.json, and their intervals resample seeds only.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ldct_tf import atomic, cli
from ldct_tf.errors import LdctError, run_cli
from ldct_tf.evaluate import bootstrap
from ldct_tf.evaluate.claim_metrics import BY_NAME, CLAIM_METRICS, COMPARISONS, statistic, verdict
from ldct_tf.evaluate.display import NETWORKS, ORDER, jsonable, label
from ldct_tf.evaluate.seed_study_report import markdown, tradeoff_figure
from ldct_tf.workdir import FIGURES_DIR, SUMMARY_FILE, SUMMARY_MD_FILE, Workdir

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

def _has(seed: Seed, name: str, metric: str) -> bool:
    """Whether ``seed`` measured ``metric`` on set ``name``: its stored cases where the metric
    has them, else its value in metrics.json."""
    m = BY_NAME[metric]
    if m.stored:
        return m.rows(seed.cases, name) is not None
    return m.value(seed.report["sets"].get(name, {})) is not None


def _spread(values: list[float]) -> dict:
    values = [float(v) for v in values]
    return {"mean": float(np.mean(values)) if values else None,
            "sd": float(np.std(values, ddof=1)) if len(values) > 1 else None,
            "n_seeds": len(values), "per_seed": values}


def per_set(seeds: list[Seed]) -> dict:
    """Mean and SD over seeds of every claim metric, from each seed's metrics.json."""
    out = {}
    for name in ORDER:
        rows = [s.report["sets"][name] for s in seeds if name in s.report["sets"]]
        if rows:
            out[name] = {m: _spread([v for v in (BY_NAME[m].value(r) for r in rows)
                                     if v is not None]) for m in CLAIM_METRICS}
    return out


# --- the comparisons ----------------------------------------------------------------------------

def case_weights(seeds: list[Seed], resamples: int, rng: np.random.Generator) -> dict:
    """Bootstrap case counts [resamples, n] per kind of case, drawn once: every seed, set and
    comparison resamples the same test cases (they are shared). The draws are of test *slices*
    (a slice with all its twin pairs: the unit of `ldct_tf.evaluate.bootstrap`); a case counts as
    often as its slice was drawn. cases.npz from before units were written resamples cases."""
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
    for metric in CLAIM_METRICS:
        m = BY_NAME[metric]
        both = [s for s in seeds if _has(s, a, metric) and _has(s, b, metric)]
        if not both:
            continue
        if m.stored:
            rows = [(m.rows(s.cases, a), m.rows(s.cases, b)) for s in both]
            per_seed = [float(statistic(metric, mine) - statistic(metric, theirs))
                        for mine, theirs in rows]
            replicates = _replicates(metric, rows, weights[m.unit])
            levels = f"seeds and {m.unit}"
        else:  # read from metrics.json: resample seeds only
            per_seed = [m.value(s.report["sets"][a]) - m.value(s.report["sets"][b])
                        for s in both]
            replicates = np.tile(per_seed, (resamples, 1))
            levels = "seeds only"
        entry = _spread(per_seed)
        low, high = _two_level(replicates, resamples, rng)
        entry.update(ci95=[low, high], levels=levels, verdict=verdict(low, high))
        out["differences"][metric] = entry
    out["n_seeds"] = max((d["n_seeds"] for d in out["differences"].values()), default=0)
    return out


def _replicates(metric: str, rows: list[tuple[np.ndarray, np.ndarray]],
                counts: np.ndarray | None) -> np.ndarray | None:
    """[resamples, seeds]: a minus b on each resample of the cases (``counts`` [resamples,
    cases]: how often each case is drawn), for every seed (``rows``: its cases of a and b)."""
    if counts is None:
        return None
    cases = np.arange(counts.shape[1])
    out = np.empty((len(counts), len(rows)))
    # a resample may miss every lesion of one sign: a ratio's denominator can then be 0
    with np.errstate(invalid="ignore", divide="ignore"):
        for r, drawn in enumerate(counts):
            idx = np.repeat(cases, drawn)
            out[r] = [statistic(metric, mine, idx) - statistic(metric, theirs, idx)
                      for mine, theirs in rows]
    return out


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
    return bootstrap.percentile_interval(values)


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
    figure = tradeoff_figure([s.report for s in seeds], out / FIGURES_DIR / "tradeoff.png")
    summary["figures"] = {"tradeoff": str(figure.relative_to(out))}
    atomic.write_text(out / SUMMARY_MD_FILE, markdown(summary))
    atomic.write_json(out / SUMMARY_FILE, jsonable(summary))  # last: the study is complete
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
    with cli.claim(out, parser.prog, argv, "--out"):
        summary = aggregate([Path(w) for w in args.workdirs], out, args.resamples, args.seed)
    for item in summary["claims"]:
        print(f"{item['name']}: " + "; ".join(f"{m.replace('_', ' ')} {d['verdict']}"
                                               for m, d in item["differences"].items()))
    print(f"seed study: {out / 'summary.md'} (and summary.json, figures/tradeoff.png)")
    return 0


if __name__ == "__main__":
    # no TensorFlow start-up here (cli.quiet_startup): the study reads JSON and NumPy files only
    sys.exit(run_cli(main))
