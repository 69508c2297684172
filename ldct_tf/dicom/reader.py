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
import dataclasses
import errno
import logging
import math
import os
import re
import struct
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pydicom
import pydicom.uid
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.pixels.utils import get_expected_length
from pydicom.tag import Tag

from ldct_tf.config import SPACING_RANGE_MM
from ldct_tf.dicom.anonymize import anonymous_key, checked_salt, dose_hint_from_text
from ldct_tf.dicom.notices import captured_pydicom_notices, decoder_message, log_notices
from ldct_tf.dicom.series import Frame, NoUsableSliceError, ReadResult, assemble_series, reason_kind
from ldct_tf.errors import LdctError

logger = logging.getLogger("ldct_tf.dicom")  # the public name: one logger for the package


# What a CT slice can be: pixel sizes (mm) and CT numbers after the Modality LUT (HU); outside
# them a header is broken. Not -2048 below: scanners pad outside the field of view with -3024 HU
# (stored 0 with intercept -3024, or -2000 with -1024); 32767 is 16-bit CT's top, metal included.
MIN_SPACING_MM, MAX_SPACING_MM = SPACING_RANGE_MM


HU_RANGE = (-4096.0, 32767.0)


_CT_SOP_CLASSES = frozenset(
    {
        pydicom.uid.CTImageStorage,
        pydicom.uid.EnhancedCTImageStorage,
        pydicom.uid.LegacyConvertedEnhancedCTImageStorage,
    }
)


def available_decoders() -> list[str]:
    """Names of the compressed transfer syntaxes this installation can decode (for
    `ldct-tf info`)."""
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


_PIXEL_DATA = Tag("PixelData")


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
    Raises LdctError when `path` does not exist or is a symlink loop, NoUsableSliceError (an
    LdctError) when no usable CT slice is found.

    Logs (logger "ldct_tf.dicom"): one WARNING per file that had pydicom warnings, counting them
    without their text; one DEBUG per skipped file; one INFO summary. Log lines name files and
    folders by `labels` (`ldct_tf.dicom.path_labels.PathLabels`; default: the path as given).
    Warnings are captured with `warnings.catch_warnings`, which is process-wide: do not read DICOM
    in other threads meanwhile.
    """
    salt = checked_salt(salt)
    if isinstance(path, (str, os.PathLike)):
        files, root = _walk(Path(path))
    else:
        files = sorted(Path(p) for p in path)
        if not files:
            raise LdctError("no DICOM files given; pass a DICOM file, a folder or a list of files")
        root = Path(root) if root is not None else Path(os.path.commonpath(
            [str(f.parent) for f in files]))
        path = str(root)
    frames: list[Frame] = []
    skipped: list[tuple[str, str]] = []
    for file in files:
        folders = file.parent.relative_to(root).parts[::-1]
        try:
            frames.extend(_read_file_quietly(file, folders, salt, labels))
        except _Skip as exc:
            skipped.append((str(file), str(exc)))
    series = assemble_series(frames, skipped)
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
    salt = checked_salt(salt)
    files, root = _walk(Path(path))
    members: dict[str, list[str]] = collections.defaultdict(list)
    patients: dict[str, str | None] = {}
    skipped: list[tuple[str, str]] = []
    tags = ["SeriesInstanceUID", "PatientID"]
    for file in files:
        notices: dict[str, list[str]] = {"warnings": [], "logs": []}
        try:
            with captured_pydicom_notices(notices):
                ds = _dcmread(file, stop_before_pixels=True, specific_tags=tags)
                series_uid = str(ds.get("SeriesInstanceUID", "") or "").strip()
                patient_id = str(ds.get("PatientID", "") or "").strip()
                if not series_uid:  # absent, or the header was cut before it
                    _check_uid_not_cut_off(file)
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
        if is_symlink_loop(path):
            raise LdctError(f"DICOM path {str(path)!r} is a symlink loop (a link that leads back "
                            "to itself); point it at the real DICOM file or folder")
        raise LdctError(f"DICOM path {str(path)!r} does not exist; pass a DICOM file or a folder")
    files: list[Path] = []
    for folder, dirnames, filenames in os.walk(path):
        dirnames.sort()
        files.extend(Path(folder) / name for name in sorted(filenames))
    return files, path


def is_symlink_loop(path: str | os.PathLike) -> bool:
    """True when `path`, or a link on the way to it, leads back to itself (os.stat fails with
    ELOOP): `Path.is_file` and `is_dir` then say False, as for a path that does not exist."""
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def _no_slice_message(path: str | os.PathLike, skipped: list[tuple[str, str]]) -> str:
    kinds = collections.Counter(reason_kind(r) for _, r in skipped).most_common(3)
    summary = ", ".join(f"{n} {kind}" for kind, n in kinds) or "no files at all"
    return (
        f"no usable CT slice found under {str(path)!r}: {len(skipped)} file(s) skipped "
        f"({summary}); see the skipped/quarantine list and point at a folder of CT DICOM images"
    )


def _read_file_quietly(path: Path, folders: Sequence[str], salt: str,
                       labels: Callable[[str], str] = str) -> list[Frame]:
    """`_read_file` with pydicom's warnings and log records (they quote values) counted, unshown."""
    notices: dict[str, list[str]] = {"warnings": [], "logs": [], "decoder": []}
    try:
        with captured_pydicom_notices(notices):
            frames = _read_file_or_skip(path, folders, salt)
    finally:
        log_notices(labels(str(path)), notices)
    if notices["decoder"]:
        # e.g. one plugin raised on the codestream and the next one decoded it anyway
        reports = "; ".join(dict.fromkeys(notices["decoder"]))
        raise _Skip(f"corrupt compressed pixel data: a decoder reported a problem ({reports}) "
                    "yet pixels were decoded; they cannot be trusted")
    return frames


