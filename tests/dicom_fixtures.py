"""Build small CT DICOM files in code for tests: slices, series, Enhanced CT, Mayo-like trees.

Every builder plants recognisable fake identifiers (PLANTED_* below) so tests can check that none
of them leaks into outputs. True HU values are computed here from the stored values with the
Modality LUT formula HU = stored * RescaleSlope + RescaleIntercept (DICOM PS3.3 C.11.1), without
pydicom, so they are an independent reference for the reader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from pydicom import config
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    MPEG2MPML,
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    generate_uid,
)

PLANTED_PATIENT_NAME = "PLANTED^NAME^XYZ"
PLANTED_PATIENT_ID = "PLANTEDID4711"
# PACS exports name folders after the patient: tests plant this in input paths
PLANTED_PATH_NAME = "PLANTEDSMITH_JOHN_MRN4711"
PLANTED_INSTITUTION = "PLANTED INSTITUTION OF TESTING"
PLANTED_ACCESSION = "PLANTACC0815"
PLANTED_STUDY_DATE = "19330517"
PLANTED_SERIES_UID = "1.2.826.0.1.3680043.8.498.77777777777"
PLANTED_VALUES = (
    PLANTED_PATIENT_NAME,
    PLANTED_PATIENT_ID,
    PLANTED_INSTITUTION,
    PLANTED_ACCESSION,
    PLANTED_STUDY_DATE,
    PLANTED_SERIES_UID,
)

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def true_hu(stored: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """HU = stored * slope + intercept in float64, rounded to float32 like the reader's output."""
    return (np.asarray(stored, dtype=np.float64) * slope + intercept).astype(np.float32)


def random_stored(rows: int, cols: int, *, signed: bool = True, seed: int = 0) -> np.ndarray:
    """Random stored values spanning air to bone: int16 (signed) or uint16 (unsigned)."""
    rng = np.random.default_rng(seed)
    if signed:
        return rng.integers(-1024, 2000, size=(rows, cols)).astype(np.int16)
    return rng.integers(0, 3000, size=(rows, cols)).astype(np.uint16)


