"""Pair the full-dose and low-dose series of one scan by slice position (the Mayo/TCIA
"LDCT-and-Projection-data" layout: one folder per patient holding a full-dose and a quarter-dose
series side by side).
"""

from __future__ import annotations

import collections
import math
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ldct_tf.dicom.series import CtSeries, PairedSeries, ReadResult
from ldct_tf.errors import LdctError

PAIR_SPACING_TOLERANCE_MM = 1e-3


DEFAULT_PAIR_TOLERANCE_MM = 0.5


def blind_noise_sd_hu(hu: np.ndarray) -> float:
    """Robust noise standard deviation in HU of a (slices, rows, cols) or (rows, cols) image.

    The 5-point Laplacian residual of white noise of std s has std s*sqrt(20); its median absolute
    deviation (x1.4826 for a normal distribution) ignores the few large values at edges.
    """
    img = np.asarray(hu, dtype=np.float64)
    if img.ndim == 2:
        img = img[None]
    if img.ndim != 3 or min(img.shape[1:]) < 3:
        raise ValueError(f"hu must be (slices, rows, cols) with rows, cols >= 3, got {img.shape}")
    centre = img[:, 1:-1, 1:-1]
    residual = (
        4.0 * centre - img[:, :-2, 1:-1] - img[:, 2:, 1:-1] - img[:, 1:-1, :-2] - img[:, 1:-1, 2:]
    )
    mad = np.median(np.abs(residual - np.median(residual)))
    return float(1.4826 * mad / math.sqrt(20.0))


def pair_series(
    full: CtSeries, low: CtSeries, tolerance_mm: float | None = None
) -> PairedSeries:
    """Match the slices of a full-dose and a low-dose series of one scan by position.

    Every slice of each series must match exactly one slice of the other within `tolerance_mm`
    along the slice normal (default: half the thinner slice thickness, or 0.5 mm when neither
    series has one). Raises LdctError for differing slice shape, pixel spacing, orientation or
    slice set; ValueError for a non-positive tolerance.
    """
    tol = _pair_tolerance(full, low, tolerance_mm)
    _check_pairable(full, low)
    full_idx, low_idx = _match_positions(full.positions_mm, low.positions_mm, tol)
    unmatched_full = full.n_slices - len(full_idx)
    unmatched_low = low.n_slices - len(low_idx)
    if unmatched_full or unmatched_low:
        raise LdctError(
            f"slice sets differ: full-dose series {full.series_key} has {full.n_slices} slices, "
            f"low-dose series {low.series_key} has {low.n_slices}; {len(full_idx)} matched within "
            f"{tol:g} mm ({unmatched_full} full-dose and {unmatched_low} low-dose slices "
            "unmatched); pair series of the same scan range or pass a larger tolerance_mm"
        )
    return PairedSeries(
        ndct_hu=full.hu[full_idx],
        ldct_hu=low.hu[low_idx],
        positions_mm=full.positions_mm[full_idx],
        series_key=full.series_key,
        low_series_key=low.series_key,
        patient_key=full.patient_key,
        pixel_spacing_mm=full.pixel_spacing_mm,
        slice_thickness_mm=full.slice_thickness_mm,
        full_indices=[int(i) for i in full_idx],
        low_indices=[int(j) for j in low_idx],
    )


def _pair_tolerance(full: CtSeries, low: CtSeries, tolerance_mm: float | None) -> float:
    if tolerance_mm is not None:
        try:
            tol = float(tolerance_mm)
        except (TypeError, ValueError):
            tol = math.nan
        if not (math.isfinite(tol) and tol > 0):
            raise ValueError(f"tolerance_mm must be a positive number of mm, got {tolerance_mm!r}")
        return tol
    thicknesses = [t for t in (full.slice_thickness_mm, low.slice_thickness_mm) if t]
    return min(thicknesses) / 2.0 if thicknesses else DEFAULT_PAIR_TOLERANCE_MM


def _check_pairable(full: CtSeries, low: CtSeries) -> None:
    """Raise LdctError unless both series have geometry and the same slice grid."""
    names = f"full-dose series {full.series_key} and low-dose series {low.series_key}"
    if full.shape[1:] != low.shape[1:]:
        raise LdctError(
            f"{names} have different slice shapes ({full.shape[1]}x{full.shape[2]} and "
            f"{low.shape[1]}x{low.shape[2]} pixels); pair reconstructions of the same size"
        )
    spacing_atol = PAIR_SPACING_TOLERANCE_MM
    if not np.allclose(full.pixel_spacing_mm, low.pixel_spacing_mm, rtol=0, atol=spacing_atol):
        raise LdctError(
            f"{names} have different pixel spacings ({full.pixel_spacing_mm} and "
            f"{low.pixel_spacing_mm} mm); pair reconstructions with the same field of view"
        )
    if not (full.has_geometry and low.has_geometry):
        raise LdctError(
            f"{names}: slice positions are missing (ImagePositionPatient/ImageOrientationPatient), "
            "so slices cannot be matched; use series with slice geometry"
        )
    if not np.allclose(full.image_orientation, low.image_orientation, rtol=0, atol=1e-3):
        raise LdctError(f"{names} have different slice orientations; pair series of the same scan")


