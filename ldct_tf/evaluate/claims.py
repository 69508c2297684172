"""The paired comparisons of two sets on the same cases (finetune minus its control, ...): the
difference of each claim metric with its unit-bootstrap interval, what the design can resolve, and
the verdict."""

from __future__ import annotations


import numpy as np

from ldct_tf.evaluate import bootstrap, observers
from ldct_tf.config import Config
from ldct_tf.evaluate.report import COMPARISONS, label
from ldct_tf.evaluate.readings import statistic


# diagnostic first, then fidelity (the order of the report)
CLAIM_METRICS = ("contrast_kept", "cho_auc", "lroc_area", "fraction_localized",
                 "cnn_observer_independent", "invented_contrast", "contrast_recovery",
                 "psnr_abdomen", "ssim_abdomen")


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
            value = statistic(metric, one) - statistic(metric, other)
            low, high = bootstrap.interval(
                len(one["cases"]),
                lambda i: statistic(metric, one, i) - statistic(metric, other, i),
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
