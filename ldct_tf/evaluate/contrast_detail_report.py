"""The report's view of `contrast_detail`: the figure ``contrast_detail.png`` (CHO AUC and fraction
localized against lesion diameter, one column of panels per contrast bin, one line per set with
its 95 % intervals) and the compact table (rows sets, columns bins, cells "AUC / localized")."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ldct_tf.evaluate.display import fmt, label, ordered, pyplot, save

# (panel title, value and interval of one set in one bin)
_PANELS = (("CHO AUC", lambda e: (e["cho"]["auc"], e["cho"]["auc_ci95"]) if e["cho"] else None),
           ("fraction localized", lambda e: (e["fraction_localized"]["value"],
                                             e["fraction_localized"]["ci95"])))


def dose_text(detail: dict) -> str:
    """"LDCT at 25 % dose", or what the low-dose images are when no fraction is known."""
    fraction = detail.get("dose_fraction")
    return f"LDCT at {100 * fraction:g} % dose" if fraction else "LDCT (paired low-dose scans)"


def bins_text(detail: dict) -> str:
    """The bin edges in words: "diameter 5-7, 7-9 mm x |contrast| 20-30, 30-40 HU"."""
    def axis(edges):
        return ", ".join(f"{lo:g}-{hi:g}" for lo, hi in zip(edges[:-1], edges[1:]))

    return (f"diameter {axis(detail['diameter_mm_edges'])} mm x |contrast| "
            f"{axis(detail['contrast_hu_edges'])} HU")


def table(report: dict) -> tuple[list[str], list[list[str]]] | None:
    """(header, rows) of the compact table: one row per set, one column per bin, cells
    "CHO AUC / fraction localized" ("-" for a bin without a CHO); None without the results."""
    detail = report.get("contrast_detail")
    if not detail:
        return None
    header = ["set"] + [f"{b['diameter_mm'][0]:g}-{b['diameter_mm'][1]:g} mm, "
                        f"{b['contrast_hu'][0]:g}-{b['contrast_hu'][1]:g} HU "
                        f"({b['pairs']} pairs, {b['units']} slices)" for b in detail["bins"]]
    rows = [[label(name)] + [f"{fmt(e['cho'] and e['cho']['auc'])} / "
                             f"{fmt(e['fraction_localized']['value'])}" for e in entries]
            for name, entries in _ordered(detail)]
    return header, rows


def markdown(report: dict) -> list[str]:
    """The report.md section: a heading, the table and its note (nothing without the results)."""
    found = table(report)
    if not found:
        return []
    header, rows = found
    return (["## Detectability by lesion size and contrast", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(row) + " |" for row in rows] + ["", note(report), ""])


def note(report: dict) -> str:
    """What the table shows, under it."""
    detail = report["contrast_detail"]
    return (f"{dose_text(detail)}. Cells: CHO AUC / fraction localized by the scanning observer; "
            f"\"-\": no CHO (fewer than {detail['cho']['min_units']} test slices in the bin). "
            "95 % intervals: metrics.json (`contrast_detail`) and the figure.")


def figure(report: dict, path: Path) -> Path | None:
    """``contrast_detail.png``: rows CHO AUC and fraction localized, one column per contrast bin,
    x = diameter bin, one line per set with its 95 % intervals; None without the results."""
    detail = report.get("contrast_detail")
    if not detail:
        return None
    plt = pyplot()
    n = detail["bins_per_axis"]
    by_bin = {(tuple(b["diameter_mm"]), tuple(b["contrast_hu"])): k
              for k, b in enumerate(detail["bins"])}
    sizes = list(dict.fromkeys(tuple(b["diameter_mm"]) for b in detail["bins"]))
    contrasts = list(dict.fromkeys(tuple(b["contrast_hu"]) for b in detail["bins"]))
    rows = _ordered(detail)
    fig, axes = plt.subplots(len(_PANELS), len(contrasts), squeeze=False, sharey="row",
                             figsize=(1.2 + 3.2 * len(contrasts), 6.4))
    for col, contrast in enumerate(contrasts):
        ks = [by_bin[(size, contrast)] for size in sizes]
        for row, (title, pick) in enumerate(_PANELS):
            ax = axes[row, col]
            for s, (name, entries) in enumerate(rows):
                x = np.arange(len(sizes)) + 0.4 * (s - (len(rows) - 1) / 2) / len(rows)
                _errorbar(ax, x, [pick(entries[k]) for k in ks], label(name),
                          2.0 if name in ("ldct", "ndct") else 1.0)
            ax.axhline(_chance(report, row), color="0.6", ls=":", lw=1)
            ax.set_xlim(-0.5, len(sizes) - 0.5)
            ax.set_xticks(range(len(sizes)), [
                f"{lo:g}-{hi:g} mm\n{detail['bins'][k]['pairs']} pairs"
                for (lo, hi), k in zip(sizes, ks)], fontsize=7)
            ax.set_title(f"{title}, |contrast| {contrast[0]:g}-{contrast[1]:g} HU", fontsize=9)
        axes[-1, col].set_xlabel("lesion diameter bin")
    for row, (title, _) in enumerate(_PANELS):
        axes[row, 0].set_ylabel(title)
    axes[0, -1].legend(fontsize=6, loc="lower right")
    fig.suptitle(f"Detectability by lesion size and contrast, {dose_text(detail)}\n{n}x{n} "
                 f"bins: {bins_text(detail)}; 95 % intervals; dotted: chance", fontsize=9)
    return save(fig, path)


def _ordered(detail: dict) -> list[tuple[str, list]]:
    return [(name, detail["sets"][name]) for name in ordered(detail["sets"])]


def _chance(report: dict, row: int) -> float:
    """The chance level of a panel row: AUC 1/2; the fraction localized by guessing."""
    if row == 0:
        return 0.5
    lroc = next((r["lroc"] for r in report["sets"].values() if r.get("lroc")), None)
    return lroc["chance_fraction"] if lroc else float("nan")


def _errorbar(ax, x, picked, name: str, width: float) -> None:
    """One set's line: NaN (a gap) where a bin has no value; intervals clipped at the value."""
    value = np.array([p[0] if p and p[0] is not None else np.nan for p in picked], np.float64)
    ci = np.array([p[1] if p and p[0] is not None else [np.nan, np.nan] for p in picked],
                  np.float64).reshape(-1, 2)
    ci = np.where(np.isfinite(ci), ci, value[:, None])
    error = np.clip(np.stack([value - ci[:, 0], ci[:, 1] - value]), 0, None)
    ax.errorbar(x, value, yerr=np.nan_to_num(error), marker="o", ms=3.5, capsize=2, lw=width,
                label=name)