def _file_meta(sop_class: str, sop_instance: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _new_dataset(sop_class: str, modality: str, series_uid: str, patient_id: str) -> FileDataset:
    """A dataset with file meta, planted identifiers and the patient/study/series UIDs."""
    sop_instance = generate_uid()
    ds = FileDataset(None, {}, file_meta=_file_meta(sop_class, sop_instance), preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.Modality = modality
    ds.PatientName = PLANTED_PATIENT_NAME
    ds.PatientID = patient_id
    ds.PatientBirthDate = PLANTED_STUDY_DATE
    ds.InstitutionName = PLANTED_INSTITUTION
    ds.AccessionNumber = PLANTED_ACCESSION
    ds.StudyDate = PLANTED_STUDY_DATE
    ds.SeriesDate = PLANTED_STUDY_DATE
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.2"
    return ds


def _set_pixels(ds: Dataset, stored: np.ndarray) -> None:
    """Native little-endian 16-bit monochrome pixel data; PixelRepresentation from the dtype."""
    signed = stored.dtype == np.int16
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(stored.shape[-2]), int(stored.shape[-1])
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = stored.astype("<i2" if signed else "<u2").tobytes()


def make_ct_dataset(
    rows: int = 16,
    cols: int = 16,
    *,
    position_z: float = 0.0,
    position: Sequence[float] | None = None,
    orientation: Sequence[float] | None = AXIAL,
    instance_number: int | None = 1,
    series_uid: str = PLANTED_SERIES_UID,
    slope: float = 1.0,
    intercept: float = -1024.0,
    stored: np.ndarray | None = None,
    hu: np.ndarray | None = None,
    signed: bool = True,
    pixel_spacing: Sequence[float] | None = (0.7, 0.7),
    slice_thickness: float | None = 2.5,
    kvp: float | None = 120.0,
    kernel: str | None = "B30f",
    series_description: str | None = None,
    patient_name: str = PLANTED_PATIENT_NAME,
    patient_id: str = PLANTED_PATIENT_ID,
    modality: str = "CT",
    seed: int = 0,
) -> FileDataset:
    """One classic CT Image Storage slice (Explicit VR Little Endian) with planted identifiers.

    Pixel values: `stored` as given, else from `hu` via (hu - intercept) / slope (must be whole
    numbers), else random. Position: `position` (x, y, z) in mm, else (-50, -60, position_z);
    pass `orientation=None` and `position=()` to leave out the geometry.
    """
    if stored is None and hu is not None:
        raw = (np.asarray(hu, dtype=np.float64) - intercept) / slope
        if not np.array_equal(raw, np.round(raw)):
            raise ValueError("hu must map to whole stored values for the given slope/intercept")
        stored = raw.astype(np.int16 if signed else np.uint16)
    if stored is None:
        stored = random_stored(rows, cols, signed=signed, seed=seed)
    ds = _new_dataset(CTImageStorage, modality, series_uid, patient_id)
    ds.PatientName = patient_name
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    if instance_number is not None:
        ds.InstanceNumber = instance_number
    if position is None:
        position = (-50.0, -60.0, position_z)
    if len(position):
        ds.ImagePositionPatient = [float(v) for v in position]
    if orientation is not None:
        ds.ImageOrientationPatient = [float(v) for v in orientation]
    if pixel_spacing is not None:
        ds.PixelSpacing = [float(v) for v in pixel_spacing]
    if slice_thickness is not None:
        ds.SliceThickness = slice_thickness
    if kvp is not None:
        ds.KVP = kvp
    if kernel is not None:
        ds.ConvolutionKernel = kernel
    if series_description is not None:
        ds.SeriesDescription = series_description
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.RescaleType = "HU"
    _set_pixels(ds, stored)
    return ds


def save(ds: Dataset, path: str | Path, *, validate: bool = True) -> Path:
    """Write `ds` as a DICOM file (preamble, file meta) and return the path.

    `validate=False` writes non-conformant values (see `plant_nonconformant_values`) without
    pydicom's write-time warnings.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if validate:
        ds.save_as(path, enforce_file_format=True)
    else:
        with config.disable_value_validation():
            ds.save_as(path, enforce_file_format=True)
    return path


def write_series(
    directory: str | Path,
    n_slices: int = 5,
    *,
    shuffle: bool = True,
    rows: int = 16,
    cols: int = 16,
    spacing_mm: float = 2.5,
    z0: float = -20.0,
    orientation: Sequence[float] = AXIAL,
    with_positions: bool = True,
    slope: float = 1.0,
    intercept: float = -1024.0,
    signed: bool = True,
    series_uid: str = PLANTED_SERIES_UID,
    stored_volume: np.ndarray | None = None,
    seed: int = 0,
    prefix: str = "img",
    **dataset_kwargs,
) -> np.ndarray:
    """Write one series of `n_slices` files, slice k at z0 + k * spacing_mm along the world z.

    Files get shuffled names (so name order is not slice order) and InstanceNumber k + 1. Returns
    the true HU volume (slices, rows, cols) float32 in order of increasing world z (and
    InstanceNumber), computed from the stored values with the Modality LUT formula.
    """
    directory = Path(directory)
    if stored_volume is None:
        seeds = [seed * 1000 + k for k in range(n_slices)]
        stored_volume = np.stack([random_stored(rows, cols, signed=signed, seed=s) for s in seeds])
    order = np.arange(n_slices)
    if shuffle:
        order = np.random.default_rng(seed + 12345).permutation(n_slices)
    for k in range(n_slices):
        ds = make_ct_dataset(
            rows,
            cols,
            position=(-50.0, -60.0, z0 + k * spacing_mm) if with_positions else (),
            orientation=orientation if with_positions else None,
            instance_number=k + 1,
            series_uid=series_uid,
            slope=slope,
            intercept=intercept,
            stored=stored_volume[k],
            signed=signed,
            **dataset_kwargs,
        )
        save(ds, directory / f"{prefix}_{order[k]:04d}.dcm")
    return true_hu(stored_volume, slope, intercept)


def make_enhanced_ct_dataset(
    n_frames: int = 4,
    rows: int = 12,
    cols: int = 10,
    *,
    spacing_mm: float = 1.25,
    z0: float = 5.0,
    series_uid: str = PLANTED_SERIES_UID,
    seed: int = 3,
) -> tuple[FileDataset, np.ndarray]:
    """An Enhanced CT Image Storage multi-frame file with frames stored in shuffled z order.

    Each frame has its own RescaleSlope/RescaleIntercept and ImagePositionPatient in the
    per-frame functional groups (PS3.3 C.7.6.16); orientation and pixel spacing are shared.
    Returns (dataset, true HU volume ordered by increasing z).
    """
    rng = np.random.default_rng(seed)
    frame_of_slice = rng.permutation(n_frames)  # slice k (in z order) is stored as this frame
    stored = rng.integers(-1000, 1500, size=(n_frames, rows, cols)).astype(np.int16)
    slopes = [1.0 + 0.5 * k for k in range(n_frames)]  # exact in binary
    intercepts = [-1024.0 + 8.0 * k for k in range(n_frames)]
    ds = _new_dataset(EnhancedCTImageStorage, "CT", series_uid, PLANTED_PATIENT_ID)
    ds.InstanceNumber = 1
    ds.NumberOfFrames = n_frames
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [0.5, 0.6]
    measures.SliceThickness = spacing_mm
    shared.PixelMeasuresSequence = DicomSequence([measures])
    plane = Dataset()
    plane.ImageOrientationPatient = list(AXIAL)
    shared.PlaneOrientationSequence = DicomSequence([plane])
    xray = Dataset()
    xray.KVP = 100
    shared.CTXRayDetailsSequence = DicomSequence([xray])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per_frame = []
    truth = np.zeros((n_frames, rows, cols), dtype=np.float32)
    for frame in range(n_frames):
        k = int(np.flatnonzero(frame_of_slice == frame)[0])
        group = Dataset()
        pos = Dataset()
        pos.ImagePositionPatient = [-30.0, -30.0, z0 + k * spacing_mm]
        group.PlanePositionSequence = DicomSequence([pos])
        rescale = Dataset()
        rescale.RescaleSlope = slopes[frame]
        rescale.RescaleIntercept = intercepts[frame]
        rescale.RescaleType = "HU"
        group.PixelValueTransformationSequence = DicomSequence([rescale])
        per_frame.append(group)
        truth[k] = true_hu(stored[frame], slopes[frame], intercepts[frame])
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    _set_pixels(ds, stored)
    return ds, truth


def plant_nonconformant_values(ds: Dataset, uid_marker: str, long_marker: str) -> None:
    """Give `ds` an invalid SeriesInstanceUID and an over-long InstitutionName (LO > 64 chars).

    pydicom warns on such values when setting and writing them: validation is off while they are
    set here; write the dataset with `save(ds, path, validate=False)`.
    """
    # An element keeps the validation mode it was created with, so replace rather than assign.
    for keyword in ("SeriesInstanceUID", "InstitutionName"):
        if keyword in ds:
            delattr(ds, keyword)
    with config.disable_value_validation():
        ds.SeriesInstanceUID = f"1.2.3.{uid_marker}"
        ds.InstitutionName = long_marker + "X" * (80 - len(long_marker))


def make_unsupported_compressed_dataset(**kwargs) -> FileDataset:
    """A CT slice whose transfer syntax is MPEG2 (1.2.840.10008.1.2.4.100), which pydicom cannot
    decode, holding a fake encapsulated fragment (PS3.5 A.4)."""
    ds = make_ct_dataset(**kwargs)
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])  # MPEG sequence header start
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    return ds


def save_truncated(ds: Dataset, path: str | Path, drop_bytes: int = 100) -> Path:
    """Write `ds`, then cut the last `drop_bytes` bytes (inside the pixel data when it is last)."""
    path = save(ds, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - drop_bytes])
    return path


def save_cut_header(ds: Dataset, path: str | Path, keyword: str = "SeriesInstanceUID",
                    into: int = 3) -> Path:
    """Write `ds`, then cut the file `into` bytes after the start of element `keyword` (a tag
    before the pixel data): 3 cuts inside its tag, 12 inside its value (explicit VR, short form)."""
    path = save(ds, path)
    data = path.read_bytes()
    tag = ds[keyword].tag
    start = data.index(tag.group.to_bytes(2, "little") + tag.element.to_bytes(2, "little"), 132)
    path.write_bytes(data[: start + into])
    return path


# JPEG 2000 start-of-data marker (ISO/IEC 15444-1 A.4.3): the entropy-coded data follow it.
J2K_SOD = b"\xff\x93"


def compress_j2k(ds: Dataset, damage: Callable[[bytes], bytes] | None = None) -> Dataset:
    """`ds` (one frame, 32 pixels or more a side) with its pixel data as a JPEG 2000 lossless
    codestream, encoded by pylibjpeg-openjpeg; the codestream passed through `damage` (bytes ->
    bytes) when given."""
    ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
    if damage is not None:
        [codestream] = generate_frames(ds.PixelData, number_of_frames=1)
        ds.PixelData = encapsulate([damage(codestream)])
    return ds


def cut_codestream(codestream: bytes) -> bytes:
    """The first half of a codestream: cut inside its entropy-coded data."""
    return codestream[: len(codestream) // 2]


def flip_coded_byte(codestream: bytes, from_end: int = 30, mask: int = 0x01) -> bytes:
    """`codestream` with one byte of its entropy-coded data (`from_end` bytes before the end,
    after the SOD marker) XORed with `mask`: no marker changes, only coded bits."""
    data = bytearray(codestream)
    at = len(data) - from_end
    assert at > data.index(J2K_SOD) + 2, "the byte must lie in the entropy-coded data"
    data[at] ^= mask
    return bytes(data)


def make_phantom_stored(rows: int, cols: int, noise_sd_hu: float, seed: int) -> np.ndarray:
    """int16 stored values (intercept -1024) of a water disc in air plus Gaussian noise in HU."""
    yy, xx = np.mgrid[:rows, :cols]
    r = np.hypot(yy - rows / 2 + 0.5, xx - cols / 2 + 0.5)
    hu = np.where(r < 0.4 * min(rows, cols), 0.0, -1000.0)
    noisy = hu + np.random.default_rng(seed).normal(0.0, noise_sd_hu, size=(rows, cols))
    return np.round(noisy + 1024.0).astype(np.int16)


def write_mayo_tree(
    root: str | Path,
    patients: Sequence[str] = ("L001", "L002"),
    *,
    n_slices: int = 4,
    rows: int = 24,
    cols: int = 24,
    folders: tuple[str, str] = ("full_dose", "quarter_dose"),
    descriptions: tuple[str | None, str | None] = (None, None),
    noise_sd_hu: tuple[float, float] = (5.0, 20.0),
    spacing_mm: float = 1.0,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Mayo/TCIA-like tree root/<patient>/<folders[0]|folders[1]>/*.dcm of full and low dose.

    Both series of a patient share PatientID and slice positions; they differ in SeriesInstanceUID
    and noise. Returns {patient folder: (full-dose HU, low-dose HU)}, each ordered by z.
    """
    truth = {}
    for p, patient in enumerate(patients):
        volumes = []
        for d, (folder, description, sd) in enumerate(zip(folders, descriptions, noise_sd_hu)):
            seeds = [100 * p + 10 * d + k for k in range(n_slices)]
            stored = np.stack([make_phantom_stored(rows, cols, sd, seed=s) for s in seeds])
            volumes.append(
                write_series(
                    Path(root) / patient / folder,
                    n_slices,
                    rows=rows,
                    cols=cols,
                    spacing_mm=spacing_mm,
                    slice_thickness=spacing_mm,
                    series_uid=generate_uid(),
                    stored_volume=stored,
                    patient_id=f"{PLANTED_PATIENT_ID}{p}",
                    series_description=description,
                    seed=p,
                )
            )
        truth[patient] = (volumes[0], volumes[1])
    return truth


__all__ = [
    "AXIAL",
    "J2K_SOD",
    "PLANTED_VALUES",
    "compress_j2k",
    "cut_codestream",
    "flip_coded_byte",
    "make_ct_dataset",
    "make_enhanced_ct_dataset",
    "make_phantom_stored",
    "make_unsupported_compressed_dataset",
    "plant_nonconformant_values",
    "random_stored",
    "save",
    "save_cut_header",
    "save_truncated",
    "true_hu",
    "write_mayo_tree",
    "write_series",
]


def read_one_series(path, **kwargs):
    """`read_ct_series` of a path that must hold exactly one series; that series."""
    from ldct_tf.dicom import read_ct_series

    result = read_ct_series(path, **kwargs)
    assert len(result.series) == 1, result.skipped
    return result.series[0]
