"""What the reader returns, and how frames become series.

`CtSeries` (HU volume plus geometry, no identity), `ReadResult` (series and the skipped files),
`PairedSeries` (matched full- and low-dose slices) and the assembly of read frames into series:
majority size, spacing and orientation, ordering along the slice normal, duplicate positions
(DICOM PS3.3 C.7.6.2).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ldct_tf import atomic
from ldct_tf.errors import LdctError

# Slices of one series closer than this along the normal are the same slice reconstructed twice.
DUPLICATE_POSITION_MM = 0.01


# Direction cosines and pixel spacings are compared after rounding, as writers print DS values
# with differing numbers of digits.
_ORIENTATION_DECIMALS = 4


_SPACING_DECIMALS = 4


@dataclasses.dataclass(frozen=True, eq=False)
class CtSeries:
    """One CT series as a HU volume plus geometry; holds no patient-identifying value.

    Attributes:
        hu: float32 array (slices, rows, cols) in Hounsfield units, ordered by `positions_mm`.
        pixel_spacing_mm: (row_spacing, col_spacing) in mm, DICOM PixelSpacing order.
        slice_thickness_mm: nominal reconstructed slice thickness in mm, or None when absent.
        positions_mm: float64 (slices,) position of each slice along the slice normal in mm
            (ImagePositionPatient dotted with the normal); all NaN when the series has no geometry
            and is ordered by InstanceNumber instead.
        image_positions_mm: float64 (slices, 3) ImagePositionPatient in mm, or None.
        image_orientation: the six ImageOrientationPatient direction cosines, or None.
        kvp: peak tube voltage in kV, or None.
        convolution_kernel: reconstruction kernel name (e.g. "B30f"), or None.
        series_key: salted SHA-256 of SeriesInstanceUID, first 16 hex characters.
        patient_key: salted SHA-256 of PatientID (same form), or None when PatientID is empty.
        dose_hint: "full", "low" or None, from SeriesDescription or folder-name keywords.
        source_paths: file path of each slice (in memory only, to re-read headers later).
        frame_indices: frame number of each slice inside its file; 0 for single-frame files.
    """

    hu: np.ndarray = dataclasses.field(repr=False)
    pixel_spacing_mm: tuple[float, float]
    slice_thickness_mm: float | None
    positions_mm: np.ndarray = dataclasses.field(repr=False)
    image_positions_mm: np.ndarray | None = dataclasses.field(repr=False)
    image_orientation: tuple[float, ...] | None = dataclasses.field(repr=False)
    kvp: float | None
    convolution_kernel: str | None
    series_key: str
    patient_key: str | None
    dose_hint: str | None
    source_paths: list[str] = dataclasses.field(repr=False)
    frame_indices: list[int] = dataclasses.field(repr=False)

    def __post_init__(self) -> None:
        if self.hu.ndim != 3:
            raise ValueError(f"hu must be (slices, rows, cols), got shape {self.hu.shape}")
        n = self.hu.shape[0]
        lengths = {len(self.positions_mm), len(self.source_paths), len(self.frame_indices)}
        if lengths != {n}:
            raise ValueError(f"per-slice lists must all have {n} entries, got lengths {lengths}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(slices, rows, cols) in pixels."""
        slices, rows, cols = (int(n) for n in self.hu.shape)
        return slices, rows, cols

    @property
    def n_slices(self) -> int:
        """Number of slices."""
        return int(self.hu.shape[0])

    @property
    def has_geometry(self) -> bool:
        """True when slices are ordered by position (not by InstanceNumber)."""
        return bool(np.all(np.isfinite(self.positions_mm)))

    def geometry(self) -> dict[str, Any]:
        """Plain JSON-able geometry record (mm, kV); no pixel data and no source paths."""
        return {
            "series_key": self.series_key,
            "patient_key": self.patient_key,
            "dose_hint": self.dose_hint,
            "n_slices": self.n_slices,
            "rows": int(self.hu.shape[1]),
            "columns": int(self.hu.shape[2]),
            "pixel_spacing_mm": list(self.pixel_spacing_mm),
            "slice_thickness_mm": self.slice_thickness_mm,
            "positions_mm": [None if math.isnan(p) else float(p) for p in self.positions_mm],
            "image_positions_mm": (
                None if self.image_positions_mm is None else self.image_positions_mm.tolist()
            ),
            "image_orientation": (
                None if self.image_orientation is None else list(self.image_orientation)
            ),
            "kvp": self.kvp,
            "convolution_kernel": self.convolution_kernel,
        }


