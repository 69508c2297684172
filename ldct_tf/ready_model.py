"""The ready model: a small trained denoiser shipped inside the package, for users who want to
denoise their own scans without training first.

It lives in ``ldct_tf/ready/ldct_denoiser/`` as the same TF Serving SavedModel `ldct_tf.export`
writes (``serving_default``: HU in, HU out), with ``assets/provenance.json`` extended by a
``ready_model`` block (the command and config that trained it, the commit, what data it saw and
the figures measured for it) and ``ldct_tf/ready/SHA256SUMS`` (one line per file of the model).
`python -m ldct_tf.denoise` without ``--model`` uses it after `verify` has checked every file
against its checksum.

Rebuild it (see the README, "A ready model"): train the benchmark preset's steps the fine-tune
needs, then build::

    python -m pipelines.local_runner --config pipelines/configs/benchmark.toml \
        --workdir runs/ready --steps prepare,classifier,cam,pretrain,finetune
    python -m ldct_tf.ready_model build --workdir runs/ready [--phase finetune]
    python -m ldct_tf.ready_model verify
    python -m ldct_tf.ready_model measure   # residual noise on real CT at a simulated 25 % dose

It was trained on synthetic abdomen phantoms at 25 % dose: it is a research tool, not a
diagnostic device, and real scans differ from the phantoms (README, "A ready model").
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

from ldct_tf import atomic, cli
from ldct_tf.errors import LdctError, run_cli
from ldct_tf.provenance import PROVENANCE, read_provenance
from ldct_tf.workdir_lock import claim

READY_ROOT = Path(__file__).resolve().parent / "ready"
READY_MODEL = READY_ROOT / "ldct_denoiser"
CHECKSUMS = READY_ROOT / "SHA256SUMS"
MEASURED = READY_ROOT / "measured.json"
REBUILD = "python -m ldct_tf.ready_model build --workdir RUN"
DESCRIPTION = ("RED-CNN fine-tuned with the Grad-CAM map weight (Han & Baek 2022) on synthetic "
               "256x256 abdomen phantoms at 1.4 mm, LDCT at 25 % dose; research use only, not "
               "for diagnosis")


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksums(folder: Path) -> dict[str, str]:
    """``relative path -> sha256`` of every file under ``folder``."""
    return {p.relative_to(folder).as_posix(): _sha256(p) for p in _files(folder)}


def write_checksums(folder: Path = READY_MODEL, target: Path = CHECKSUMS) -> Path:
    lines = [f"{digest}  {name}" for name, digest in sorted(checksums(folder).items())]
    return atomic.write_text(target, "\n".join(lines) + "\n")


def read_checksums(path: Path = CHECKSUMS) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            out[name.strip()] = digest
    return out


def verify(folder: Path = READY_MODEL, sums: Path = CHECKSUMS) -> Path:
    """The ready model's folder after checking each file against ``SHA256SUMS``; an `LdctError`
    naming the first problem (missing model, missing/extra/changed file) otherwise."""
    if not (folder / "saved_model.pb").is_file() or not sums.is_file():
        raise LdctError(f"no ready model in {folder.parent}; pass --model "
                        f"saved_models/<name>/<version>, or rebuild it with `{REBUILD}`")
    expected, found = read_checksums(sums), checksums(folder)
    for name in sorted(set(expected) | set(found)):
        if name not in found:
            raise LdctError(f"the ready model is missing {name}; reinstall ldct_tf or rebuild it "
                            f"with `{REBUILD}`")
        if name not in expected:
            raise LdctError(f"the ready model has a file its checksums do not list ({name}); "
                            f"reinstall ldct_tf or rebuild it with `{REBUILD}`")
        if expected[name] != found[name]:
            raise LdctError(f"the ready model's {name} does not match its checksum (damaged or "
                            f"changed); reinstall ldct_tf or rebuild it with `{REBUILD}`")
    return folder


def summary(folder: Path = READY_MODEL) -> str:
    """One line naming the ready model (for `denoise` and `ldct-tf info`)."""
    if not (folder / "saved_model.pb").is_file():
        return f"none shipped (rebuild: {REBUILD})"
    ready = read_provenance(folder).get("ready_model", {})
    commit = (ready.get("git_commit") or "unknown")[:10]
    return f"{folder} ({ready.get('description', DESCRIPTION)}; commit {commit})"


def build(workdir: Path, phase: str = "finetune", command: str | None = None,
          target: Path = READY_MODEL) -> Path:
    """Export the run's ``phase`` network into the package with its provenance and checksums.
    The model folder is built beside ``target`` and swapped in whole (`ldct_tf.atomic`), then its
    checksums are written: a build stopped part-way leaves the old model, or a model whose
    checksums `verify` refuses, never a half-copied one that passes."""
    from ldct_tf.config import load_config
    from ldct_tf.export import export_model
    from ldct_tf.workdir import CONFIG_FILE, Workdir

    workdir = Path(workdir)
    config = load_config(Workdir(workdir).denoiser(phase) / CONFIG_FILE)
    manifest = Workdir(workdir).manifest
    trained_by = json.loads(manifest.read_text()).get("command") if manifest.exists() else None
    # one build at a time: the model and its checksums are written together
    with claim(target.parent, command or f"ready model build of {workdir}", ""), \
            tempfile.TemporaryDirectory() as scratch:
        with atomic.replacing_dir(target) as building:
            exported = export_model(workdir, phase, "ldct_denoiser", 1, scratch)
            shutil.copytree(exported, building)
            _add_provenance(building, workdir, phase, config, trained_by, command)
        write_checksums(target, target.parent / CHECKSUMS.name)
    print(f"ready model: {phase} of {workdir} -> {target} "
          f"({sum(p.stat().st_size for p in _files(target)) / 1e6:.1f} MB, checksums in "
          f"{target.parent / CHECKSUMS.name})")
    return target


def _add_provenance(target: Path, workdir: Path, phase: str, config, trained_by: str | None,
                    command: str | None) -> None:
    """Extend the export's provenance in ``target`` with the ``ready_model`` block."""
    provenance_path = target / "assets" / PROVENANCE
    provenance = json.loads(provenance_path.read_text())
    provenance.pop("exported_at", None)  # the checksums should not change with the clock
    provenance["ready_model"] = {
        "description": DESCRIPTION,
        "trained_by": trained_by,
        "built_by": command or f"python -m ldct_tf.ready_model build --workdir {workdir} "
                               f"--phase {phase}",
        "git_commit": provenance.get("git_commit"),
        "data": {"source": config.data.source, "image_size": config.data.image_size,
                 "pixel_spacing_mm": config.data.training_pixel_spacing_mm,
                 "dose_fraction": config.data.simulated_dose_fraction,
                 "n_series": config.data.n_series,
                 "slices_per_series": config.data.slices_per_series,
                 "lesion": config.to_dict()["lesion"]},
        "config": config.to_dict(),
        "measured": {"training_run": _run_figures(workdir, phase),
                     "real_ct_25_percent_dose": measure(target)},
    }
    provenance_path.write_text(json.dumps(provenance, indent=2, default=str) + "\n")


