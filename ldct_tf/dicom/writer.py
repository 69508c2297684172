"""Write a derived DICOM series: the source file re-read in full with new pixel data and the
derived-series tags (new SeriesInstanceUID and SOPInstanceUIDs, ImageType ``DERIVED\\SECONDARY``, a
SeriesDescription suffix and a DerivationDescription naming the model with a research-use note).

Pixel data keeps the source's stored-value type (bits, signedness, rescale slope/intercept, per
frame for Enhanced CT, PS3.3 C.7.6.16.2.9) through the inverse Modality LUT, clipped to its range;
it is written uncompressed (Explicit VR Little Endian) when the source was compressed, as pydicom
has no encoder for several lossless JPEG syntaxes. Identifying tags are kept: this output goes
back to the same patient's record (the one ldct_tf output that carries identity).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

SERIES_SUFFIX = " [ldct_tf denoised]"
RESEARCH_NOTE = "research use only, not for diagnosis"


def stored_values(hu: np.ndarray, slope: float, intercept: float, bits_stored: int,
                  signed: bool) -> np.ndarray:
    """HU -> stored pixel values by the inverse Modality LUT, rounded and clipped to the range
    that ``bits_stored`` and the signedness allow (DICOM PS3.3 C.7.6.3.1, C.11.1)."""
    low, high = ((-(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1) if signed
                 else (0, 2 ** bits_stored - 1))
    return np.clip(np.rint((np.asarray(hu, np.float64) - intercept) / slope), low, high)


def derived_dataset(source: Path, denoised_frames: dict[int, np.ndarray], series_uid: str,
                    model_name: str, instance_uid: str | None = None) -> pydicom.Dataset:
    """The source file re-read in full, with denoised pixels and the derived-series tags
    (``instance_uid``: its SOPInstanceUID; default: a new random one)."""
    ds = pydicom.dcmread(source)
    compressed = ds.file_meta.TransferSyntaxUID.is_compressed
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    original = ds.pixel_array.reshape(n_frames, int(ds.Rows), int(ds.Columns))
    signed = int(ds.PixelRepresentation) == 1
    frames = []
    for f in range(n_frames):
        if f not in denoised_frames:  # a frame the reader skipped stays as it was
            frames.append(original[f])
            continue
        slope, intercept = _rescale(ds, f)
        frames.append(stored_values(denoised_frames[f], slope, intercept, int(ds.BitsStored),
                                    signed))
    dtype = {(16, True): "<i2", (16, False): "<u2", (8, True): "i1", (8, False): "u1",
             (32, True): "<i4", (32, False): "<u4"}[(int(ds.BitsAllocated), signed)]
    pixels = np.stack(frames).astype(dtype)
    if compressed or ds.file_meta.TransferSyntaxUID not in (ExplicitVRLittleEndian,
                                                            pydicom.uid.ImplicitVRLittleEndian):
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PixelData = pixels.tobytes()
    ds["PixelData"].VR = "OW" if int(ds.BitsAllocated) > 8 else "OB"
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = instance_uid or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    source_type = ds.get("ImageType", [])
    # a one-valued ImageType reads as a string: its letters are not values
    source_type = [source_type] if isinstance(source_type, str) else list(source_type)
    ds.ImageType = ["DERIVED", "SECONDARY"] + source_type[2:]
    ds.SeriesDescription = (str(ds.get("SeriesDescription", "")) + SERIES_SUFFIX)[:64]
    ds.DerivationDescription = (f"Denoised by ldct_tf model {model_name}; {RESEARCH_NOTE}")[:1024]
    return ds


def _rescale(ds, frame: int) -> tuple[float, float]:
    """Slope and intercept of ``frame``: Enhanced CT functional groups (per-frame first, then
    shared; PS3.3 C.7.6.16.2.9), else the top-level Modality LUT attributes."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared = ds.get("SharedFunctionalGroupsSequence")
    items = ([per_frame[frame]] if per_frame and frame < len(per_frame) else []) + \
        ([shared[0]] if shared else [])
    for item in items:
        transform = item.get("PixelValueTransformationSequence")
        if transform:
            return float(transform[0].RescaleSlope), float(transform[0].RescaleIntercept)
    return float(ds.get("RescaleSlope", 1.0) or 1.0), float(ds.get("RescaleIntercept", 0.0) or 0.0)
