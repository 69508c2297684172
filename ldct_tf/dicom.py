"""Read CT DICOM series into Hounsfield-unit volumes and pair full-dose with low-dose series.

`read_ct_series(path)` walks a file or folder, groups files into series by SeriesInstanceUID, orders
the slices along the slice normal, converts stored values to HU with the modality LUT and returns
`CtSeries` objects that keep geometry only: pixel data in HU, pixel spacing, slice thickness and
positions in mm, kVp and the convolution kernel. Files that cannot be used are skipped one by one
with a one-line reason (`ReadResult.skipped`, `ReadResult.write_quarantine`), never a traceback.

No patient-identifying value (names, IDs, dates, institution, accession number, any UID) is kept,
logged or written: series and patients are known only by salted SHA-256 keys (`anonymous_key`).
pydicom's own warnings and log records, which quote the offending values, are captured while a file
is read and replaced by one log line that counts them.

`pair_series` and `find_dose_pairs` match the slices of a full-dose and a low-dose series of the
same scan by position, for the Mayo/TCIA "LDCT-and-Projection-data" layout (one folder per patient
holding a full-dose and a quarter-dose series side by side).

References: DICOM PS3.3 C.7.6.2 (Image Plane: PixelSpacing, ImagePositionPatient,
ImageOrientationPatient), C.11.1 (Modality LUT: RescaleSlope/RescaleIntercept), C.8.15.3 (Enhanced
CT functional groups), C.7.6.16 (Multi-frame functional groups: per-frame overrides shared).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import struct
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pydicom
import pydicom.uid
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.pixels.utils import get_expected_length

from ldct_tf.config import SPACING_RANGE_MM
from ldct_tf.errors import LdctError

logger = logging.getLogger(__name__)

# Stable but public: anyone can recompute keys made with it. Pass a per-project secret salt for
# real data so that keys cannot be linked back to UIDs or patient IDs by hashing guesses.
DEFAULT_SALT = "ldct_tf/dicom/public-default-salt/v1"
KEY_HEX_CHARS = 16

# Slices of one series closer than this along the normal are the same slice reconstructed twice.
DUPLICATE_POSITION_MM = 0.01
# Direction cosines and pixel spacings are compared after rounding, as writers print DS values
# with differing numbers of digits.
_ORIENTATION_DECIMALS = 4
_SPACING_DECIMALS = 4
PAIR_SPACING_TOLERANCE_MM = 1e-3
# What a CT slice can be: pixel sizes (mm) and CT numbers after the Modality LUT (HU); outside
# them a header is broken. Not -2048 below: scanners pad outside the field of view with -3024 HU
# (stored 0 with intercept -3024, or -2000 with -1024); 32767 is 16-bit CT's top, metal included.
MIN_SPACING_MM, MAX_SPACING_MM = SPACING_RANGE_MM
HU_RANGE = (-4096.0, 32767.0)
DEFAULT_PAIR_TOLERANCE_MM = 0.5

_CT_SOP_CLASSES = frozenset(
    {
        pydicom.uid.CTImageStorage,
        pydicom.uid.EnhancedCTImageStorage,
        pydicom.uid.LegacyConvertedEnhancedCTImageStorage,
    }
)
_FULL_TOKENS = frozenset({"full", "fd", "fulldose"})
_LOW_TOKENS = frozenset({"quarter", "qd", "lowdose", "quarterdose"})
_FULL_BIGRAMS = frozenset({("full", "dose"), ("normal", "dose")})
_LOW_BIGRAMS = frozenset({("low", "dose"), ("quarter", "dose")})
# pydicom's value-validation warnings (PS3.5 6.2 VR rules) start like this.
_NONCONFORMANT_PREFIXES = ("Invalid value", "The value length")


# ----------------------------------------------------------------------------------------------
# Public data types


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
        """Write the skipped list as JSON `[{"path": ..., "reason": ...}, ...]`; return the path."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        records = [{"path": p, "reason": r} for p, r in self.skipped]
        out.write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
        return out

    def reasons_summary(self) -> dict[str, int]:
        """Number of skipped files per kind of reason (the reason up to its first ':' or ';')."""
        return dict(collections.Counter(_reason_kind(r) for _, r in self.skipped).most_common())


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


