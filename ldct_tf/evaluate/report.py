"""The evaluation report: a summary table, ``report.md``, a self-contained ``report.html`` and the
figures in ``eval/figures/`` (lesion ROIs, line profiles, edge profiles, difference images, bar
plots with intervals, noise power spectra, activation-map overlays).

Set order, labels and cells come from `ldct_tf.evaluate.display`; what each claim metric is and
where a set's value sits, from `ldct_tf.evaluate.claim_metrics`.
"""

from __future__ import annotations

import base64
import html
import math
import shutil
from pathlib import Path

import numpy as np

from ldct_tf import atomic
from ldct_tf.evaluate import metrics
from ldct_tf.evaluate.claim_metrics import BY_NAME
from ldct_tf.evaluate.display import fmt, label, ordered, pyplot, save
from ldct_tf.workdir import FIGURES_DIR, REPORT_FILE, REPORT_HTML_FILE, Workdir

ROI_HALF = 20


def _ci(entry, digits=2) -> str:
    if not entry or entry.get("value") is None:
        return "-"
    low, high = entry["ci95"]
    return f"{fmt(entry['value'], digits)} [{fmt(low, digits)}, {fmt(high, digits)}]"


def _invented_cell(entry) -> str:
    """The invented contrast with its interval, and "!" where it leaves the tolerance."""
    return _ci(entry) + (" !" if entry and entry.get("outside_tolerance") else "")


def _cho_cell(cho: dict | None, key: str) -> str:
    if not cho:
        return "-"
    return f"{fmt(cho.get(key))} [{fmt(cho[key + '_ci95'][0])}, {fmt(cho[key + '_ci95'][1])}]"


def _metric_cell(r: dict, metric: str) -> str:
    return _ci(BY_NAME[metric].entry(r))


def diagnostic_rows(report: dict) -> list[list[str]]:
    """One row per set: what a reader would see (lesion contrast, detection, localization)."""
    rows = []
    for name in ordered(report["sets"]):
        r = report["sets"][name]
        rows.append([label(name), _metric_cell(r, "contrast_kept"),
                     _cho_cell(r.get("cho"), "dprime"), _metric_cell(r, "cho_auc"),
                     _metric_cell(r, "lroc_area"), _metric_cell(r, "fraction_localized"),
                     _metric_cell(r, "cnn_observer_independent"),
                     _invented_cell(r.get("invented_contrast"))])
    return rows


def table_rows(report: dict) -> list[list[str]]:
    """Fidelity and texture, one row per set; a report written before a column existed shows "-"
    there."""
    rows = []
    for name in ordered(report["sets"]):
        r = report["sets"][name]
        abdomen, full = r.get("abdomen"), r.get("full_range")
        rows.append([
            label(name),
            _ci(abdomen["psnr"]) if abdomen else "ref",
            _ci(abdomen["ssim"], 3) if abdomen else "ref",
            fmt(full["psnr"]["value"]) if full else "ref",
            fmt(r["noise"]["noise_index_hu"]["value"], 1),
            _ci(r["contrast_recovery"]),
            fmt(r["edge"].get("ratio_to_ndct")),
            fmt(r["edge"].get("step_ratio_to_ndct")),
            _ci(r.get("classifier_auc")),
        ])
    return rows


DIAGNOSTIC_HEADER = ["set", "contrast kept (twins)", "CHO d'", "CHO AUC", "LROC area",
                     "localized", "independent CNN observer AUC", "invented at sham"]
HEADER = ["set", "PSNR dB (abdomen)", "SSIM (abdomen)", "PSNR dB (full)", "noise HU",
          "contrast recovery (ring)", "edge rise / NDCT", "edge step / NDCT",
          "map classifier AUC (not independent)"]


def _flag_note(report: dict) -> str | None:
    """A line naming the sets whose invented contrast at the sham site leaves the tolerance."""
    flagged = {n: report["sets"][n]["invented_contrast"] for n in ordered(report["sets"])
               if (report["sets"][n].get("invented_contrast") or {}).get("outside_tolerance")}
    if not flagged:
        return None
    tolerance = next(iter(flagged.values()))["tolerance"]
    return (f"! invented contrast outside +-{tolerance:g} of the true lesion contrast (contrast "
            f"painted where there is no lesion): {', '.join(label(n) for n in flagged)}")


