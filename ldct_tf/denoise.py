"""`python -m ldct_tf.denoise`: a DICOM series in, a derived, denoised DICOM series out.

Reads every CT series under ``--input`` with the same reader and bad-input rules as ``prepare``
(bad files are skipped and listed in ``<output>/quarantine.json``), runs the exported SavedModel
(``serving_default``: HU in, HU out; without ``--model`` the ready model shipped in the package,
`ldct_tf.ready_model`, checked against its checksums) and writes one derived series per input
series, mirroring the input's relative paths, as `ldct_tf.dicom.writer` derives them (new UIDs,
``DERIVED\\SECONDARY``, the source's stored-value type and identifying tags: this output goes back
to the same patient's record).

Input files are never modified and nothing is written into the input tree (`check_paths` refuses an
output that is, holds or sits inside the input); an existing output file is replaced only with
``--force``, except the files this same command wrote into this output before it was stopped
(`RunUids`: their UIDs are the ones it would write; the run again writes them byte for byte).
Slices larger than ``--tile`` pixels on a side are denoised in overlapping tiles.

Every output file appears whole or not at all (`ldct_tf.atomic`). A series that fails part-way
(an unexpected header, a vanished input file) is listed in ``quarantine.json`` with its files and
the reason, its files are removed, and the run goes on; a fault of the output's disk (full, a
quota, read-only) stops the run with one line, as every later series would meet it too.
``quarantine.json`` is written however the run ends. It and the log lines name input files by
salted labels (`ldct_tf.dicom.path_labels`; the salt is ``<output>/salt``), unless
``--keep-paths``.

Progress goes to stderr as ``denoise: series KEY: 128/300 slices`` (`ldct_tf.progress.Counter`:
redrawn in place on a terminal, a line every 10 s in a log), ending with each series'
``300/300 slices (12.3 slices/s)`` (the rate so far, over every series); the run's summary line
goes to stdout.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pydicom
from pydicom.uid import generate_uid

from ldct_tf import atomic, dicom, progress
from ldct_tf.cli import claim, workdir_salt
from ldct_tf.dicom.path_labels import PathLabels
from ldct_tf.dicom.writer import derived_dataset
from ldct_tf.errors import LdctError, environment_fault, run_cli
from ldct_tf.provenance import read_provenance
from ldct_tf.tf_import import import_tensorflow
from ldct_tf.workdir import QUARANTINE_FILE

tf = import_tensorflow()

DEFAULT_TILE = 1024
TILE_OVERLAP = 32  # wider than the networks' receptive field, so tile seams do not show
MIN_SIDE = 2 * TILE_OVERLAP  # smaller slices are padded to this (a receptive field each way)
DISK_FAULTS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)  # these stop the run


def load_export(path: str | Path):
    """The SavedModel's ``serving_default`` function and its provenance."""
    path = Path(path)
    if not (path / "saved_model.pb").is_file():
        raise LdctError(f"no SavedModel at {path}; export one with `python -m ldct_tf.export "
                        "--workdir RUN` and pass saved_models/<name>/<version>")
    provenance = read_provenance(path)
    try:
        loaded = tf.saved_model.load(str(path))
        serve = loaded.signatures["serving_default"]
    except Exception as exc:  # noqa: BLE001 - protobuf, TF and OS errors all mean "broken export"
        raise LdctError(f"the SavedModel at {path} cannot be loaded ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:160] if str(exc) else 'no detail'}); it is "
                        "corrupt, truncated or missing its variables: re-export it with `python "
                        "-m ldct_tf.export`") from None
    return serve, provenance


