"""The paired comparisons of two sets on the same cases (finetune minus its control, ...): the
difference of each claim metric with its unit-bootstrap interval, what the design can resolve, and
the verdict."""

from __future__ import annotations

import numpy as np

from ldct_tf.config import Config
from ldct_tf.evaluate import bootstrap, observers
from ldct_tf.evaluate.claim_metrics import CLAIM_METRICS, COMPARISONS, statistic, verdict
from ldct_tf.evaluate.display import label


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
            mine, theirs = one["cases"], other["cases"]
            value = statistic(metric, mine) - statistic(metric, theirs)
            low, high = bootstrap.interval(
                len(mine), lambda i: statistic(metric, mine, i) - statistic(metric, theirs, i),
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
    """`claim_metrics.verdict` of the interval, as a sentence naming the metric and both sets."""
    name, a, b = metric.replace("_", " "), label(a), label(b)
    interval = f"95 % CI {low:+.4g} to {high:+.4g}"
    return {"not measurable": f"{name}: {a} vs {b} not measurable",
            "above 0": f"{name}: {a} higher than {b} by {value:+.4g} ({interval})",
            "below 0": f"{name}: {a} lower than {b} by {value:+.4g} ({interval})",
            "within noise": f"{name}: {a} minus {b} = {value:+.4g} is within noise ({interval} "
                            "includes 0)"}[verdict(low, high)]
