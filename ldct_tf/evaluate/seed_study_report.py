"""What a seed study shows (`ldct_tf.evaluate.seed_study`): ``summary.md`` and the trade-off
figure, abdomen PSNR against contrast kept, one point per network and seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ldct_tf.evaluate.claim_metrics import BY_NAME, CLAIM_METRICS
from ldct_tf.evaluate.display import NETWORKS, label, ordered, pyplot, save

REFERENCES = {"ldct": ("black", "x"), "gaussian": ("0.5", "^"), "bm3d": ("0.3", "s")}


def tradeoff_figure(reports: list[dict], path: Path) -> Path:
    """Abdomen PSNR (x) against contrast kept on the twins (y): one point per network and seed
    (``reports``: each seed's metrics.json) with that seed's 95 % intervals (over test cases);
    LDCT and the baselines as references."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.6))
    colours = plt.get_cmap("tab10")
    drawn: set[str] = set()
    for report in reports:
        for name in ordered(report["sets"]):  # legend in table order
            point = _tradeoff_point(report["sets"][name])
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
    ax.set_title(f"Noise removal against lesion contrast, {len(reports)} training seed(s)\n"
                 "(bars: each seed's 95 % interval over test cases)", fontsize=9)
    if drawn:
        ax.legend(fontsize=7)
    return save(fig, path)


def _tradeoff_point(result: dict):
    psnr, kept = BY_NAME["psnr_abdomen"].entry(result), BY_NAME["contrast_kept"].entry(result)
    if psnr is None or kept is None:
        return None

    def with_interval(entry):
        value = entry["value"]
        low, high = entry["ci95"]
        return value, (value if low is None else low, value if high is None else high)

    return with_interval(psnr), with_interval(kept)


def _pm(entry: dict | None, digits: int) -> str:
    if not entry or entry["mean"] is None:
        return "-"
    sd = "" if entry["sd"] is None else f" ± {entry['sd']:.{digits}f}"
    return f"{entry['mean']:.{digits}f}{sd}"


def markdown(summary: dict) -> str:
    """``summary.md``: per-set means ± SD over seeds, then every comparison with its verdict."""
    seeds = ", ".join(str(s) for s in summary["train_seeds"])
    lines = ["# Seed study", "",
             f"{summary['n_seeds']} training seed(s) (train.seed: {seeds}), the same test split: "
             f"{summary['test_slices']} slices, {summary['matched_pairs']} matched twin pairs. "
             "Mean ± SD over seeds; PSNR/SSIM in the abdomen window [-160, 240] HU (data range "
             "400).", "",
             "| set | " + " | ".join(m.replace("_", " ") for m in CLAIM_METRICS) + " | seeds |",
             "|" + "---|" * (len(CLAIM_METRICS) + 2)]
    for name, values in summary["sets"].items():
        n = max(v["n_seeds"] for v in values.values())
        lines.append(f"| {label(name)} | "
                     + " | ".join(_pm(values.get(m), BY_NAME[m].digits) for m in CLAIM_METRICS)
                     + f" | {n} |")
    lines += ["", "## Paired comparisons (a minus b)", "",
              "| comparison | metric | mean over seeds | SD over seeds | 95 % interval | "
              "resampled | verdict |", "|---|---|---|---|---|---|---|"]
    for item in summary["claims"]:
        for metric, d in item["differences"].items():
            digits = BY_NAME[metric].digits + 1
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