# ----------------------------------------------------------------------------------------------
# Keys and hints


def anonymous_key(value: str, salt: str | None = None) -> str:
    """Salted SHA-256 of `value` (a UID or patient ID), first 16 hex characters.

    The digest is of the UTF-8 bytes of salt + NUL + value. `salt=None` uses DEFAULT_SALT, which
    is stable but public; pass a per-project secret salt for real data.
    """
    salt = _checked_salt(salt)
    digest = hashlib.sha256(f"{salt}\x00{value}".encode("utf-8")).hexdigest()
    return digest[:KEY_HEX_CHARS]


def dose_hint_from_text(text: str | None) -> str | None:
    """Return "full", "low" or None from keywords in a description or folder name.

    Full: "full", "FD", "full dose", "normal dose". Low: "low dose", "quarter", "QD". Text with both
    kinds of keyword, or neither, gives None.
    """
    if not text:
        return None
    tokens = re.findall(r"[a-z]+", text.lower())
    bigrams = set(zip(tokens, tokens[1:]))
    full = bool(_FULL_TOKENS & set(tokens) or _FULL_BIGRAMS & bigrams)
    low = bool(_LOW_TOKENS & set(tokens) or _LOW_BIGRAMS & bigrams)
    if full == low:
        return None
    return "full" if full else "low"


def estimate_noise_hu(hu: np.ndarray) -> float:
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


def available_decoders() -> list[str]:
    """Names of the compressed transfer syntaxes this installation can decode (for `ldct-tf info`)."""
    names = []
    for uid in pydicom.uid.AllTransferSyntaxes:
        uid = pydicom.uid.UID(uid)
        if not uid.is_compressed:
            continue
        try:
            if get_decoder(uid).is_available:
                names.append(uid.name)
        except NotImplementedError:
            continue
    return names


def _checked_salt(salt: str | None) -> str:
    if salt is None:
        return DEFAULT_SALT
    if not isinstance(salt, str) or not salt:
        # The salt is meant to be secret: name its type, never echo it.
        raise ValueError(f"salt must be a non-empty str or None, got a {type(salt).__name__}")
    return salt


# ----------------------------------------------------------------------------------------------
# Reading


@dataclasses.dataclass
class _Frame:
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


class _Skip(Exception):
    """A file (or frame) is unusable; the message is the one-line reason."""


def read_ct_series(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    salt: str | None = None,
    root: str | os.PathLike | None = None,
    labels: Callable[[str], str] = str,
) -> ReadResult:
    """Read every CT image under `path` (a file or a folder, walked recursively in sorted order).

    `path` may also be a list of files (one group of `index_series`, read by a pipeline worker);
    `root` is then the folder the walk started from, whose sub-folder names give dose hints
    (default: the files' common folder).

    Returns a ReadResult with the usable series (sorted by series_key) and the skipped files with
    their reasons. `salt` salts the SHA-256 series and patient keys (see `anonymous_key`); None
    uses DEFAULT_SALT, which is stable but public: pass a per-project secret salt for real data.
    Raises LdctError when `path` does not exist, NoUsableSliceError (an LdctError) when no usable
    CT slice is found.

    Logs (logger "ldct_tf.dicom"): one WARNING per file that had pydicom warnings, counting them
    without their text; one DEBUG per skipped file; one INFO summary. Log lines name files and
    folders by `labels` (`ldct_tf.path_labels.PathLabels`; default: the path as given). Warnings
    are captured with `warnings.catch_warnings`, which is process-wide: do not read DICOM in other
    threads meanwhile.
    """
    salt = _checked_salt(salt)
    if isinstance(path, (str, os.PathLike)):
        files, root = _walk(Path(path))
    else:
        files = sorted(Path(p) for p in path)
        if not files:
            raise LdctError("no DICOM files given; pass a DICOM file, a folder or a list of files")
        root = Path(root) if root is not None else Path(os.path.commonpath(
            [str(f.parent) for f in files]))
        path = str(root)
    frames: list[_Frame] = []
    skipped: list[tuple[str, str]] = []
    for file in files:
        folders = file.parent.relative_to(root).parts[::-1]
        try:
            frames.extend(_read_file_quietly(file, folders, salt, labels))
        except _Skip as exc:
            skipped.append((str(file), str(exc)))
    series = _assemble_all(frames, skipped)
    for file_path, reason in skipped:
        logger.debug("skipped %s: %s", labels(file_path), reason)
    if not series:
        raise NoUsableSliceError(_no_slice_message(labels(str(path)), skipped), skipped)
    n_slices = sum(s.n_slices for s in series)
    logger.info(
        "read %d CT series (%d slices) from %s; skipped %d file(s) or frame(s)",
        len(series), n_slices, labels(str(path)), len(skipped),
    )
    return ReadResult(series=series, skipped=skipped, root=str(root))