def _read_file_or_skip(path: Path, folders: Sequence[str], salt: str) -> list[Frame]:
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


def _read_file(path: Path, folders: Sequence[str], salt: str) -> list[Frame]:
    """Read one file into anonymised frames in HU; raise _Skip with the reason when unusable."""
    ds = _dcmread(path)
    _check_not_truncated(ds, path)
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
    except (EOFError, struct.error, BytesLengthException):
        raise _Skip("truncated or corrupt file: the header ends inside an element") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _Skip("symlink loop: the link leads back to itself (ELOOP); remove it or point "
                        "it at the real file") from None
        if isinstance(exc, FileNotFoundError):
            raise _Skip("not found: a symlink to a missing file, or a file removed during the "
                        "run") from None
        raise


def _check_not_truncated(ds: Dataset, path: Path) -> None:
    """Raise _Skip when the file `path`, read into `ds` (full, or to its pixel data), is cut
    part-way through an element.

    pydicom stops quietly at the end of a cut file: it keeps a short last value, and drops a last
    element of which fewer than 8 header bytes are left. So the traces of a cut are a raw (not
    yet converted) last element holding fewer bytes than its header declares, or, where the
    pixel data was not reached, 1 to 7 bytes after the last element; or no element at all. A file
    that ends exactly after an element, with neither SeriesInstanceUID nor pixel data, was cut
    at an element boundary or is no image: it is named as such.
    """
    tags = list(ds.keys())
    if not tags:
        raise _Skip("truncated file: its header ends early, before the first data element")
    last = ds.get_item(tags[-1])
    declared = getattr(last, "length", None)
    value = getattr(last, "value", None)
    if declared is None or declared == 0xFFFFFFFF or not isinstance(value, bytes):
        return
    early = "" if tags[-1] == _PIXEL_DATA else "its header ends early: "
    if len(value) < declared:
        raise _Skip(
            f"truncated file: {early}element {tags[-1]} holds {len(value)} of {declared} bytes"
        )
    if _PIXEL_DATA in ds:
        return
    left = path.stat().st_size - (getattr(last, "value_tell", 0) + declared)
    if 0 < left < 8:
        raise _Skip(f"truncated file: its header ends early, {left} byte(s) into the element "
                    f"after {tags[-1]}")
    if left == 0 and ds.get("SeriesInstanceUID") is None:
        # cut at an element boundary, or a header without identity or image: either way broken
        raise _Skip(f"truncated file or no image: the file ends after element {tags[-1]}, with no "
                    "SeriesInstanceUID (0020,000E) and no pixel data")


