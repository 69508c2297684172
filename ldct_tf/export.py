"""`python -m ldct_tf.export`: a TF Serving SavedModel of the trained denoiser, HU in, HU out.

Written with ``keras.export.ExportArchive`` (Keras 3: ``model.save(save_format="tf")`` no longer
exists) to ``<out>/<name>/<version>/`` (integer versions; the next free one by default; an existing
version is only replaced with ``--force``). Signatures:

- ``serving_default``: ``ldct_hu`` float32 ``[batch, height, width, 1]`` in HU, any size ->
  ``denoised_hu`` float32, same shape, HU. Clipping/normalisation and back to HU happen inside the
  graph with the same `normalize_hu`/`denormalize_hu` as training.
- ``serve_examples``: ``examples``, a batch of serialized ``tf.train.Example`` with the ``ldct`` key
  (the TFX convention; slices of one batch share a size) -> ``denoised_hu``.

The network is rebuilt under float32 whatever policy trained it, in its inference form (transposed
convolutions computed as padded convolutions: the same function, about 3x faster on CPUs).
Provenance goes to ``assets/provenance.json`` (training config summary, package versions, git
commit; the training dose, null where the LDCT were real scans of unknown dose); ``denoise`` reads
it. ``<out>/models.config`` lists every exported model for ``tensorflow_model_server
--model_config_file``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ldct_tf import atomic, cli
from ldct_tf.config import Config, load_config
from ldct_tf.errors import LdctError, run_cli
from ldct_tf.models.inference import for_inference
from ldct_tf.models.preprocessing import HU_MAX, HU_MIN, denormalize_hu, normalize_hu
from ldct_tf.provenance import PROVENANCE, git_commit, package_versions
from ldct_tf.records import schema as F
from ldct_tf.tf_import import import_tensorflow
from ldct_tf.train.precision import policy_scope
from ldct_tf.workdir import CONFIG_FILE, Workdir
from ldct_tf.workdir_lock import claim as claim_folder

tf = import_tensorflow()
import keras  # noqa: E402


def serving_module(network: keras.Model) -> tuple:
    """The two serving functions of ``network`` (a float32 Keras model in network range)."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32,
                                                name="ldct_hu")])
    def serve(ldct_hu):
        return {"denoised_hu": denormalize_hu(network(normalize_hu(ldct_hu), training=False))}

    spec = {key: value for key, value in F.feature_spec().items()
            if key in (F.LDCT, F.HEIGHT, F.WIDTH)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(examples):
        parsed = tf.io.parse_example(examples, spec)
        shape = tf.stack([tf.shape(examples, out_type=tf.int64)[0], parsed[F.HEIGHT][0],
                          parsed[F.WIDTH][0], tf.constant(1, tf.int64)])
        hu = tf.cast(tf.reshape(tf.io.decode_raw(parsed[F.LDCT], tf.int16, little_endian=True),
                                shape), tf.float32)
        return serve(hu)

    return serve, serve_examples


def float32_network(workdir: Path, phase: str) -> tuple[keras.Model, Path]:
    """The phase's best network rebuilt under float32 in its inference form
    (`ldct_tf.models.inference`), and its folder."""
    from ldct_tf.models.denoiser import build_network
    from ldct_tf.train.denoiser import load_trained

    trained = load_trained(workdir, phase)
    folder = Workdir(workdir).denoiser(phase)
    config = load_config(folder / CONFIG_FILE)
    with policy_scope("float32"):
        network = build_network(config.model)
        network.set_weights([w.astype("float32") for w in trained.get_weights()])
        return for_inference(network), folder


def next_version(model_dir: Path) -> int:
    versions = [int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def provenance(folder: Path, phase: str, name: str, version: int) -> dict:
    """What `export_model` writes to ``assets/provenance.json`` for the phase trained in
    ``folder``. The training dose is the simulated one, or null with ``dose`` saying it is
    unknown where the LDCT were real scans (as the records say: `prepare.examples`)."""
    config = load_config(folder / CONFIG_FILE)
    dose = config.data.simulated_dose_fraction
    dose_text = ("unknown: real low-dose scans, whose dose the data do not state" if dose is None
                 else f"simulated at {dose:g} of the normal dose")
    return {
        "name": name, "version": version, "phase": phase,
        "finetune_mode": config.finetune.mode if phase.startswith("finetune") else None,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "training": {"dose_fraction": dose, "dose": dose_text,
                     "pixel_spacing_mm": config.data.training_pixel_spacing_mm,
                     "source": config.data.source,
                     "normalization": {"hu_min": HU_MIN, "hu_max": HU_MAX,
                                       "network_range": [0.0, 1.0]},
                     "patch_size": config.input.patch_size,
                     "architecture": {"arch": config.model.arch, "filters": config.model.filters,
                                      "depth": config.model.depth,
                                      "kernel_size": config.model.kernel_size},
                     "precision": config.train.precision},
        "packages": package_versions(), "git_commit": git_commit(),
        "signatures": {"serving_default": "ldct_hu float32 [batch, height, width, 1] HU -> "
                                          "denoised_hu float32 HU",
                       "serve_examples": "examples string [batch] (tf.train.Example with 'ldct') "
                                         "-> denoised_hu float32 HU"},
        "intended_use": "research use only; not a medical device",
    }


def write_models_config(out: Path, adding: str | None = None) -> Path:
    """TF Serving model config listing every exported model under ``out``, and ``adding`` (a model
    whose first version is about to be swapped in)."""
    names = {model_dir.name for model_dir in Path(out).iterdir() if model_dir.is_dir()
             and any(v.is_dir() and v.name.isdigit() for v in model_dir.iterdir())}
    entries = []
    for name in sorted(names | ({adding} if adding else set())):
        entries.append(f'  config {{\n    name: "{name}"\n    base_path: '
                       f'"/models/{name}"\n    model_platform: "tensorflow"\n  }}')
    path = Path(out) / "models.config"
    atomic.write_text(path, "model_config_list {\n" + "\n".join(entries) + "\n}\n")
    return path


def run(config: Config, workdir: Path) -> dict:
    """The pipeline step: export the run's method network (the map fine-tune, or the paper's
    literal pairs fine-tune when that is the only mode) as ``[pipeline] export_name`` into
    ``export_dir``; return ``{"export_path": ...}``."""
    phase = "finetune" if "weighted" in config.pipeline.finetune_modes else "finetune_pairs"
    target = export_model(workdir, phase, config.pipeline.export_name, None,
                          config.pipeline.export_dir)
    return {"export_path": str(target)}


def export_model(workdir: Path, phase: str = "finetune", name: str = "ldct_denoiser",
                 version: int | None = None, out: str | Path = "saved_models",
                 force: bool = False, command: str | None = None) -> Path:
    """Export the phase's best network; return the version directory. The version folder
    appears whole or not at all (`ldct_tf.atomic.replacing_dir`): a killed export leaves no
    half-written version for TF Serving to load, nor one that takes the next version number.
    ``out`` is claimed meanwhile (`ldct_tf.workdir_lock`; ``command`` names this export to
    another): two exports never take one version number or write ``models.config`` together."""
    network, folder = float32_network(Path(workdir), phase)
    with claim_folder(out, command or f"export of {workdir}", "--out"):
        return _write_version(network, folder, phase, name, version, Path(out), force)


def _write_version(network, folder: Path, phase: str, name: str, version: int | None, out: Path,
                   force: bool) -> Path:
    model_dir = Path(out) / name
    version = version or next_version(model_dir)
    target = model_dir / str(version)
    if target.exists() and not force:
        raise LdctError(f"{target} exists; pass --force to replace it or --version N for "
                        "another version")
    archive = keras.export.ExportArchive()
    archive.track(network)
    serve, serve_examples = serving_module(network)
    archive.add_endpoint("serving_default", serve)
    archive.add_endpoint("serve_examples", serve_examples)
    with atomic.replacing_dir(target) as partial:
        archive.write_out(str(partial), verbose=False)
        (partial / "assets").mkdir(exist_ok=True)
        (partial / "assets" / PROVENANCE).write_text(
            json.dumps(provenance(folder, phase, name, version), indent=2) + "\n")
        # before the version appears, which is the export's last act: a run killed in between
        # and run again makes the same version, not the next
        config_path = write_models_config(Path(out), adding=name)
    print(f"export: {phase} -> {target} (signatures serving_default, serve_examples); "
          f"TF Serving config {config_path}")
    print(f"  serve: docker run -p 8501:8501 -p 8500:8500 -v {Path(out).resolve()}:/models "
          f"tensorflow/serving --model_config_file=/models/models.config")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = cli.base_parser("python -m ldct_tf.export",
                             "Export the denoiser as a TF Serving SavedModel (HU in, HU out).")
    parser.add_argument("--phase", default="finetune",
                        choices=("finetune", "pretrain", "finetune_pairs"))
    parser.add_argument("--name", default="ldct_denoiser")
    parser.add_argument("--version", type=int, help="integer version (default: the next free)")
    parser.add_argument("--out", default="saved_models")
    parser.add_argument("--force", action="store_true", help="replace an existing version")
    args = parser.parse_args(argv)
    _, workdir = cli.resolve(args, create=False)  # reads a finished run
    if args.version is not None and args.version < 1:
        raise LdctError(f"--version must be a positive integer, got {args.version}")
    with cli.claim(workdir, parser.prog, argv):  # no training may rewrite the model meanwhile
        export_model(workdir, args.phase, args.name, args.version, args.out, args.force,
                     cli.command_line(parser.prog, argv))
    return 0


if __name__ == "__main__":
    cli.quiet_startup()
    sys.exit(run_cli(main))