def _run_figures(workdir: Path, phase: str) -> dict:
    """The run's own figures for the network: its val PSNR/SSIM, and its evaluation row when the
    run was evaluated."""
    from ldct_tf.workdir import SUMMARY_FILE, Workdir

    paths = Workdir(workdir)
    out = {}
    summary_path = paths.denoiser(phase) / SUMMARY_FILE
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        out["val"] = {key: summary.get(key) for key in ("val_psnr_db", "val_ssim", "window_hu",
                                                        "kept_epoch", "seed")}
    if paths.metrics.exists():
        row = json.loads(paths.metrics.read_text()).get("sets", {}).get(phase) or {}
        picks = {"contrast_kept": ("value", "ci95"), "cho": ("auc", "auc_ci95"),
                 "abdomen": ("psnr", "ssim"), "noise": ("noise_index_hu", "ratio_to_ldct")}
        out["test"] = {key: {k: row[key].get(k) for k in keys}
                       for key, keys in picks.items() if isinstance(row.get(key), dict)}
    return out


def measure(folder: Path = READY_MODEL, dose_fraction: float = 0.25, seed: int = 0) -> dict:
    """What the model does to real CT: pydicom's ``CT_small.dcm`` (the real slice the tests use)
    taken as the normal dose, lowered to ``dose_fraction`` twice by projection-domain noise
    insertion (two seeds), each denoised. The noise the model leaves is the SD of the difference
    of the two outputs over sqrt(2) in the body (HU > -500; the anatomy cancels), against the
    inserted noise (the same for the two inputs); RMSE against the normal-dose slice too."""
    import numpy as np
    from pydicom.data import get_testdata_file

    from ldct_tf import dicom
    from ldct_tf.ct import simulate
    from ldct_tf.denoise import denoise_hu, load_export

    source = get_testdata_file("CT_small.dcm")
    series = dicom.read_ct_series([source]).series[0]
    ndct = series.hu[0]
    spacing = float(np.mean(series.pixel_spacing_mm))
    lowered = np.stack([simulate.simulate_low_dose(ndct, spacing, dose_fraction, [seed, k])
                        for k in (1, 2)])
    serve, _ = load_export(folder)
    denoised = denoise_hu(serve, lowered, batch=2)
    body = ndct > -500

    def pair_sd(images):
        return float(np.std((images[0] - images[1])[body]) / np.sqrt(2))

    def rmse(image):
        return float(np.sqrt(np.mean((image - ndct)[body] ** 2)))

    return {"image": "pydicom CT_small.dcm", "size": list(ndct.shape), "pixel_spacing_mm": spacing,
            "dose_fraction": dose_fraction, "body_pixels": int(body.sum()),
            "noise_sd_hu": {"ldct": round(pair_sd(lowered), 2),
                            "denoised": round(pair_sd(denoised), 2)},
            "rmse_to_ndct_hu": {"ldct": round(float(np.mean([rmse(x) for x in lowered])), 2),
                                "denoised": round(float(np.mean([rmse(x) for x in denoised])), 2)}}


def main(argv: list[str] | None = None) -> int:
    parser = cli.base_parser("python -m ldct_tf.ready_model",
                             "Build, verify or measure the ready model shipped in the package.")
    parser.add_argument("action", choices=("build", "verify", "measure"))
    parser.add_argument("--phase", default="finetune", choices=("finetune", "finetune_pairs"))
    args = parser.parse_args(argv)
    if args.action == "verify":
        print(f"ready model OK: {verify()}")
        return 0
    if args.action == "measure":
        print(json.dumps(measure(verify())))
        return 0
    _, workdir = cli.resolve(args, create=False)  # reads a trained run
    with cli.claim(workdir, parser.prog, argv):  # no training may rewrite the model meanwhile
        build(workdir, args.phase, cli.command_line(parser.prog, argv))
    return 0


if __name__ == "__main__":
    cli.quiet_startup()
    sys.exit(run_cli(main))
