"""`python -m ldct_tf.evaluate.lcd`: low-contrast detectability on the field's test object.

The MITA-LCD-like phantom (`ldct_tf.ct.lcd_phantom`: 200 mm water, inserts of 3, 5, 7 and 10 mm
at 14, 7, 5 and 3 HU) is imaged by the project's scanner (`ldct_tf.ct.simulate.scan`, the
``[scanner]`` of the config, the training data's view count) ``N`` times with its inserts and
``N`` times without, at each dose fraction and at full dose (NDCT); LDCT is read as it is, and
every trained network of the work directory (`display.NETWORKS`) denoises the same LDCT
images. Per dose, set and insert: a Laguerre-Gauss channelized Hotelling observer (LG-CHO), as
in the FDA LCD-CT toolbox (github DIDSR/LCD_CT, CC0; ``src/lcdct/LCD.py``, ``Observers.py``,
``measure_LCD.m``, ``lg_cho_2d.m``):

- ROIs: square, ``2 * round(largest insert diameter, px) + 1`` pixels (the toolbox's
  ``get_roi_from_truth_mask(mask, img, nx=2 * crop_r)``: 15 px at 1.4 mm), the same size for every
  insert, centred on the insert in present images and at the same place in absent images; each
  ROI's mean is subtracted ("the dc component ... which human eyes do not perceive").
- Channels: 5 Laguerre-Gauss channels ``sqrt(2)/a exp(-pi r^2/a^2) L_n(2 pi r^2/a^2)`` of width
  ``a = 2/3`` of the insert diameter in pixels (the toolbox's ``channel_width = 2/3 * insert_r``,
  where its ``insert_r`` is the mask's bounding-box side, i.e. the diameter).
- Template ``S^-1 (mean_present - mean_absent)`` with ``S`` the mean of the two classes' channel
  covariances, trained on a random half and read on the other half; d' from the test scores;
  ``LCD_READERS`` = 10 random half splits (the toolbox's default ``n_reader``) averaged.

Where this differs from the toolbox: its readers are reported one by one (mean and spread over
splits of one data set); here the 10-split mean is the point value and its 95 % interval is the
bias-corrected percentile bootstrap of the same estimator over realisations
(`observers.cho_study`; realisation ``i`` present and ``i`` absent form one unit), so the
interval includes the finite number of images, not only the split noise. AUC is ``Phi(d'/sqrt 2)``
(the empirical AUC of the test scores, the toolbox's ``auc``, is kept as ``auc_empirical``).
Every set at one dose gets the same bootstrap draws and splits, so the differences from LDCT
(``minus_ldct``) are paired. The toolbox reads scanner images (its sample set: Siemens-like MIRT
fan-beam simulation, 200 realisations suggested); here images are the project's 2-D parallel-beam
simulation, so absolute AUCs are not comparable with the toolbox's published ones, only the
ranking of sets and the drop with dose.

The phantom is imaged on the smallest convenient grid at the config's pixel spacing
(`lcd_phantom.minimum_size`: 160 px at 1.4 mm) with the view count of the training scans: the
noise inside the cylinder is the same as on the training grid (10.8 vs 11.0 HU at 25 %, 6
realisations each) and a scan takes 0.4x the time; ``--size`` sets the grid.

Writes ``<workdir>/eval/lcd/``: ``lcd.json`` (per dose, set and insert: d', AUC and intervals;
per set the noise SD in the central water disk), ``lcd.md`` (a table per dose), ``lcd.png`` (AUC
per insert, a panel per dose) and ``lcd_images.png`` (one signal-present image per set and dose,
inserts circled).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ldct_tf import atomic, cli
from ldct_tf.config import Config
from ldct_tf.ct import lcd_phantom
from ldct_tf.ct.simulate import default_n_views
from ldct_tf.errors import LdctError, run_cli
from ldct_tf.evaluate import bootstrap, observers
from ldct_tf.evaluate.display import jsonable, label, ordered, pyplot, save
from ldct_tf.evaluate.sets import denoise, trained_networks
from ldct_tf.workdir import Workdir

JSON_FILE, MARKDOWN_FILE = "lcd.json", "lcd.md"
FIGURE_FILE, IMAGES_FILE = "lcd.png", "lcd_images.png"
DEFAULT_DOSES = (0.25, 0.1)
DEFAULT_REALIZATIONS = 100
LCD_READERS = 10  # random half splits averaged per estimate: the toolbox's default n_reader
MIN_REALIZATIONS = 8
CHANNEL_WIDTH_PER_DIAMETER = 2.0 / 3.0
DISPLAY_WINDOW_HU = (-40.0, 40.0)


# --- the observer -------------------------------------------------------------------------------

def roi_size(inserts) -> int:
    """ROI side (pixels, odd): ``2 * round(largest insert diameter in pixels) + 1``."""
    return 2 * int(round(max(ins.diameter_px for ins in inserts))) + 1


def insert_rois(images: np.ndarray, insert, size: int) -> np.ndarray:
    """``[n, size, size]`` ROIs of ``images`` ``[n, rows, cols]`` centred on the insert's
    (rounded) centre pixel."""
    half = size // 2
    row, col = int(round(insert.row)), int(round(insert.col))
    rows, cols = images.shape[1:]
    if row - half < 0 or col - half < 0 or row + half >= rows or col + half >= cols:
        raise ValueError(f"a {size} px ROI at ({row}, {col}) does not fit a {rows} x {cols} image")
    return images[:, row - half:row + half + 1, col - half:col + half + 1]


def remove_dc(rois: np.ndarray) -> np.ndarray:
    """Each ROI minus its own mean (as the toolbox, before channelizing)."""
    rois = np.asarray(rois, np.float64)
    return rois - rois.mean(axis=(1, 2), keepdims=True)


def insert_observer(present_rois: np.ndarray, absent_rois: np.ndarray, diameter_px: float, *,
                    n_channels: int = observers.DEFAULT_CHANNELS, readers: int = LCD_READERS,
                    resamples: int = 500, seed: int = 0) -> dict:
    """The per-insert LG-CHO on matched ROI stacks (present ``i`` and absent ``i``: one unit).

    Args:
      present_rois, absent_rois: ``[n, size, size]`` ROIs (HU), equal ``n``.
      diameter_px: insert diameter in pixels; channel width 2/3 of it.
      n_channels: Laguerre-Gauss channels.
      readers: random half splits averaged for every estimate.
      resamples: bootstrap resamples of the realisations for the intervals.
      seed: seed of the splits and draws (same seed, same draws: paired across sets).

    Returns:
      `observers.cho_study`'s dict: ``dprime``, ``auc``, ``auc_empirical``, ``dprime_ci95``,
      ``auc_ci95`` and ``boot`` (``[resamples, 2]``).
    """
    if present_rois.shape != absent_rois.shape or present_rois.ndim != 3:
        raise ValueError(f"present and absent ROIs must be equal [n, size, size] stacks, got "
                         f"{present_rois.shape} and {absent_rois.shape}")
    channels = observers.laguerre_gauss_channels(
        present_rois.shape[1], CHANNEL_WIDTH_PER_DIAMETER * diameter_px, n_channels)
    n = len(present_rois)
    return observers.cho_study(remove_dc(present_rois), remove_dc(absent_rois), channels,
                               bootstrap.Clusters.singletons(n), readers, resamples, seed)


def insert_key(insert) -> str:
    return f"{insert.diameter_mm:g}mm_{insert.contrast_hu:g}HU"


def read_set(present: np.ndarray, absent: np.ndarray, inserts, water: np.ndarray, *,
             n_channels: int, readers: int, resamples: int, seed: int) -> dict:
    """One set at one dose: the per-insert observer and the noise SD (HU) in the water disk of
    the absent images (mean over images, with its bootstrap interval)."""
    size = roi_size(inserts)
    out = {"inserts": {}}
    for ins in inserts:
        out["inserts"][insert_key(ins)] = insert_observer(
            insert_rois(present, ins, size), insert_rois(absent, ins, size), ins.diameter_px,
            n_channels=n_channels, readers=readers, resamples=resamples, seed=seed)
    sds = absent[:, water].std(axis=1)
    out["noise_sd_hu"] = bootstrap.mean_with_interval(sds, resamples,
                                                      np.random.default_rng([seed, 0x5D]))
    return out


def add_paired_differences(results: dict, reference: str = "ldct") -> None:
    """``minus_ldct`` (d' and AUC, paired bootstrap) on every insert of every other set."""
    if reference not in results:
        return
    for name, result in results.items():
        if name == reference:
            continue
        for key, reading in result["inserts"].items():
            base = results[reference]["inserts"][key]
            reading[f"minus_{reference}"] = {
                stat: observers.paired_difference(reading, base, stat)
                for stat in ("dprime", "auc")}


# --- imaging ------------------------------------------------------------------------------------

def dose_key(dose_fraction: float) -> int:
    """The integer that seeds a dose's realisations (micro-units of dose)."""
    return int(round(dose_fraction * 1e6))


@dataclass(frozen=True, eq=False)  # arrays inside: identity, not value, equality
class Study:
    """What every dose and set shares: the phantom on its grid, the scanner, the water disk, the
    observer's settings and the realisations' seed."""

    present: np.ndarray  # the objects, HU
    absent: np.ndarray
    inserts: tuple
    spacing_mm: float
    scanner: dict  # `simulate.scan` keywords
    realizations: int
    seed: int
    reading: dict  # `read_set` keywords
    water: np.ndarray  # boolean mask

    def image(self, dose: float) -> tuple[np.ndarray, np.ndarray]:
        """``(present, absent)`` ``[n, size, size]`` stacks at ``dose``; every image its own
        seed ``[seed, dose_key(dose), class, i]``."""
        return tuple(lcd_phantom.scan_realisations(obj, self.spacing_mm, dose, self.realizations,
                                                   [self.seed, dose_key(dose), cls],
                                                   **self.scanner)
                     for obj, cls in ((self.present, 1), (self.absent, 0)))

    def read(self, images: tuple[np.ndarray, np.ndarray]) -> dict:
        return read_set(*images, self.inserts, self.water, **self.reading)


def scanner_settings(config: Config) -> dict:
    """`simulate.scan` keywords: the config's scanner with the training data's view count."""
    kwargs = config.scanner.simulate_kwargs()
    kwargs["n_views"] = kwargs["n_views"] or default_n_views(config.data.image_size)
    return kwargs


def build_study(config: Config, realizations: int, seed: int, size: int) -> Study:
    spacing = config.data.pixel_spacing_mm
    size = size or lcd_phantom.minimum_size(spacing)
    try:
        present, absent, inserts = lcd_phantom.lcd_phantom(size, spacing)
    except ValueError as exc:
        raise LdctError(f"--size {size}: {exc}") from None
    reading = dict(n_channels=config.evaluate.cho_channels, readers=LCD_READERS,
                   resamples=config.evaluate.resamples, seed=seed)
    return Study(present, absent, inserts, spacing, scanner_settings(config), realizations, seed,
                 reading, lcd_phantom.water_roi(size, spacing))


# --- the step -----------------------------------------------------------------------------------

def run(config: Config, workdir: Path, doses=DEFAULT_DOSES,
        realizations: int = DEFAULT_REALIZATIONS, seed: int | None = None, size: int = 0) -> dict:
    """Image, denoise, read and write the report; returns the ``lcd.json`` content."""
    _check_run(doses, realizations, size)
    workdir = Path(workdir)
    seed = config.evaluate.seed if seed is None else int(seed)
    study = build_study(config, realizations, seed, size)
    networks, skipped = trained_networks(workdir)
    by_dose, examples, seconds = measure(study, doses, networks)
    report = _summary(config, study, by_dose, skipped, seconds)
    out = Workdir(workdir).lcd
    out.mkdir(parents=True, exist_ok=True)
    cli.save_config(config, workdir, out)
    atomic.write_json(out / JSON_FILE, jsonable(report))
    atomic.write_text(out / MARKDOWN_FILE, markdown(report))
    write_auc_figure(report, out / FIGURE_FILE)
    write_image_figure(examples, study.inserts, study.spacing_mm, out / IMAGES_FILE)
    print(f"lcd: {out / MARKDOWN_FILE} (and {JSON_FILE}, {FIGURE_FILE}, {IMAGES_FILE})")
    return report


def measure(study: Study, doses, networks: dict) -> tuple[dict, dict, dict]:
    """Per dose the readings of every set (``{"dose_fraction", "sets"}``), one signal-present
    image per set, and the seconds per scanned and per denoised image."""
    started = time.time()
    n = 2 * study.realizations
    ndct = study.image(1.0)
    scan_s = (time.time() - started) / n
    _progress(f"ndct (full dose): {n} images of {study.present.shape[0]} px in "
              f"{time.time() - started:.0f} s ({scan_s:.2f} s per image)")
    ndct_reading = study.read(ndct)
    by_dose, examples, denoise_s = {}, {}, []
    for dose in doses:
        t0 = time.time()
        ldct = study.image(dose)
        _progress(f"dose {dose:g}: ldct {n} images in {time.time() - t0:.0f} s")
        # a copy: each dose adds its own paired differences to NDCT's readings
        results = {"ldct": study.read(ldct), "ndct": copy.deepcopy(ndct_reading)}
        shown = {"ldct": ldct[0][0], "ndct": ndct[0][0]}
        for name, network in networks.items():
            t0 = time.time()
            denoised = tuple(_denoise(network, stack) for stack in ldct)
            denoise_s.append((time.time() - t0) / n)
            results[name], shown[name] = study.read(denoised), denoised[0][0]
            _progress(f"dose {dose:g}: {name} denoised and read in {time.time() - t0:.0f} s")
        add_paired_differences(results)
        by_dose[f"{dose:g}"] = {"dose_fraction": dose, "sets": results}
        examples[f"{dose:g}"] = shown
        _progress(f"dose {dose:g}: AUC by insert (" + ", ".join(
            insert_key(i) for i in study.inserts) + "): " + "; ".join(
            f"{name} " + "/".join(f"{r['auc']:.2f}" for r in res["inserts"].values())
            for name, res in results.items()))
    seconds = {"scan_per_image": scan_s, "total": time.time() - started}
    if denoise_s:
        seconds["denoise_per_image"] = float(np.mean(denoise_s))
    return by_dose, examples, seconds


def _summary(config: Config, study: Study, by_dose: dict, skipped: dict, seconds: dict) -> dict:
    """The ``lcd.json`` content (the bootstrap replicates left out)."""
    return {
        "phantom": {"size_px": study.present.shape[0], "pixel_spacing_mm": study.spacing_mm,
                    "cylinder_diameter_mm": lcd_phantom.CYLINDER_DIAMETER_MM,
                    "insert_circle_radius_mm": lcd_phantom.INSERT_CIRCLE_RADIUS_MM,
                    "water_roi_radius_mm": lcd_phantom.WATER_ROI_RADIUS_MM,
                    "inserts": {insert_key(i): i.to_dict() for i in study.inserts}},
        "observer": {"channels": study.reading["n_channels"],
                     "channel_width": "2/3 of the insert diameter (px)",
                     "roi_size_px": roi_size(study.inserts), "readers": LCD_READERS,
                     "resamples": study.reading["resamples"], "seed": study.seed,
                     "roi_mean_removed": True, "auc": "Phi(d'/sqrt 2)"},
        "realizations": study.realizations, "scanner": study.scanner,
        "trained_dose_fraction": config.data.simulated_dose_fraction,
        "doses": _without_boot(by_dose), "skipped": skipped,
        "seconds": {k: round(v, 3) for k, v in seconds.items()}}


def _denoise(network, stack: np.ndarray) -> np.ndarray:
    return np.stack(denoise(network, list(stack), batch=8))


def _without_boot(value):
    """``value`` without the bootstrap replicate arrays (kept in memory for the paired
    differences, too long for the JSON)."""
    if isinstance(value, dict):
        return {k: _without_boot(v) for k, v in value.items() if k != "boot"}
    return value


def _check_run(doses, realizations: int, size: int) -> None:
    if not doses:
        raise LdctError("--dose needs at least one dose fraction, e.g. --dose 0.25 0.1")
    bad = [d for d in doses if not 0 < d <= 1]
    if bad:
        raise LdctError(f"--dose values must be in (0, 1] (fractions of full dose), got {bad}")
    if realizations < MIN_REALIZATIONS:
        raise LdctError(f"--realizations must be >= {MIN_REALIZATIONS} (half train, half test per "
                        f"split), got {realizations}")
    if size < 0:
        raise LdctError(f"--size must be 0 (the smallest grid holding the phantom) or a pixel "
                        f"count, got {size}")


def _progress(message: str) -> None:
    print(f"lcd: {message}", file=sys.stderr, flush=True)


# --- the report ---------------------------------------------------------------------------------

def _fmt(value, ci, digits: int) -> str:
    """``value [low, high]``; NaN or missing parts shown as n/a."""
    def one(v):
        return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"

    low, high = ci if ci is not None else (None, None)
    return f"{one(value)} [{one(low)}, {one(high)}]"


def _interval(reading: dict, key: str = "auc", digits: int = 3) -> str:
    return _fmt(reading.get(key), reading.get(f"{key}_ci95"), digits)


def markdown(report: dict) -> str:
    """``lcd.md``: a table per dose, rows the sets, columns the noise SD and each insert's AUC."""
    phantom, obs = report["phantom"], report["observer"]
    keys = list(phantom["inserts"])
    lines = ["# Low-contrast detectability: MITA-LCD-like phantom", "",
             f"200 mm water cylinder, inserts {', '.join(k.replace('_', ' ') for k in keys)}; "
             f"{phantom['size_px']} px at {phantom['pixel_spacing_mm']} mm; "
             f"{report['realizations']} signal-present and {report['realizations']} "
             "signal-absent images per dose (independent noise). LG-CHO as in the FDA LCD-CT "
             f"toolbox: {obs['channels']} Laguerre-Gauss channels of width 2/3 of the insert "
             f"diameter, {obs['roi_size_px']} px ROIs (mean removed), mean over "
             f"{obs['readers']} half/half splits; AUC = Phi(d'/sqrt 2). Brackets: 95 % bootstrap "
             f"intervals over the realisations ({obs['resamples']} resamples). Noise: SD (HU) in "
             f"the central {phantom['water_roi_radius_mm']:g} mm water disk of the absent images. "
             + _trained_at(report.get("trained_dose_fraction")), ""]
    header = ["set", "noise SD (HU)"] + [f"AUC {k.replace('_', ' ')}" for k in keys]
    for dose_name, dose in report["doses"].items():
        lines += [f"## Dose {dose_name} (NDCT: full dose)", "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)]
        for name in ordered(dose["sets"]):
            result = dose["sets"][name]
            noise = result["noise_sd_hu"]
            row = [label(name), _fmt(noise["value"], noise["ci95"], 1)]
            row += [_interval(result["inserts"][k]) for k in keys]
            lines.append("| " + " | ".join(row) + " |")
        lines += ["", "d' by insert:", "", "| set | " + " | ".join(
            k.replace("_", " ") for k in keys) + " |", "|" + "---|" * (len(keys) + 1)]
        for name in ordered(dose["sets"]):
            lines.append(f"| {label(name)} | " + " | ".join(
                _interval(dose["sets"][name]["inserts"][k], "dprime", 2) for k in keys) + " |")
        lines.append("")
    if report["skipped"]:
        lines += ["Not evaluated:", ""] + [f"- {n}: {why}" for n, why in
                                           report["skipped"].items()] + [""]
    lines += [f"![AUC per insert]({FIGURE_FILE})", "", f"![one signal-present image per set]"
              f"({IMAGES_FILE})", ""]
    return "\n".join(lines)


def _trained_at(dose_fraction: float | None) -> str:
    if dose_fraction is None:
        return "The networks were trained on real low-dose scans of unknown dose."
    return f"The networks were trained at dose {dose_fraction:g}."


def write_auc_figure(report: dict, path: Path) -> Path:
    """AUC per insert with 95 % intervals, one line per set, one panel per dose."""
    plt = pyplot()
    doses = report["doses"]
    keys = list(report["phantom"]["inserts"])
    fig, axes = plt.subplots(1, len(doses), figsize=(5.0 * len(doses), 4.0), squeeze=False,
                             sharey=True)
    for ax, (dose_name, dose) in zip(axes[0], doses.items()):
        names = ordered(dose["sets"])
        for k, name in enumerate(names):
            readings = [dose["sets"][name]["inserts"][key] for key in keys]
            x = np.arange(len(keys)) + 0.06 * (k - (len(names) - 1) / 2)
            auc = np.array([r["auc"] for r in readings], float)
            ci = np.array([r["auc_ci95"] for r in readings], float)
            ax.errorbar(x, auc, yerr=[auc - ci[:, 0], ci[:, 1] - auc], marker="o", capsize=3,
                        label=label(name))
        ax.set_xticks(range(len(keys)), [k.replace("_", "\n") for k in keys])
        ax.set_title(f"dose {dose_name}")
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("insert")
    axes[0][0].set_ylabel("LG-CHO AUC (95 % interval)")
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    return save(fig, path)


def write_image_figure(examples: dict, inserts, spacing: float, path: Path) -> Path:
    """One signal-present image per set (columns) and dose (rows), central region, narrow window
    `DISPLAY_WINDOW_HU`, each insert circled (radius + 2 px)."""
    plt = pyplot()
    rows = list(examples)
    names = ordered(examples[rows[0]])
    image = examples[rows[0]][names[0]]
    centre = (image.shape[0] - 1) / 2.0
    half = int((lcd_phantom.INSERT_CIRCLE_RADIUS_MM + 12.0) / spacing)
    lo, hi = int(centre) - half, int(centre) + half + 1
    fig, axes = plt.subplots(len(rows), len(names), figsize=(2.4 * len(names), 2.5 * len(rows)),
                             squeeze=False)
    for r, dose_name in enumerate(rows):
        for c, name in enumerate(names):
            ax = axes[r][c]
            ax.imshow(examples[dose_name][name][lo:hi, lo:hi], cmap="gray",
                      vmin=DISPLAY_WINDOW_HU[0], vmax=DISPLAY_WINDOW_HU[1])
            for ins in inserts:
                ax.add_patch(plt.Circle((ins.col - lo, ins.row - lo), ins.radius_px + 2.0,
                                        fill=False, color="tab:red", lw=0.8))
            dose = "full dose" if name == "ndct" else f"dose {dose_name}"
            ax.set_title(f"{label(name)}, {dose}", fontsize=8)
            ax.axis("off")
    fig.suptitle(f"window [{DISPLAY_WINDOW_HU[0]:g}, {DISPLAY_WINDOW_HU[1]:g}] HU", fontsize=9)
    return save(fig, path)


# --- command line -------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = cli.base_parser(
        "python -m ldct_tf.evaluate.lcd",
        "Low-contrast detectability (LG-CHO per insert) on a MITA-LCD-like phantom at each dose, "
        "for LDCT, NDCT and every trained network of the work directory.")
    parser.add_argument("--dose", type=float, nargs="+", default=list(DEFAULT_DOSES),
                        help="dose fractions of the LDCT images (default 0.25 0.1)")
    parser.add_argument("--realizations", type=int, default=DEFAULT_REALIZATIONS,
                        help="signal-present and as many signal-absent images per dose "
                             f"(default {DEFAULT_REALIZATIONS})")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the noise, splits and bootstrap (default evaluate.seed)")
    parser.add_argument("--size", type=int, default=0,
                        help="phantom grid, pixels (default 0: the smallest grid holding the "
                             "200 mm cylinder at data.pixel_spacing_mm)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_run(args.dose, args.realizations, args.size)  # before resolve creates the workdir
    config, workdir = cli.resolve(args)
    with cli.claim(workdir, parser.prog, argv):
        run(config, workdir, tuple(args.dose), args.realizations, args.seed, args.size)
    return 0


if __name__ == "__main__":
    cli.quiet_startup()
    sys.exit(run_cli(main))