@dataclasses.dataclass(frozen=True)
class SeriesFiles:
    """The files of one series found by `index_series` (no pixel data read yet)."""

    series_key: str
    patient_key: str | None
    files: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class SeriesIndex:
    """Series found by a header-only pass over a tree, and the files it could not group."""

    root: str
    groups: list[SeriesFiles]
    skipped: list[tuple[str, str]]


def index_series(path: str | os.PathLike, *, salt: str | None = None) -> SeriesIndex:
    """Group the files under `path` into series from their headers only (no pixel data).

    A data pipeline indexes in its driver and reads each group with `read_ct_series(files,
    root=index.root)` in a worker, so pixel data is decoded in parallel and only once. Files
    that are not DICOM or have no SeriesInstanceUID are skipped here; every other check happens
    when the group is read.
    """
    salt = _checked_salt(salt)
    files, root = _walk(Path(path))
    members: dict[str, list[str]] = collections.defaultdict(list)
    patients: dict[str, str | None] = {}
    skipped: list[tuple[str, str]] = []
    tags = ["SeriesInstanceUID", "PatientID"]
    for file in files:
        notices: dict[str, list[str]] = {"warnings": [], "logs": []}
        try:
            with _captured_pydicom_notices(notices):
                ds = _dcmread(file, stop_before_pixels=True, specific_tags=tags)
                series_uid = str(ds.get("SeriesInstanceUID", "") or "").strip()
                patient_id = str(ds.get("PatientID", "") or "").strip()
        except _Skip as skip:
            skipped.append((str(file), str(skip)))
            continue
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the walk
            skipped.append((str(file), f"unreadable: {type(exc).__name__} while reading the "
                                       "header; open it with pydicom.dcmread to see the details"))
            continue
        if not series_uid:
            skipped.append((str(file), "missing SeriesInstanceUID (0020,000E): cannot group the "
                                       "slice into a series"))
            continue
        key = anonymous_key(series_uid, salt)
        members[key].append(str(file))
        patients[key] = anonymous_key(patient_id, salt) if patient_id else None
    groups = [SeriesFiles(key, patients[key], tuple(members[key])) for key in sorted(members)]
    return SeriesIndex(str(root), groups, skipped)


def _walk(path: Path) -> tuple[list[Path], Path]:
    """All files under `path` in sorted, deterministic order, and the root folder of the walk."""
    if path.is_file():
        return [path], path.parent
    if not path.is_dir():
        raise LdctError(f"DICOM path {str(path)!r} does not exist; pass a DICOM file or a folder")
    files: list[Path] = []
    for folder, dirnames, filenames in os.walk(path):
        dirnames.sort()
        files.extend(Path(folder) / name for name in sorted(filenames))
    return files, path


def _no_slice_message(path: str | os.PathLike, skipped: list[tuple[str, str]]) -> str:
    kinds = collections.Counter(_reason_kind(r) for _, r in skipped).most_common(3)
    summary = ", ".join(f"{n} {kind}" for kind, n in kinds) or "no files at all"
    return (
        f"no usable CT slice found under {str(path)!r}: {len(skipped)} file(s) skipped "
        f"({summary}); see the skipped/quarantine list and point at a folder of CT DICOM images"
    )


def _reason_kind(reason: str) -> str:
    return re.split(r"[:;]", reason, maxsplit=1)[0].strip()


def _read_file_quietly(path: Path, folders: Sequence[str], salt: str,
                       labels: Callable[[str], str] = str) -> list[_Frame]:
    """`_read_file` with pydicom's warnings and log records (they quote values) counted, unshown."""
    notices: dict[str, list[str]] = {"warnings": [], "logs": []}
    try:
        with _captured_pydicom_notices(notices):
            return _read_file_or_skip(path, folders, salt)
    finally:
        _log_notices(labels(str(path)), notices)


