"""What every step command shares: ``--config``, ``--workdir``, ``--set``, the work directory
layout, and a quiet start-up.

Thin entry points (Model Garden style): ``main(argv)`` parses arguments into a `Config` and a work
directory and calls the step's ``run``; expected bad input raises `LdctError`, which `run_cli`
prints as one line with a non-zero exit.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import secrets
from pathlib import Path

from ldct_tf.config import Config, load_config, write_resolved
from ldct_tf.dicom.path_labels import INPUT_LABEL
from ldct_tf.errors import LdctError
from ldct_tf.tf_import import import_tensorflow
from ldct_tf.workdir import CONFIG_FILE, Workdir, default_workdir


class _DropBeamImportNotice(logging.Filter):
    # Beam logs this on the root logger at import when the optional GCP clients are absent.
    def filter(self, record: logging.LogRecord) -> bool:
        return "apitools not found" not in record.getMessage()


def quiet_startup() -> None:
    """For command-line use: plain log lines, no TensorFlow C++ start-up chatter, and only Beam's
    errors (its workers relay internal warnings that mean nothing to a user)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_DropBeamImportNotice())
    logging.getLogger("apache_beam").setLevel(logging.ERROR)
    for name in ("absl", "tensorflow", "h5py"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import_tensorflow()


def base_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", help="TOML config (e.g. pipelines/configs/demo.toml); "
                                         "defaults are used for anything it leaves out")
    parser.add_argument("--workdir", help="work directory of the run (default: runs/<config "
                                          "name>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.KEY=VALUE", help="override one config value (repeatable)")
    return parser


def split_passthrough(argv: list[str]) -> tuple[list[str], list[str]]:
    """``argv`` split at the first ``--``: (our arguments, the ones passed on to Beam)."""
    argv = list(argv)
    split_at = argv.index("--") if "--" in argv else len(argv)
    return argv[:split_at], argv[split_at + 1:]


def resolve(args: argparse.Namespace, extra_overrides: list[str] = ()) -> tuple[Config, Path]:
    """The config (defaults, file, --set) and the work directory, created if needed."""
    config = load_config(args.config, [*extra_overrides, *args.overrides])
    if args.workdir and "://" in args.workdir:
        raise LdctError(f"--workdir {args.workdir!r} is a URL; pass a file-system path (mount a "
                        "bucket with gcsfuse or s3fs to use one)")
    workdir = Path(args.workdir) if args.workdir else default_workdir(args.config)
    if workdir.exists() and not workdir.is_dir():
        raise LdctError(f"--workdir {workdir} is a file; pass a folder for the run (it is "
                        "created if missing)")
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LdctError(f"--workdir {workdir} cannot be created ({exc.strerror}); pass a folder "
                        "you can write to") from None
    return config, workdir


def save_config(config: Config, workdir: Path, *step_dirs: Path) -> None:
    """Write the resolved config to the work directory and to each step output directory, with
    ``data.input`` recorded as ``<input>`` unless ``data.keep_paths`` (folder names can name the
    patient; `ldct_tf.dicom.path_labels`)."""
    if config.data.input and not config.data.keep_paths:
        config = config.replace(data=dataclasses.replace(config.data, input=INPUT_LABEL))
    for directory in (workdir, *step_dirs):
        write_resolved(config, Path(directory) / CONFIG_FILE)


def workdir_salt(workdir: Path) -> str:
    """The run's secret salt for anonymous DICOM keys: made once, kept in ``<workdir>/salt``.

    Secret and per run, so keys cannot be linked to UIDs by hashing guesses; kept, so re-running
    a step in the same work directory reproduces the same keys (and the seeds derived from them).
    """
    path = Workdir(workdir).salt
    if not path.exists():
        path.write_text(secrets.token_hex(16))
        path.chmod(0o600)
    return path.read_text().strip()