@dataclasses.dataclass(frozen=True, eq=False)
class ReadResult:
    """What `read_ct_series` found: usable series and the files (or frames) it skipped.

    Attributes:
        series: CtSeries sorted by series_key.
        skipped: (path, reason) per skipped file or frame; reasons never quote header values.
        root: the folder the walk started from (the file's folder when a file was given).
    """

    series: list[CtSeries]
    skipped: list[tuple[str, str]]
    root: str

    def write_quarantine(self, path: str | os.PathLike) -> Path:
        """Write the skipped list as JSON `[{"path": ..., "reason": ...}, ...]`, whole or not at
        all (`ldct_tf.atomic`); return the path."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        records = [{"path": p, "reason": r} for p, r in self.skipped]
        return atomic.write_text(out, json.dumps(records, indent=2) + "\n")

    def reasons_summary(self) -> dict[str, int]:
        """Number of skipped files per kind of reason (the reason up to its first ':' or ';')."""
        return dict(collections.Counter(reason_kind(r) for _, r in self.skipped).most_common())


class NoUsableSliceError(LdctError):
    """No usable CT slice under a path; `.skipped` holds (path, reason) for every file."""

    def __init__(self, message: str, skipped: list[tuple[str, str]]):
        super().__init__(message)
        self.skipped = skipped


@dataclasses.dataclass(frozen=True, eq=False)
class PairedSeries:
    """Matched slices of a full-dose (NDCT) and a low-dose (LDCT) series of one scan.

    Attributes:
        ndct_hu: float32 (slices, rows, cols) full-dose HU.
        ldct_hu: float32 (slices, rows, cols) low-dose HU, slice k matching ndct_hu[k].
        positions_mm: float64 (slices,) full-dose slice positions along the normal in mm.
        series_key: key of the full-dose series.
        low_series_key: key of the low-dose series.
        patient_key: salted PatientID key (of the full-dose series), or None.
        pixel_spacing_mm: (row_spacing, col_spacing) in mm.
        slice_thickness_mm: full-dose slice thickness in mm, or None.
        full_indices: slice index in the full-dose series of each pair.
        low_indices: slice index in the low-dose series of each pair.
    """

    ndct_hu: np.ndarray = dataclasses.field(repr=False)
    ldct_hu: np.ndarray = dataclasses.field(repr=False)
    positions_mm: np.ndarray = dataclasses.field(repr=False)
    series_key: str
    low_series_key: str
    patient_key: str | None
    pixel_spacing_mm: tuple[float, float]
    slice_thickness_mm: float | None
    full_indices: list[int] = dataclasses.field(repr=False)
    low_indices: list[int] = dataclasses.field(repr=False)

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """(full-dose index, low-dose index) of each matched slice."""
        return list(zip(self.full_indices, self.low_indices))

    @property
    def n_slices(self) -> int:
        """Number of matched slices."""
        return int(self.ndct_hu.shape[0])

    def geometry(self) -> dict[str, Any]:
        """Plain JSON-able record of the pair (keys, sizes, mm); no pixel data, no paths."""
        return {
            "series_key": self.series_key,
            "low_series_key": self.low_series_key,
            "patient_key": self.patient_key,
            "n_slices": self.n_slices,
            "rows": int(self.ndct_hu.shape[1]),
            "columns": int(self.ndct_hu.shape[2]),
            "pixel_spacing_mm": list(self.pixel_spacing_mm),
            "slice_thickness_mm": self.slice_thickness_mm,
            "positions_mm": [float(p) for p in self.positions_mm],
            "pairs": [list(p) for p in self.pairs],
        }


@dataclasses.dataclass
class Frame:
    """One usable frame of one file, already anonymised (internal)."""

    path: str
    frame: int
    multiframe: bool
    series_key: str
    patient_key: str | None
    dose_hint: str | None
    instance: int | None
    rows: int
    cols: int
    spacing: tuple[float, float]
    thickness: float | None
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    kvp: float | None
    kernel: str | None
    hu: np.ndarray


def reason_kind(reason: str) -> str:
    return re.split(r"[:;]", reason, maxsplit=1)[0].strip()


def assemble_series(frames: list[Frame], skipped: list[tuple[str, str]]) -> list[CtSeries]:
    """Group frames by series_key and build each series; rejected frames go to `skipped`."""
    groups: dict[str, list[Frame]] = collections.defaultdict(list)
    for fr in frames:
        groups[fr.series_key].append(fr)
    return [_assemble(groups[key], skipped) for key in sorted(groups)]


def _assemble(frames: list[Frame], skipped: list[tuple[str, str]]) -> CtSeries:
    """One CtSeries from the frames of one series: majority shape and spacing, ordered, unique."""
    frames = _keep_majority(
        frames, skipped, lambda fr: (fr.rows, fr.cols), "inconsistent rows/columns",
        lambda k: f"{k[0]}x{k[1]} pixels",
    )
    frames = _keep_majority(
        frames, skipped, lambda fr: tuple(round(s, _SPACING_DECIMALS) for s in fr.spacing),
        "inconsistent pixel spacing", lambda k: f"{k[0]:g}x{k[1]:g} mm",
    )
    frames, normal = _keep_geometric(frames, skipped)
    if normal is None:
        ordered = sorted(frames, key=_instance_order)
        positions = np.full(len(ordered), np.nan)
    else:
        ordered = _dedupe_positions(frames, normal, skipped)
        positions = np.array([np.dot(fr.position, normal) for fr in ordered], dtype=np.float64)
    return _build_series(ordered, positions, has_geometry=normal is not None)


def _keep_majority(
    frames: list[Frame],
    skipped: list[tuple[str, str]],
    key: Callable[[Frame], tuple],
    what: str,
    describe: Callable[[tuple], str],
) -> list[Frame]:
    """Keep frames whose `key` is the most common (ties: the first seen); skip the others."""
    counts = collections.Counter(key(fr) for fr in frames)
    winner = max(counts, key=lambda k: counts[k])  # max keeps the first of equal counts
    for fr in frames:
        if key(fr) != winner:
            skipped.append(
                (fr.path, f"{what}: {_frame_label(fr)}{describe(key(fr))}, the series majority "
                 f"is {describe(winner)}; slice skipped")
            )
    return [fr for fr in frames if key(fr) == winner]


def _keep_geometric(
    frames: list[Frame], skipped: list[tuple[str, str]]
) -> tuple[list[Frame], np.ndarray | None]:
    """Frames sharing the majority orientation, and its unit normal; (frames, None) when fewer
    than half the frames have a position and orientation (they are then ordered by InstanceNumber).

    PS3.3 C.7.6.2.1.1: the slice normal is the cross product of the row and column cosines.
    """
    with_geometry = [fr for fr in frames if fr.position is not None and fr.orientation is not None]
    if not with_geometry or 2 * len(with_geometry) < len(frames):
        return frames, None
    for fr in frames:
        if fr.position is None or fr.orientation is None:
            skipped.append(
                (fr.path, f"missing slice geometry: {_frame_label(fr)}no ImagePositionPatient or "
                 "ImageOrientationPatient while the rest of the series has them")
            )
    kept = _keep_majority(
        with_geometry, skipped,
        lambda fr: tuple(round(c, _ORIENTATION_DECIMALS) for c in fr.orientation),
        "inconsistent orientation", lambda k: "direction cosines " + " ".join(f"{c:g}" for c in k),
    )
    cosines = np.asarray(kept[0].orientation, dtype=np.float64)
    normal = np.cross(cosines[:3], cosines[3:])
    return kept, normal / np.linalg.norm(normal)


def _instance_order(fr: Frame) -> tuple:
    """Order by InstanceNumber (missing last), then file path and frame number."""
    return (fr.instance is None, fr.instance or 0, fr.path, fr.frame)


def _dedupe_positions(
    frames: list[Frame], normal: np.ndarray, skipped: list[tuple[str, str]]
) -> list[Frame]:
    """Frames sorted along `normal`; of several at one position keep the lowest InstanceNumber."""
    ordered = sorted(frames, key=lambda fr: (_along(fr, normal),) + _instance_order(fr))
    clusters: list[list[Frame]] = []
    for fr in ordered:
        gap = _along(fr, normal) - _along(clusters[-1][0], normal) if clusters else math.inf
        if gap <= DUPLICATE_POSITION_MM:
            clusters[-1].append(fr)
        else:
            clusters.append([fr])
    return [_keep_first(cluster, normal, skipped) for cluster in clusters]


def _along(fr: Frame, normal: np.ndarray) -> float:
    return float(np.dot(fr.position, normal))


def _keep_first(
    cluster: list[Frame], normal: np.ndarray, skipped: list[tuple[str, str]]
) -> Frame:
    """The first frame of a same-position cluster by InstanceNumber; the rest are skipped."""
    first = min(cluster, key=_instance_order)
    for fr in cluster:
        if fr is not first:
            reason = (
                f"duplicate slice position: {_frame_label(fr)}{_along(fr, normal):.3f} mm along "
                f"the normal, like the slice with InstanceNumber {first.instance}, which is kept"
            )
            skipped.append((fr.path, reason))
    return first


def _frame_label(fr: Frame) -> str:
    return f"frame {fr.frame}, " if fr.multiframe else ""


def _build_series(ordered: list[Frame], positions: np.ndarray, has_geometry: bool) -> CtSeries:
    first = ordered[0]
    return CtSeries(
        hu=np.stack([fr.hu for fr in ordered]).astype(np.float32, copy=False),
        pixel_spacing_mm=first.spacing,
        slice_thickness_mm=_consensus(fr.thickness for fr in ordered),
        positions_mm=positions,
        image_positions_mm=(
            np.array([fr.position for fr in ordered], dtype=np.float64) if has_geometry else None
        ),
        image_orientation=first.orientation if has_geometry else None,
        kvp=_consensus(fr.kvp for fr in ordered),
        convolution_kernel=_consensus(fr.kernel for fr in ordered),
        series_key=first.series_key,
        patient_key=_consensus(fr.patient_key for fr in ordered),
        dose_hint=_agreed_hint(fr.dose_hint for fr in ordered),
        source_paths=[fr.path for fr in ordered],
        frame_indices=[fr.frame for fr in ordered],
    )


def _consensus(values: Iterable[Any]) -> Any:
    """Most common non-None value (ties: the first in slice order), or None."""
    counts = collections.Counter(v for v in values if v is not None)
    return max(counts, key=lambda v: counts[v]) if counts else None


def _agreed_hint(hints: Iterable[str | None]) -> str | None:
    """The dose hint when all hinted slices agree, else None."""
    found = {h for h in hints if h is not None}
    return found.pop() if len(found) == 1 else None
