"""A new user's first denoise: a CT series written in code (a synthetic abdomen phantom, 512x512
at 0.7 mm, 20 slices by default) denoised by ``python -m ldct_tf.denoise --input D --output O``
without ``--model`` (the ready model shipped in the package), timed as the user sees it: a fresh
process, TensorFlow start-up and model loading included.

Prints one JSON line: seconds (the whole command), slices, size, slices_per_s, and model (the
model line the command printed).

    python benchmarks/denoise_series.py [--slices 20] [--size 512]
    python benchmarks/denoise_series.py --slices 2 --size 64 --in-process   # smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_series(folder: Path, slices: int, size: int, spacing_mm: float) -> None:
    """``slices`` axial CT slices of one series (int16 stored values, HU = stored - 1024)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    from ldct_tf.ct import phantoms

    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    for k in range(slices):
        hu = phantoms.make_phantom(size, spacing_mm, seed=[7, k])
        hu = hu + np.random.default_rng(k).normal(0.0, 20.0, hu.shape)  # a low-dose-like noise
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(folder / f"{k:03d}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientID, ds.PatientName = "CT", "BENCH", "BENCH^DENOISE"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.SeriesNumber, ds.InstanceNumber = 1, k + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, float(k)]
        ds.SliceThickness, ds.PixelSpacing = 1.0, [spacing_mm, spacing_mm]
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.PixelData = np.clip(np.round(hu + 1024), -32768, 32767).astype(np.int16).tobytes()
        ds.save_as(folder / f"{k:03d}.dcm", enforce_file_format=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=20)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--spacing-mm", type=float, default=0.7)
    parser.add_argument("--in-process", action="store_true",
                        help="call denoise's main here (a smoke run; no fresh-process start-up)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        source, out = Path(scratch) / "in", Path(scratch) / "out"
        write_series(source, args.slices, args.size, args.spacing_mm)
        command = ["--input", str(source), "--output", str(out)]
        started = time.perf_counter()
        if args.in_process:
            from ldct_tf.denoise import main as denoise_main
            from ldct_tf.errors import run_cli

            captured = io.StringIO()
            with contextlib.redirect_stdout(captured):
                code = run_cli(denoise_main, command)
            stdout = captured.getvalue()
        else:
            result = subprocess.run([sys.executable, "-m", "ldct_tf.denoise", *command],
                                    capture_output=True, text=True)
            code, stdout = result.returncode, result.stdout
            if code:
                sys.stderr.write(result.stderr[-2000:])
        seconds = time.perf_counter() - started
        written = len(list(out.rglob("*.dcm")))
    if code or written != args.slices:
        print(f"denoise failed (exit {code}, {written} of {args.slices} slices written)",
              file=sys.stderr)
        return 1
    model = next((line for line in stdout.splitlines() if "ready model" in line), "")
    print(json.dumps({"seconds": round(seconds, 2), "slices": args.slices, "size": args.size,
                      "slices_per_s": round(args.slices / seconds, 2), "model": model}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