def _check_uid_not_cut_off(path: Path) -> None:
    """For a file whose header has no SeriesInstanceUID: raise _Skip when the header was cut
    (`_check_not_truncated` on a read up to the pixel data) rather than written without it."""
    _check_not_truncated(_dcmread(path, stop_before_pixels=True), path)


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
            f"pixel data could not be decoded ({_decode_failure(exc)}); the file may be "
            "truncated or corrupt"
        ) from None
    try:
        return np.reshape(arr, (n_frames, int(ds.Rows), int(ds.Columns)))
    except ValueError:
        raise _Skip(
            f"pixel data of shape {arr.shape} does not hold {n_frames} frame(s) of "
            f"{ds.Rows}x{ds.Columns} pixels"
        ) from None


def _decode_failure(exc: Exception) -> str:
    """What the decoders said: pydicom's "exceptions were raised by all available plugins" lists
    one ``plugin: message`` per line; any other error by its type only (its message may quote
    header values)."""
    lines = str(exc).splitlines()
    if isinstance(exc, RuntimeError) and len(lines) > 1 and "plugins" in lines[0]:
        return "; ".join(decoder_message(line) for line in lines[1:] if line.strip())
    return type(exc).__name__


def _pixel_spacing(ds: Dataset, f: int) -> tuple[float, float]:
    """PixelSpacing of frame `f` in mm (row, column); _Skip naming the value when unusable."""
    value = _attr(ds, f, "PixelMeasuresSequence", "PixelSpacing")
    if value is None or value == "":
        raise _Skip("missing PixelSpacing (0028,0030): the pixel size in mm is required")
    numbers = _numbers(value)
    if numbers is None or len(numbers) != 2:
        raise _Skip(f"invalid PixelSpacing (0028,0030) {_shown(numbers)}: expected two numbers "
                    "(row and column spacing in mm)")
    if not all(math.isfinite(v) and v > 0 for v in numbers):
        raise _Skip(f"PixelSpacing (0028,0030) is {_shown(numbers)}, not a finite positive "
                    "number of mm per pixel: a header error")
    if not all(MIN_SPACING_MM <= v <= MAX_SPACING_MM for v in numbers):
        raise _Skip(f"PixelSpacing {numbers} mm outside {MIN_SPACING_MM}-{MAX_SPACING_MM} mm: "
                    "not a CT pixel size (a unit or header error)")
    return numbers[0], numbers[1]


def _frame(ds: Dataset, f: int, stored: np.ndarray, common: dict[str, Any]) -> Frame:
    """Geometry and HU of frame `f`; functional groups first, then top-level attributes."""
    spacing = _pixel_spacing(ds, f)
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
    return Frame(
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
    numbers = _numbers(value)
    if numbers is None or len(numbers) != count or not all(math.isfinite(v) for v in numbers):
        return None
    return numbers


def _numbers(value: Any) -> tuple[float, ...] | None:
    """The floats of a (multi-valued) DS value, nan and inf included; None when absent or not
    numbers."""
    if value is None:
        return None
    items = list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
    try:
        return tuple(float(v) for v in items)
    except (TypeError, ValueError):
        return None


def _shown(numbers: tuple[float, ...] | None) -> str:
    """Numbers as DICOM writes a multi-valued DS (``nan\\nan``); text that is not numbers is not
    echoed."""
    return "(not numbers)" if numbers is None else "\\".join(f"{v:g}" for v in numbers)


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