def _match_positions(a: np.ndarray, b: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j) of one-to-one nearest matches |a[i] - b[j]| <= tol; both inputs sorted."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    right = np.clip(np.searchsorted(b, a), 0, len(b) - 1)
    left = np.clip(right - 1, 0, len(b) - 1)
    nearest = np.where(np.abs(b[left] - a) <= np.abs(b[right] - a), left, right)
    ok = np.abs(b[nearest] - a) <= tol
    # A low-dose slice claimed by two full-dose slices matches neither: the grids disagree.
    claims = collections.Counter(nearest[ok].tolist())
    ok &= np.array([claims[j] == 1 for j in nearest.tolist()])
    return np.flatnonzero(ok), nearest[ok]


def find_dose_pairs(result: ReadResult, labels: Callable[[str], str] | None = None
                    ) -> list[PairedSeries]:
    """Pair each patient's full-dose and low-dose series (Mayo/TCIA LDCT-and-Projection-data).

    Series are grouped by patient_key (series without PatientID by their parent's parent folder).
    Full and low dose are told apart by dose_hint; when hints are missing, a series pairs with the
    other role, and with no hint at all the noisier series (`blind_noise_sd_hu`) is the low dose.
    Raises LdctError naming each failing patient folder (by `labels` of its path when given, else
    relative to `result.root`; never the patient ID) when a patient does not have exactly one
    full-dose and one low-dose series, or when their slices do not pair (see `pair_series`).
    Returns PairedSeries sorted by folder.
    """
    groups = _patient_groups(result, labels)
    pairs: list[PairedSeries] = []
    problems: list[str] = []
    for i, (folder, series) in enumerate(groups, start=1):
        where = f"patient folder {folder!r} (patient {i} of {len(groups)})"
        roles = _assign_roles(series)
        if isinstance(roles, str):
            problems.append(f"{where} {roles}; keep one full-dose and one low-dose series")
            continue
        try:
            pairs.append(pair_series(*roles))
        except LdctError as exc:
            problems.append(f"{where}: {exc}")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise LdctError(
            f"{len(problems)} of {len(groups)} patients could not be paired: "
            f"{'; '.join(problems[:3])}{more}"
        )
    return pairs


def _patient_groups(result: ReadResult, labels: Callable[[str], str] | None = None
                    ) -> list[tuple[str, list[CtSeries]]]:
    """(patient folder relative to the root or by `labels`, its series) sorted by folder."""
    root = Path(result.root)
    by_key: dict[str, list[CtSeries]] = collections.defaultdict(list)
    for s in result.series:
        by_key[patient_group_key(s.patient_key, s.source_paths)].append(s)
    groups = []
    for series in by_key.values():
        common = Path(os.path.commonpath([str(_series_folder(s)) for s in series]))
        rel = labels(str(common)) if labels else os.path.relpath(common, root)
        groups.append((rel, sorted(series, key=lambda s: s.series_key)))
    return sorted(groups, key=lambda g: (g[0], g[1][0].series_key))


def patient_group_key(patient_key: str | None, paths: Sequence[str]) -> str:
    """What the series of one patient share: the anonymous patient key or, for series without a
    PatientID, the folder above the series folder (the Mayo/TCIA layout). Pairing and splits by
    patient both group by it."""
    if patient_key:
        return f"patient:{patient_key}"
    return f"folder:{_common_folder(paths).parent}"


def _series_folder(s: CtSeries) -> Path:
    return _common_folder(s.source_paths)


def _common_folder(paths: Sequence[str]) -> Path:
    return Path(os.path.commonpath([str(Path(p).parent) for p in paths]))


def _assign_roles(series: list[CtSeries]) -> tuple[CtSeries, CtSeries] | str:
    """(full, low), or a description of what was found instead."""
    full = [s for s in series if s.dose_hint == "full"]
    low = [s for s in series if s.dose_hint == "low"]
    unknown = [s for s in series if s.dose_hint is None]
    found = f"has {len(full)} full-dose, {len(low)} low-dose and {len(unknown)} unlabelled series"
    if len(series) != 2 or len(full) > 1 or len(low) > 1:
        return found
    if len(unknown) == 1:
        return (full[0], unknown[0]) if full else (unknown[0], low[0])
    if len(unknown) == 2:
        a, b = unknown
        noise_a, noise_b = blind_noise_sd_hu(a.hu), blind_noise_sd_hu(b.hu)
        if noise_a == noise_b:
            return found + " with equal noise, so full and low dose cannot be told apart"
        return (a, b) if noise_a < noise_b else (b, a)
    return full[0], low[0]