def _text_table(header: list[str], rows: list[list[str]]) -> list[str]:
    rows = [header] + rows
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def summary_table(report: dict) -> str:
    """The diagnostic table, then the fidelity table, as plain text."""
    lines = _text_table(DIAGNOSTIC_HEADER, diagnostic_rows(report)) + [""]
    lines += _text_table(HEADER, table_rows(report))
    note = ("abdomen window [-160, 240] HU, data range 400; full range [-1024, 3072] HU, data "
            "range 4096; [95 % bootstrap interval over test slices, twins together]")
    flags = _flag_note(report)
    return "\n".join(lines + [note] + ([flags] if flags else []))


def write(report: dict, test, sets: dict, workdir: Path, out: Path) -> dict:
    figures = out / FIGURES_DIR
    if figures.exists():
        shutil.rmtree(figures)
    figures.mkdir(parents=True)
    made = _figures(report, test, sets, workdir, figures)
    markdown = _markdown(report, made)
    atomic.write_text(out / REPORT_FILE, markdown)
    atomic.write_text(out / REPORT_HTML_FILE, _html(report, made, out))
    return {"markdown": out / REPORT_FILE, "html": out / REPORT_HTML_FILE, FIGURES_DIR: made}


# --- figures ------------------------------------------------------------------------------------

def _figures(report, test, sets, workdir, figures: Path) -> dict:
    present = [i for i, lab in enumerate(test.label) if lab == 1][:4]
    made = {}
    if present:
        made["lesion_rois"] = _lesion_rois(test, sets, present, figures / "lesion_rois.png")
        made["profiles"] = _profiles(test, sets, present[:3], figures / "profiles.png")
        made["differences"] = _differences(test, sets, present[0], figures / "differences.png")
    made["edge_profiles"] = _edge_profiles(report, figures / "edge_profiles.png")
    made["bars"] = _bars(report, figures / "bars.png")
    made["lroc"] = _lroc_curves(report, figures / "lroc.png")
    made["contrast_detail"] = _detail().figure(report, figures / "contrast_detail.png")
    made["nps"] = _nps(test, sets, figures / "nps.png")
    cam_figure = Workdir(workdir).cam_figure
    if cam_figure.exists():
        atomic.copy_file(cam_figure, figures / "activation_maps.png")
        made["activation_maps"] = figures / "activation_maps.png"
    return {k: v for k, v in made.items() if v is not None}


def _detail():
    """`contrast_detail_report` (imported here: it takes its helpers from this module)."""
    from ldct_tf.evaluate import contrast_detail_report

    return contrast_detail_report


def _crop(image, row, col):
    padded = np.pad(image, ROI_HALF, mode="edge")
    r, c = int(round(row)) + ROI_HALF, int(round(col)) + ROI_HALF
    return padded[r - ROI_HALF:r + ROI_HALF, c - ROI_HALF:c + ROI_HALF]


def _lesion_rois(test, sets, present, path):
    plt = pyplot()
    names = ordered(sets)
    fig, axes = plt.subplots(len(present), len(names), figsize=(1.9 * len(names),
                                                                1.9 * len(present)),
                             squeeze=False)
    for row, i in enumerate(present):
        for col, name in enumerate(names):
            ax = axes[row, col]
            low, high = metrics.WINDOWS["abdomen"]
            ax.imshow(_crop(sets[name][i], *test.lesion[i][:2]), cmap="gray", vmin=low,
                      vmax=high)
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(label(name), fontsize=9)
        axes[row, 0].set_ylabel(f"{test.lesion[i][3]:+.0f} HU", fontsize=8)
    fig.suptitle(f"Lesion ROIs ({2 * ROI_HALF} px), abdomen window [-160, 240] HU", fontsize=10)
    return save(fig, path)