def denoise_hu(serve, slices: np.ndarray, batch: int, tile: int = DEFAULT_TILE,
               on_slices: Callable[[int], None] | None = None) -> np.ndarray:
    """HU slices ``[n, rows, cols]`` -> denoised HU, in batches (tiles for very large slices;
    slices under `MIN_SIDE` pixels on a side are edge-padded to it and cropped back, since a
    network's pooling and receptive field need room). ``on_slices(k)`` is called as each ``k``
    more slices are done (a `progress.Counter`'s ``add``)."""
    rows, cols = slices.shape[1:]
    if min(rows, cols) < MIN_SIDE:
        pad_r, pad_c = max(MIN_SIDE - rows, 0), max(MIN_SIDE - cols, 0)
        padded = np.pad(slices, ((0, 0), (pad_r // 2, pad_r - pad_r // 2),
                                 (pad_c // 2, pad_c - pad_c // 2)), mode="edge")
        out = denoise_hu(serve, padded, batch, tile, on_slices)
        return out[:, pad_r // 2:pad_r // 2 + rows, pad_c // 2:pad_c // 2 + cols]
    out = []
    if max(slices.shape[1:]) > tile:
        for image in slices:
            out.append(_tiled(serve, image, tile))
            if on_slices:
                on_slices(1)
        return np.stack(out)
    for i in range(0, len(slices), batch):
        chunk = tf.constant(slices[i:i + batch, ..., None], tf.float32)
        out.append(serve(ldct_hu=chunk)["denoised_hu"].numpy()[..., 0])
        if on_slices:
            on_slices(len(out[-1]))
    return np.concatenate(out)


def _tiled(serve, image: np.ndarray, tile: int) -> np.ndarray:
    """Denoise overlapping tiles and keep each tile's centre."""
    step = tile - 2 * TILE_OVERLAP
    out = np.zeros_like(image, dtype=np.float32)
    rows, cols = image.shape
    for r in range(0, rows, step):
        for c in range(0, cols, step):
            r0, c0 = max(r - TILE_OVERLAP, 0), max(c - TILE_OVERLAP, 0)
            r1, c1 = min(r + step + TILE_OVERLAP, rows), min(c + step + TILE_OVERLAP, cols)
            piece = serve(ldct_hu=tf.constant(image[None, r0:r1, c0:c1, None], tf.float32))
            piece = piece["denoised_hu"].numpy()[0, ..., 0]
            out[r:min(r + step, rows), c:min(c + step, cols)] = \
                piece[r - r0:r - r0 + min(step, rows - r), c - c0:c - c0 + min(step, cols - c)]
    return out


def check_paths(input_dir: str | Path, output_dir: str | Path) -> None:
    """Refuse, before anything is read or written, an output that would touch the input tree:
    the same folder (``--force`` would replace the originals), a folder inside the input (a later
    run would denoise its own outputs and list its ``quarantine.json`` as a bad input) or one that
    holds the input; and an input or output that is not a folder."""
    for flag, path in (("--input", input_dir), ("--output", output_dir)):
        if dicom.is_symlink_loop(path):  # Path.resolve would raise RuntimeError
            raise LdctError(f"{flag} {path} is a symlink loop (a link that leads back to itself); "
                            "point it at a real folder")
    source, target = Path(input_dir).resolve(), Path(output_dir).resolve()
    if not source.is_dir():
        raise LdctError(f"--input {input_dir} is not a folder; point it at a folder of CT DICOM "
                        "files")
    if target.exists() and not target.is_dir():
        raise LdctError(f"--output {output_dir} is a file; choose a folder for the derived series")
    if target == source:
        problem = "is the input folder (the originals would be replaced)"
    elif target.is_relative_to(source):
        problem = "is inside the input folder (a later run would read the outputs as inputs)"
    elif source.is_relative_to(target):
        problem = "contains the input folder"
    else:
        return
    raise LdctError(f"--output {output_dir} {problem}; choose a folder outside {input_dir}")


def run(model: str | Path, input_dir: str | Path, output_dir: str | Path, batch: int = 4,
        force: bool = False, tile: int = DEFAULT_TILE, keep_paths: bool = False) -> dict:
    check_paths(input_dir, output_dir)
    serve, prov = load_export(model)
    model_name = f"{prov.get('name', Path(model).parent.name)} version " \
                 f"{prov.get('version', Path(model).name)}"
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    salt = workdir_salt(output_dir)
    # Headers first (cheap), then one series at a time: memory holds one series, not all.
    index = dicom.index_series(input_dir, salt=salt)
    labels = PathLabels(index.root, salt, keep_paths)
    targets = {p: t for group in index.groups
               for p, t in _targets(group.files, Path(index.root), output_dir).items()}
    uids = RunUids(salt, model, batch, tile, output_dir)
    existing = [t for t in targets.values() if t.exists() and not uids.wrote(t)]
    if existing and not force:
        raise LdctError(f"{len(existing)} output file(s) exist, e.g. {existing[0]}; pass --force "
                        "to replace them or choose another --output")
    started, done, n_series, skipped = time.time(), 0, 0, list(index.skipped)
    train_spacing = (prov.get("training") or {}).get("pixel_spacing_mm")
    quarantine = output_dir / QUARANTINE_FILE
    try:
        for group in index.groups:
            try:
                result = dicom.read_ct_series(list(group.files), salt=salt, root=index.root,
                                              labels=labels)
            except dicom.NoUsableSliceError as exc:
                skipped += exc.skipped
                continue
            skipped += result.skipped
            for series in result.series:
                counter = progress.Counter(f"denoise: series {series.series_key}",
                                           series.n_slices)
                try:
                    with counter:
                        _write_series(serve, series, targets, model_name, batch, tile,
                                      train_spacing, counter.add, uids)
                except Exception as exc:  # noqa: BLE001 - one series must not stop the others
                    entries = _series_failure(series, targets, exc, labels, output_dir)
                    if _disk_fault(exc):  # it stops every series: stop here
                        raise _labelled(exc, labels, output_dir) from None
                    skipped += entries
                    continue
                done += series.n_slices
                n_series += 1
                rate = done / max(time.time() - started, 1e-9)
                counter.finish(f" ({rate:.1f} slices/s)")
    finally:
        dicom.ReadResult([], [(labels(p), r) for p, r in skipped], index.root).write_quarantine(
            quarantine)
    if not n_series:
        raise LdctError(f"no usable CT slice under {str(input_dir)!r}: {len(skipped)} file(s) "
                        f"skipped, see {quarantine}; point --input at a folder of CT DICOM images")
    seconds = time.time() - started
    summary = {"series": n_series, "slices": done, "skipped": len(skipped),
               "seconds": round(seconds, 1), "slices_per_s": round(done / max(seconds, 1e-9), 2),
               "model": model_name}
    print(f"denoise: {done} slices in {n_series} series -> {output_dir} "
          f"({summary['slices_per_s']} slices/s); skipped {len(skipped)} file(s), see "
          f"{quarantine}")
    return summary


class RunUids:
    """The derived UIDs of one output folder, model and setting: new UIDs (never the source's),
    yet the same on every run (``uid``: a hash of the output's secret salt, the model's files,
    ``--batch``, ``--tile`` and the file's place in the tree; pydicom `generate_uid` with entropy
    sources). A run stopped part-way and run again writes the files it wrote before byte for
    byte, and knows them (`wrote`) from other files in the way (which need ``--force``)."""

    def __init__(self, salt: str, model: str | Path, batch: int, tile: int, output_dir: Path):
        digest = hashlib.sha256(f"{salt}\x00{batch}\x00{tile}".encode())
        for file in sorted(p for p in Path(model).rglob("*") if p.is_file()):
            digest.update(file.relative_to(model).as_posix().encode() + b"\x00")
            with open(file, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        self.run, self.output_dir = digest.hexdigest(), Path(output_dir)

    def uid(self, kind: str, key: str) -> str:
        return generate_uid(entropy_srcs=[self.run, kind, key])

    def instance(self, target: Path) -> str:
        return self.uid("instance", target.relative_to(self.output_dir).as_posix())

    def wrote(self, target: Path) -> bool:
        """Whether ``target`` is this run's own file (a run stopped part-way wrote it)."""
        try:
            found = pydicom.dcmread(target, stop_before_pixels=True,
                                    specific_tags=["SOPInstanceUID"]).get("SOPInstanceUID")
        except Exception:  # noqa: BLE001 - not DICOM, unreadable: not ours
            return False
        return found == self.instance(target)


def _write_series(serve, series: dicom.CtSeries, targets: dict[str, Path], model_name: str,
                  batch: int, tile: int, train_spacing: float | None,
                  on_slices: Callable[[int], None] | None = None,
                  uids: RunUids | None = None) -> None:
    """Denoise one series and write it as a derived series (new UIDs, `RunUids`; random without
    ``uids``) at the files' targets, each file whole or not at all (`ldct_tf.atomic`)."""
    _warn_spacing(series, train_spacing)
    denoised = denoise_hu(serve, series.hu, batch, tile, on_slices)
    uid = uids.uid("series", series.series_key) if uids else generate_uid()
    by_file: dict[str, dict[int, np.ndarray]] = {}
    for k, (path, frame) in enumerate(zip(series.source_paths, series.frame_indices)):
        by_file.setdefault(path, {})[frame] = denoised[k]
    for path, frames in by_file.items():
        target = targets[path]
        ds = derived_dataset(Path(path), frames, uid, model_name,
                             uids.instance(target) if uids else None)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic.replacing(target) as partial:
            ds.save_as(partial, enforce_file_format=True)


def _disk_fault(exc: Exception) -> bool:
    """Whether ``exc`` is a fault of the output's disk (full, a quota or size limit, read-only),
    which every later series would meet too (`environment_fault`); a file or folder in the way,
    or a permission, concerns one series."""
    return bool(environment_fault(exc)) and exc.errno in DISK_FAULTS


def _labelled(exc: OSError, labels: PathLabels, output_dir: Path) -> OSError:
    """``exc`` naming its file by labels below the output folder (whose tree mirrors the input's
    names, which can name the patient) or the input folder; by its path with ``--keep-paths``."""
    if not isinstance(exc.filename, str):
        return exc
    mirror = dataclasses.replace(labels, root=str(output_dir), name=str(output_dir))
    return OSError(exc.errno, exc.strerror, mirror.scrub(labels.scrub(exc.filename)))


def _series_failure(series: dicom.CtSeries, targets: dict[str, Path], exc: Exception,
                    labels: PathLabels, output_dir: Path) -> list[tuple[str, str]]:
    """Quarantine entries for every file of a series that failed part-way; its outputs, which
    may be partly written, are removed, so no half series is left beside the whole ones. Paths
    the error quotes (input or output: the output mirrors the input's names) are labelled."""
    files = list(dict.fromkeys(series.source_paths))
    outputs = [targets[path] for path in files]
    mirror = dataclasses.replace(labels, root=str(output_dir), name="<output>")
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    detail = mirror.scrub(labels.scrub((detail.splitlines() or [""])[0], files), outputs)[:160]
    for path in files:
        if targets[path].is_file():
            targets[path].unlink()
    reason = (f"series {series.series_key} not denoised: {type(exc).__name__}: {detail}; no file "
              "of it was written")
    return [(path, reason) for path in files]


def _targets(paths, root: Path, output_dir: Path) -> dict[str, Path]:
    """Output path of every source file: the input's relative path under the output folder."""
    return {p: output_dir / Path(p).resolve().relative_to(root.resolve())
            for p in dict.fromkeys(paths)}


def _warn_spacing(series: dicom.CtSeries, train_spacing: float | None) -> None:
    if not train_spacing:
        return
    spacing = float(np.mean(series.pixel_spacing_mm))
    if max(spacing / train_spacing, train_spacing / spacing) > 2.0:
        print(f"warning: series {series.series_key} has {spacing:.2f} mm pixels; the model was "
              f"trained on {train_spacing:.2f} mm (more than a factor of 2 apart): results may "
              "be poor", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ldct_tf.denoise",
                                     description="Denoise CT DICOM series with an exported model.")
    parser.add_argument("--model", help="saved_models/<name>/<version> (default: the ready model "
                                         "shipped in the package, `ldct_tf.ready_model`)")
    parser.add_argument("--input", required=True, help="folder of DICOM files")
    parser.add_argument("--output", required=True, help="folder for the derived series")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--tile", type=int, default=DEFAULT_TILE,
                        help="denoise slices larger than this in overlapping tiles (pixels)")
    parser.add_argument("--force", action="store_true", help="replace existing output files")
    parser.add_argument("--keep-paths", action="store_true",
                        help="name input files by their real paths in quarantine.json and logs "
                             "(default: salted labels, as folder names can name the patient)")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.tile <= 2 * TILE_OVERLAP:
        raise LdctError(f"--batch must be >= 1 and --tile > {2 * TILE_OVERLAP}, got "
                        f"{args.batch} and {args.tile}")
    model = args.model
    if model is None:
        from ldct_tf import ready_model

        model = ready_model.verify()
        print(f"denoise: no --model given, using the ready model: {ready_model.summary(model)}",
              flush=True)
    check_paths(args.input, args.output)  # before the claim makes --output
    with claim(Path(args.output), parser.prog, argv, "--output"):
        run(model, args.input, args.output, args.batch, args.force, args.tile, args.keep_paths)
    return 0


if __name__ == "__main__":
    from ldct_tf.cli import quiet_startup

    quiet_startup()
    sys.exit(run_cli(main))

