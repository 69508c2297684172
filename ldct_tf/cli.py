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
import shlex
import sys
from pathlib import Path
from typing import ContextManager

from ldct_tf import atomic
from ldct_tf.config import Config, load_config, write_resolved
from ldct_tf.dicom.path_labels import INPUT_LABEL
from ldct_tf.errors import LdctError
from ldct_tf.tf_import import import_tensorflow
from ldct_tf.workdir import CONFIG_FILE, Workdir, default_workdir
from ldct_tf.workdir_lock import claim as claim_folder


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


def resolve(args: argparse.Namespace, extra_overrides: list[str] = (), *,
            create: bool = True) -> tuple[Config, Path]:
    """The config (defaults, file, --set) and the work directory, created if needed; with
    ``create=False`` (commands that read a finished run: export, evaluate) a missing one is an
    error and nothing is created."""
    config = load_config(args.config, [*extra_overrides, *args.overrides])
    if args.workdir and "://" in args.workdir:
        raise LdctError(f"--workdir {args.workdir!r} is a URL; pass a file-system path (mount a "
                        "bucket with gcsfuse or s3fs to use one)")
    workdir = Path(args.workdir) if args.workdir else default_workdir(args.config)
    if workdir.exists() and not workdir.is_dir():
        raise LdctError(f"--workdir {workdir} is a file; pass a folder for the run (it is "
                        "created if missing)")
    if not create and not workdir.is_dir():
        config_arg = f"--config {args.config} " if args.config else ""
        raise LdctError(f"--workdir {workdir} does not exist, so there is no trained run to read; "
                        f"make one with `python -m pipelines.local_runner {config_arg}--workdir "
                        f"{workdir}` (every step) or pass the work directory of a finished run")
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LdctError(f"--workdir {workdir} cannot be created ({exc.strerror}); pass a folder "
                        "you can write to") from None
    return config, workdir


def claim(folder: Path, prog: str, argv: list[str] | None,
          option: str = "--workdir") -> ContextManager[Path]:
    """Hold ``folder`` for this command's writes (`ldct_tf.workdir_lock.claim`): a second writer
    is refused with a message naming this command (``prog`` and ``argv``, default
    ``sys.argv[1:]``), and told to change ``option``."""
    return claim_folder(folder, command_line(prog, argv), option)


def command_line(prog: str, argv: list[str] | None = None) -> str:
    """The command as typed (``argv``, default ``sys.argv[1:]``), its input folder shown as
    ``<input>`` (folder names can name the patient, `ldct_tf.dicom.path_labels`)."""
    argv = sys.argv[1:] if argv is None else argv
    shown = []
    for previous, arg in zip(["", *argv], argv):
        if previous == "--input":
            arg = INPUT_LABEL
        elif arg.startswith(("--input=", "data.input=")):
            arg = arg.split("=", 1)[0] + "=" + INPUT_LABEL
        shown.append(arg)
    return shlex.join([*prog.split(), *shown])


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
    Written whole or not at all (`ldct_tf.atomic`), readable by its owner only. An empty salt,
    which earlier versions left when the disk was full, is made anew (nothing can have been keyed
    with it: every step refused it); a garbled one (not text, or control characters) is refused
    rather than replaced, as keys already made with it could not be reproduced by another.
    """
    path = Workdir(workdir).salt
    if not path.exists():
        atomic.write_text(path, secrets.token_hex(16), mode=0o600)
    raw = path.read_bytes()
    if not raw.strip():
        print(f"warning: {path} was empty (a run stopped while writing it); made a new salt",
              file=sys.stderr)
        atomic.write_text(path, secrets.token_hex(16), mode=0o600)
        raw = path.read_bytes()
    try:
        salt = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        salt = "\x00"
    if not salt.isprintable():
        raise LdctError(f"{path} is damaged (not the text a run writes); if nothing in "
                        f"{Path(workdir)} was made with it, delete it and run again (a new one is "
                        "made), else restore it from a backup")
    return salt