def _profiles(test, sets, present, path):
    plt = pyplot()
    fig, axes = plt.subplots(1, len(present), figsize=(4.5 * len(present), 3.4), squeeze=False)
    for ax, i in zip(axes[0], present):
        row, col, radius, contrast = test.lesion[i]
        span = int(math.ceil(3 * radius))
        cols = np.arange(int(col) - span, int(col) + span + 1)
        cols = cols[(cols >= 0) & (cols < test.ndct[i].shape[1])]
        for name in ordered(sets):
            ax.plot(cols - col, sets[name][i][int(round(row)), cols], label=label(name),
                    lw=2.2 if name == "ndct" else 1.2)
        ax.axvspan(-radius, radius, color="0.9")
        ax.set_xlabel("pixels from lesion centre")
        ax.set_ylabel("HU")
        ax.set_title(f"lesion {contrast:+.0f} HU, radius {radius:.1f} px", fontsize=9)
    axes[0, -1].legend(fontsize=7)
    return save(fig, path)


def _differences(test, sets, i, path):
    plt = pyplot()
    names = [n for n in ordered(sets) if n != "ndct"]
    fig, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 2.9), squeeze=False)
    for ax, name in zip(axes[0], names):
        im = ax.imshow(sets[name][i] - test.ndct[i], cmap="RdBu_r", vmin=-100, vmax=100)
        ax.set_title(f"{label(name)} - NDCT", fontsize=9)
        ax.axis("off")
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="HU")
    with atomic.replacing(path) as temp:  # not `save`: its tight layout would move the colorbar
        fig.savefig(temp, dpi=80)
    plt.close(fig)
    return path


def _edge_profiles(report, path):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    drawn = False
    for name in ordered(report["sets"]):
        edge = report["sets"][name]["edge"]
        if edge.get("mean_profile"):
            ax.plot(edge["offsets_px"], edge["mean_profile"], marker=".", label=label(name))
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("distance from lesion edge (pixels)")
    ax.set_ylabel("sign-aligned HU above background")
    ax.set_title("Mean lesion-edge profile", fontsize=10)
    ax.legend(fontsize=7)
    return save(fig, path)


_BETTER = {"higher": "higher is better", "lower": "lower is better", "zero": "0 is best"}


def _bars(report, path):
    plt = pyplot()
    panels = [BY_NAME[m] for m in ("psnr_abdomen", "ssim_abdomen", "contrast_recovery",
                                   "contrast_kept", "cho_auc", "lroc_area",
                                   "cnn_observer_independent")]
    names = ordered(report["sets"])
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.4))
    for ax, metric in zip(axes, panels):
        xs, values, errors = [], [], [[], []]
        for k, name in enumerate(names):
            entry = metric.entry(report["sets"][name])
            if not entry or entry.get("value") is None:
                continue
            low, high = entry["ci95"]
            xs.append(k)
            values.append(entry["value"])
            errors[0].append(max(entry["value"] - (low if low is not None else entry["value"]), 0))
            errors[1].append(max((high if high is not None else entry["value"]) - entry["value"],
                                 0))
        ax.bar(xs, values, yerr=errors, capsize=3, color="tab:blue")
        ax.set_xticks(range(len(names)), [label(n) for n in names], rotation=60, fontsize=7)
        ax.set_title(f"{metric.title} ({_BETTER[metric.better]})", fontsize=9)
        if values:
            low = min(v - e for v, e in zip(values, errors[0]))
            high = max(v + e for v, e in zip(values, errors[1]))
            ax.set_ylim(low - 0.1 * (high - low + 1e-9), high + 0.1 * (high - low + 1e-9))
    fig.suptitle("Test split, 95 % bootstrap intervals", fontsize=10)
    return save(fig, path)