def _read_file_or_skip(path: Path, folders: Sequence[str], salt: str) -> list[_Frame]:
    """`_read_file` with every failure turned into _Skip, so one bad file never stops the walk."""
    try:
        return _read_file(path, folders, salt)
    except _Skip:
        raise
    except (EOFError, struct.error) as exc:
        raise _Skip(
            f"truncated or corrupt file: ends inside an element ({type(exc).__name__})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - one bad file must not stop the walk
        # The message of an unexpected error may quote header values: name the type only.
        raise _Skip(
            f"unreadable: {type(exc).__name__} while reading; open it with pydicom.dcmread "
            "to see the details"
        ) from None


@contextlib.contextmanager
def _captured_pydicom_notices(notices: dict[str, list[str]]) -> Iterator[None]:
    """Collect warnings and pydicom log records raised in the block into `notices`, unshown.

    pydicom's warn_and_log quotes the offending value in both; the filters are removed on exit,
    so no logging state outlives the block.
    """

    def drop(record: logging.LogRecord) -> bool:
        notices["logs"].append(record.getMessage())
        return False

    pydicom_loggers = [
        lg
        for name, lg in list(logging.Logger.manager.loggerDict.items())
        if isinstance(lg, logging.Logger) and (name == "pydicom" or name.startswith("pydicom."))
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for lg in pydicom_loggers:
            lg.addFilter(drop)
        try:
            yield
        finally:
            for lg in pydicom_loggers:
                lg.removeFilter(drop)
            notices["warnings"].extend(str(w.message) for w in caught)


def _log_notices(path: str, notices: dict[str, list[str]]) -> None:
    """Emit one log line counting the notices of one file, without their text."""
    warned = notices["warnings"]
    # pydicom's warn_and_log both logs and warns the same text: count such a pair once.
    unpaired = collections.Counter(warned)
    log_only = 0
    for message in notices["logs"]:
        if unpaired[message] > 0:
            unpaired[message] -= 1
        else:
            log_only += 1
    nonconformant = sum(1 for m in warned if m.startswith(_NONCONFORMANT_PREFIXES))
    other = len(warned) - nonconformant + log_only
    if nonconformant or other:
        logger.warning(
            "%s: %d non-conformant value(s) and %d other pydicom warning(s) while reading; "
            "values not shown because they can identify the patient",
            path, nonconformant, other,
        )


def _read_file(path: Path, folders: Sequence[str], salt: str) -> list[_Frame]:
    """Read one file into anonymised frames in HU; raise _Skip with the reason when unusable."""
    ds = _dcmread(path)
    _check_not_truncated(ds)
    # Convert every element now so that pydicom validates (and warns about) all values inside
    # the capture, not later when a caller touches the dataset.
    for _ in ds.iterall():
        pass
    _check_ct_image(ds)
    series_uid = str(ds.get("SeriesInstanceUID", "") or "").strip()
    if not series_uid:
        raise _Skip("missing SeriesInstanceUID (0020,000E): cannot group the slice into a series")
    patient_id = str(ds.get("PatientID", "") or "").strip()
    n_frames = _n_frames(ds)
    stored = _stored_values(ds, n_frames)
    hint = _dose_hint(ds, folders)
    common = dict(
        path=str(path),
        multiframe=n_frames > 1,
        series_key=anonymous_key(series_uid, salt),
        patient_key=anonymous_key(patient_id, salt) if patient_id else None,
        dose_hint=hint,
        instance=_as_int(ds.get("InstanceNumber")),
        rows=int(ds.Rows),
        cols=int(ds.Columns),
    )
    return [_frame(ds, f, stored[f], common) for f in range(n_frames)]


def _dcmread(path: Path, **kwargs) -> Dataset:
    """`pydicom.dcmread` (``kwargs`` passed on) with the expected failures as `_Skip` reasons."""
    try:
        return pydicom.dcmread(path, **kwargs)
    except InvalidDicomError:
        raise _Skip("not a DICOM file: no DICM marker after the 128-byte preamble") from None
    except IsADirectoryError:
        raise _Skip("not a DICOM file: a directory") from None
    except PermissionError:
        raise _Skip("unreadable: permission denied; check the file's permissions") from None


def _check_not_truncated(ds: Dataset) -> None:
    """Raise _Skip when the last element holds fewer bytes than its header declares.

    pydicom stops quietly at the end of a cut file and keeps the short value, so the declared
    length of the raw (not yet converted) last element is the only trace of the cut.
    """
    tags = list(ds.keys())
    if not tags:
        return
    last = ds.get_item(tags[-1])
    declared = getattr(last, "length", None)
    value = getattr(last, "value", None)
    if declared is None or declared == 0xFFFFFFFF or not isinstance(value, bytes):
        return
    if len(value) < declared:
        raise _Skip(
            f"truncated file: element {tags[-1]} holds {len(value)} of {declared} bytes"
        )


def _check_ct_image(ds: Dataset) -> None:
    """Raise _Skip unless `ds` is a CT image with pixel data this installation can decode."""
    meta = getattr(ds, "file_meta", None) or Dataset()
    if meta.get("MediaStorageSOPClassUID") == pydicom.uid.MediaStorageDirectoryStorage:
        raise _Skip("no pixel data: a DICOMDIR index file, not an image")
    modality = str(ds.get("Modality", "") or "").strip()
    if modality != "CT":
        if modality:
            shown = modality if re.fullmatch(r"[A-Z0-9_ ]{1,16}", modality) else "(non-standard)"
            raise _Skip(f"modality {shown} is not CT")
        if ds.get("SOPClassUID") not in _CT_SOP_CLASSES:
            raise _Skip("modality missing and the SOP class is not a CT image")
    if "PixelData" not in ds:
        raise _Skip("no pixel data (7FE0,0010): a non-image object or a truncated file")
    if "Rows" not in ds or "Columns" not in ds:
        raise _Skip("missing Rows or Columns (0028,0010/0011): the image size is unknown")
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise _Skip(f"not a greyscale image: SamplesPerPixel is {ds.SamplesPerPixel}, expected 1")
    _check_decoder(meta.get("TransferSyntaxUID"))


def _check_decoder(transfer_syntax: str | None) -> None:
    """Raise _Skip when no installed pydicom plugin decodes `transfer_syntax`."""
    if not transfer_syntax:
        raise _Skip("no transfer syntax in the file meta (0002,0010); rewrite the file with one")
    uid = pydicom.uid.UID(transfer_syntax)
    # An unknown (private) UID's name is the UID itself: do not echo UIDs.
    name = uid.name if uid.name != str(uid) else "(unknown private transfer syntax)"
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise _Skip(
            f"transfer syntax {name} has no installed decoder; install a pydicom decoder plugin "
            "for it or convert the file to an uncompressed transfer syntax (e.g. gdcmconv --raw)"
        ) from None
    if not decoder.is_available:
        options = " or ".join(decoder.missing_dependencies) or "a pydicom decoder plugin"
        raise _Skip(f"transfer syntax {name} has no installed decoder; install {options}")


def _n_frames(ds: Dataset) -> int:
    n = _as_int(ds.get("NumberOfFrames")) or 1
    if n < 1:
        raise _Skip(f"invalid NumberOfFrames {n}; expected 1 or more")
    return n


def _stored_values(ds: Dataset, n_frames: int) -> np.ndarray:
    """Stored pixel values as (frames, rows, cols), before the modality LUT."""
    uid = pydicom.uid.UID(ds.file_meta.TransferSyntaxUID)
    if not uid.is_compressed:
        expected = get_expected_length(ds, "bytes")
        actual = len(ds.PixelData)
        if actual < expected:
            raise _Skip(f"truncated pixel data: {actual} of {expected} bytes")
    try:
        arr = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - decoder errors come in many types
        raise _Skip(
            f"pixel data could not be decoded ({type(exc).__name__}); the file may be truncated "
            "or corrupt"
        ) from None
    try:
        return np.reshape(arr, (n_frames, int(ds.Rows), int(ds.Columns)))
    except ValueError:
        raise _Skip(
            f"pixel data of shape {arr.shape} does not hold {n_frames} frame(s) of "
            f"{ds.Rows}x{ds.Columns} pixels"
        ) from None


def _frame(ds: Dataset, f: int, stored: np.ndarray, common: dict[str, Any]) -> _Frame:
    """Geometry and HU of frame `f`; functional groups first, then top-level attributes."""
    spacing = _floats(_attr(ds, f, "PixelMeasuresSequence", "PixelSpacing"), 2)
    if spacing is None:
        raise _Skip("missing PixelSpacing (0028,0030): the pixel size in mm is required")
    if min(spacing) <= 0:
        raise _Skip(f"invalid PixelSpacing {spacing} mm; expected two positive values")
    if not all(MIN_SPACING_MM <= v <= MAX_SPACING_MM for v in spacing):
        raise _Skip(f"PixelSpacing {spacing} mm outside {MIN_SPACING_MM}-{MAX_SPACING_MM} mm: "
                    "not a CT pixel size (a unit or header error)")
    # PS3.3 C.7.6.16.2.9: per-frame rescale in Enhanced CT; C.11.1: classic Modality LUT.
    lut_source = _group_item(ds, f, "PixelValueTransformationSequence")
    lut_source = lut_source if lut_source is not None else ds
    _check_rescale(lut_source)
    hu = apply_modality_lut(stored, lut_source)
    if hu.size and not (HU_RANGE[0] <= float(np.min(hu)) and float(np.max(hu)) <= HU_RANGE[1]):
        raise _Skip(f"values {float(np.min(hu)):.4g} to {float(np.max(hu)):.4g} HU after the "
                    f"modality LUT, outside [{HU_RANGE[0]}, {HU_RANGE[1]}]: the rescale tags do "
                    "not describe CT numbers")
    orientation = _floats(_attr(ds, f, "PlaneOrientationSequence", "ImageOrientationPatient"), 6)
    return _Frame(
        frame=f,
        spacing=(spacing[0], spacing[1]),
        thickness=_positive(_attr(ds, f, "PixelMeasuresSequence", "SliceThickness")),
        position=_floats(_attr(ds, f, "PlanePositionSequence", "ImagePositionPatient"), 3),
        orientation=orientation if orientation and _valid_orientation(orientation) else None,
        kvp=_positive(_attr(ds, f, "CTXRayDetailsSequence", "KVP")),
        kernel=_kernel(_attr(ds, f, "CTReconstructionSequence", "ConvolutionKernel")),
        hu=np.asarray(hu, dtype=np.float32),
        **common,
    )


def _check_rescale(source: Dataset) -> None:
    """The Modality LUT that turns stored values into HU must exist and make sense: CT requires
    RescaleSlope and RescaleIntercept (PS3.3 C.8.2.1, Type 1) unless a ModalityLUTSequence is
    given; a slope of 0 (every pixel the same value) or a non-finite one is a broken header."""
    if "ModalityLUTSequence" in source:
        return
    if "RescaleSlope" not in source or "RescaleIntercept" not in source:
        raise _Skip("missing RescaleSlope/RescaleIntercept (0028,1053/0028,1052), required for "
                    "CT: the stored values cannot be turned into HU")
    try:
        slope, intercept = float(source.RescaleSlope), float(source.RescaleIntercept)
    except (TypeError, ValueError):
        raise _Skip(f"unreadable RescaleSlope {source.get('RescaleSlope')!r} or RescaleIntercept "
                    f"{source.get('RescaleIntercept')!r}") from None
    if not (math.isfinite(slope) and math.isfinite(intercept)) or slope == 0:
        raise _Skip(f"RescaleSlope {slope} / RescaleIntercept {intercept}: a slope must be a "
                    "finite non-zero number")


def _group_item(ds: Dataset, frame: int, sequence: str) -> Dataset | None:
    """First item of functional group `sequence` for `frame`: per-frame wins over shared."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and frame < len(per_frame):
        items = per_frame[frame].get(sequence)
        if items:
            return items[0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        items = shared[0].get(sequence)
        if items:
            return items[0]
    return None


def _attr(ds: Dataset, frame: int, sequence: str, keyword: str) -> Any:
    """`keyword` from functional group `sequence` of `frame`, else from the top level, else None."""
    item = _group_item(ds, frame, sequence)
    if item is not None and keyword in item:
        return item.get(keyword)
    return ds.get(keyword)


def _floats(value: Any, count: int) -> tuple[float, ...] | None:
    """`count` finite floats from a DS value, or None when absent or malformed."""
    if value is None:
        return None
    items = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
    try:
        numbers = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        return None
    if len(numbers) != count or not all(math.isfinite(v) for v in numbers):
        return None
    return numbers


def _positive(value: Any) -> float | None:
    numbers = _floats(value, 1)
    return numbers[0] if numbers and numbers[0] > 0 else None


def _as_int(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def _kernel(value: Any) -> str | None:
    """ConvolutionKernel as one string; multi-valued kernels joined with a backslash."""
    if value is None:
        return None
    if isinstance(value, (list, tuple, MultiValue)):
        text = "\\".join(str(v).strip() for v in value)
    else:
        text = str(value).strip()
    return text or None


def _valid_orientation(cosines: tuple[float, ...]) -> bool:
    """Row and column direction cosines of (near) unit length, so the normal is defined."""
    normal = np.cross(cosines[:3], cosines[3:])
    return bool(np.linalg.norm(normal) > 0.5)


def _dose_hint(ds: Dataset, folders: Sequence[str]) -> str | None:
    """Hint from SeriesDescription, else from the nearest folder name that has one.

    The description text itself is never stored: it can name the patient or the site.
    """
    for text in (str(ds.get("SeriesDescription", "") or ""), *folders):
        hint = dose_hint_from_text(text)
        if hint is not None:
            return hint
    return None


# ----------------------------------------------------------------------------------------------
# Assembling series


def _assemble_all(frames: list[_Frame], skipped: list[tuple[str, str]]) -> list[CtSeries]:
    """Group frames by series_key and build each series; rejected frames go to `skipped`."""
    groups: dict[str, list[_Frame]] = collections.defaultdict(list)
    for fr in frames:
        groups[fr.series_key].append(fr)
    return [_assemble(groups[key], skipped) for key in sorted(groups)]


def _assemble(frames: list[_Frame], skipped: list[tuple[str, str]]) -> CtSeries:
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
    frames: list[_Frame],
    skipped: list[tuple[str, str]],
    key: Callable[[_Frame], tuple],
    what: str,
    describe: Callable[[tuple], str],
) -> list[_Frame]:
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
    frames: list[_Frame], skipped: list[tuple[str, str]]
) -> tuple[list[_Frame], np.ndarray | None]:
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


def _instance_order(fr: _Frame) -> tuple:
    """Order by InstanceNumber (missing last), then file path and frame number."""
    return (fr.instance is None, fr.instance or 0, fr.path, fr.frame)


def _dedupe_positions(
    frames: list[_Frame], normal: np.ndarray, skipped: list[tuple[str, str]]
) -> list[_Frame]:
    """Frames sorted along `normal`; of several at one position keep the lowest InstanceNumber."""
    ordered = sorted(frames, key=lambda fr: (_along(fr, normal),) + _instance_order(fr))
    clusters: list[list[_Frame]] = []
    for fr in ordered:
        gap = _along(fr, normal) - _along(clusters[-1][0], normal) if clusters else math.inf
        if gap <= DUPLICATE_POSITION_MM:
            clusters[-1].append(fr)
        else:
            clusters.append([fr])
    return [_keep_first(cluster, normal, skipped) for cluster in clusters]


def _along(fr: _Frame, normal: np.ndarray) -> float:
    return float(np.dot(fr.position, normal))


def _keep_first(
    cluster: list[_Frame], normal: np.ndarray, skipped: list[tuple[str, str]]
) -> _Frame:
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


def _frame_label(fr: _Frame) -> str:
    return f"frame {fr.frame}, " if fr.multiframe else ""


def _build_series(ordered: list[_Frame], positions: np.ndarray, has_geometry: bool) -> CtSeries:
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


# ----------------------------------------------------------------------------------------------
# Pairing full-dose and low-dose series


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
    other role, and with no hint at all the noisier series (`estimate_noise_hu`) is the low dose.
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
        noise_a, noise_b = estimate_noise_hu(a.hu), estimate_noise_hu(b.hu)
        if noise_a == noise_b:
            return found + " with equal noise, so full and low dose cannot be told apart"
        return (a, b) if noise_a < noise_b else (b, a)
    return full[0], low[0]