def _lroc_curves(report, path):
    """LROC curves of every set: fraction of lesions found and correctly localized against the
    false-positive fraction of the lesion-absent twins."""
    drawn = [(n, report["sets"][n]["lroc"]) for n in ordered(report["sets"])
             if (report["sets"][n].get("lroc") or {}).get("curve")]
    if not drawn:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    for name, lroc in drawn:
        ax.step(lroc["curve"]["fpf"], lroc["curve"]["tpf"], where="post",
                label=f"{label(name)} ({lroc['lroc_area']['value']:.2f})",
                lw=2.2 if name in ("ndct", "ldct") else 1.2)
    chance = drawn[0][1]["chance_fraction"]
    ax.plot([0, 1], [0, chance], color="0.6", ls=":", label=f"guessing ({chance:.3f})")
    ax.set_xlabel("false-positive fraction (lesion-absent twins)")
    ax.set_ylabel("fraction detected and localized within R")
    ax.set_xlim(0, 1), ax.set_ylim(0, 1)
    ax.set_title("LROC, scanning observer over 4 R (area in brackets)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    return save(fig, path)


def _nps(test, sets, path):
    """NPS of the residual (image - NDCT) in uniform soft-tissue ROIs of lesion-absent slices:
    32x32 ROIs, or smaller (down to 8x8) where the anatomy has no room for larger ones."""
    absent = [i for i, lab in enumerate(test.label) if lab == 0]
    for size in (32, 16, 8):
        corners = {i: metrics.uniform_rois(test.ndct[i], size, 4) for i in absent}
        if any(corners.values()):
            break
    else:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    spacing = float(np.mean(test.spacing_mm))
    for name in [n for n in ordered(sets) if n != "ndct"]:
        rois = [(sets[name][i] - test.ndct[i])[r:r + size, c:c + size]
                for i, cs in corners.items() for r, c in cs]
        freq, nps = metrics.noise_power_spectrum(np.array(rois), spacing)
        keep = nps > 0  # the zero-frequency bin holds no power: each ROI's mean is removed
        ax.plot(freq[keep], nps[keep], label=label(name))
    ax.set_xlabel("spatial frequency (1/mm)")
    ax.set_ylabel("NPS (HU$^2$ mm$^2$)")
    ax.set_yscale("log")
    ax.set_title(f"NPS of image - NDCT, {size}x{size} uniform soft-tissue ROIs", fontsize=9)
    ax.legend(fontsize=7)
    return save(fig, path)


# --- documents ----------------------------------------------------------------------------------

_CAPTIONS = {
    "lesion_rois": "Zoomed lesion ROIs for every image set.",
    "profiles": "Horizontal line profiles through lesions (shaded: lesion diameter).",
    "edge_profiles": "Mean sign-aligned radial profile across the lesion edge.",
    "differences": "Difference images (set - NDCT), one test slice, +-100 HU.",
    "bars": "Image quality and detectability with 95 % bootstrap intervals.",
    "lroc": "LROC curves: lesions detected and localized within one radius, against false "
            "positives on the lesion-absent twins (scanning matched filter over 4 radii).",
    "contrast_detail": "Detectability by lesion size and contrast: CHO AUC and fraction "
                       "localized per diameter and |contrast| bin, 95 % bootstrap intervals.",
    "nps": "Noise power spectrum of the residual (image - NDCT) in uniform soft tissue.",
    "activation_maps": "Activation maps (Grad-CAM of the lesion classifier) on NDCT test slices.",
}


def _markdown(report: dict, figures: dict) -> str:
    lines = ["# Evaluation report", "",
             f"Test split: {report['test_slices']} slices, {report['matched_pairs']} matched "
             f"lesion-present / lesion-absent pairs from {report.get('units', '?')} test slices "
             "(the bootstrap's units).", "", "## Diagnostic: would a reader still see the lesion?",
             "", "| " + " | ".join(DIAGNOSTIC_HEADER) + " |",
             "|" + "---|" * len(DIAGNOSTIC_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in diagnostic_rows(report)]
    lines += ["", "## Fidelity and texture", "", "| " + " | ".join(HEADER) + " |",
              "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(report)]
    lines += ["", "Windows: abdomen [-160, 240] HU (data range 400); full range [-1024, 3072] HU "
              "(data range 4096). Brackets: 95 % bootstrap intervals. Noise: global noise index "
              "(HU). Edge rise / NDCT > 1 means blurrier lesion edges than NDCT; edge step / NDCT "
              "< 1 means lost edge amplitude.", ""]
    flags = _flag_note(report)
    if flags:
        lines += [f"**{flags}**", ""]
    lines += _detail().markdown(report) + ["## Paired comparisons", ""]
    listed = _claims(report)
    if not listed:
        lines += [f"Not available: {report['claim'].get('reason', 'no two sets to compare')}.",
                  ""]
    for item in listed:
        lines += [f"### {_claim_title(item)}", "", f"_{item.get('role', '')}_", ""]
        lines += [f"- {d['verdict']}" + (f" (resolves differences of about "
                                          f"{d['resolvable']:.3g})" if d.get("resolvable")
                                          else "") for d in item["differences"].values()]
        lines += [""]
    if listed:
        lines += [f"_{listed[0]['seeds']}_", ""]
    if report["skipped"]:
        lines += ["## Skipped image sets", ""]
        lines += [f"- {name}: {why}" for name, why in report["skipped"].items()] + [""]
    lines += ["## Baselines", "", f"```\n{report['baselines']}\n```", "",
              "## Conventions", ""]
    lines += [f"- **{k}**: {v}" for k, v in report["conventions"].items()] + ["", "## Figures", ""]
    for key, path in figures.items():
        lines += [f"![{key}](figures/{Path(path).name})", "", _CAPTIONS.get(key, key), ""]
    return "\n".join(lines) + "\n"


def _claims(report: dict) -> list[dict]:
    """The paired comparisons; a report from before ``claims`` existed has only ``claim``."""
    if "claims" in report:
        return report["claims"]
    claim = report.get("claim") or {}
    return [dict(claim, a="finetune", b="pretrain")] if claim.get("available") else []


def _claim_title(item: dict) -> str:
    return f"{label(item['a'])} vs {label(item['b'])}"


def _html_claims(report: dict) -> str:
    listed = _claims(report)
    if not listed:
        return (f"<ul><li>{html.escape(report['claim'].get('reason', 'not available'))}</li>"
                "</ul>")
    parts = []
    for item in listed:
        verdicts = "".join(f"<li>{html.escape(d['verdict'])}</li>"
                           for d in item["differences"].values())
        parts.append(f"<h3>{html.escape(_claim_title(item))}</h3><p>"
                     f"{html.escape(item.get('role', ''))}</p><ul>{verdicts}</ul>")
    return "".join(parts) + f"<p><em>{html.escape(listed[0]['seeds'])}</em></p>"


def _html(report: dict, figures: dict, out: Path) -> str:
    def table(header, body):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                       for row in body)
        return f"<table><tr>{head}</tr>{rows}</table>"

    flags = _flag_note(report)
    flags = f"<p><strong>{html.escape(flags)}</strong></p>" if flags else ""
    detail = _detail().table(report)
    detail = (f"<h2>Detectability by lesion size and contrast</h2>{table(*detail)}<p>"
              f"{html.escape(_detail().note(report))}</p>" if detail else "")
    images = "".join(
        f"<figure><img src='data:image/png;base64,"
        f"{base64.b64encode(Path(p).read_bytes()).decode()}'><figcaption>"
        f"{html.escape(_CAPTIONS.get(k, k))}</figcaption></figure>" for k, p in figures.items())
    skipped = "".join(f"<li>{html.escape(n)}: {html.escape(w)}</li>"
                      for n, w in report["skipped"].items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>ldct_tf evaluation</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 6px;font-size:13px}}img{{max-width:100%}}</style></head>
<body><h1>Evaluation report</h1><p>Test split: {report['test_slices']} slices,
{report['matched_pairs']} matched pairs. Abdomen window [-160, 240] HU (data range 400); full range
[-1024, 3072] HU (data range 4096); brackets are 95 % bootstrap intervals.</p>
<h2>Diagnostic: would a reader still see the lesion?</h2>
{table(DIAGNOSTIC_HEADER, diagnostic_rows(report))}{flags}<h2>Fidelity and texture</h2>
{table(HEADER, table_rows(report))}{detail}<h2>Paired comparisons</h2>{_html_claims(report)}
<h2>Skipped image sets</h2><ul>{skipped or '<li>none</li>'}</ul><h2>Figures</h2>{images}
</body></html>
"""
