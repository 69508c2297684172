"""Helpers of the fault tests (`test_*_faults.py`): nothing half-made, one line, a rerun gives
the uninterrupted result.

A full disk is a file-size limit (`resource.RLIMIT_FSIZE`, SIGXFSZ ignored: a write past it fails
with EFBIG, as on a full disk), set in a fresh process after its start-up. A kill is SIGKILL of a
fresh ``python -m ldct_tf.STEP`` when a given file first appears. Each rerun runs the same command
line in this process (TensorFlow's start-up paid once) and is compared with an uninterrupted run of
it: file by file, bytes equal (JSON without the seconds a step records), except exports, whose
SavedModel bytes differ from process to process (object names): there the files, the provenance
and every output of both signatures must match. Every run of a folder starts from the same salt,
so the salted keys and UIDs of the reference and the rerun agree.
"""


import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pydicom
from records_fixtures import TINY

from ldct_tf import atomic, cli
from ldct_tf.errors import EXIT_BAD_INPUT, run_cli
from ldct_tf.records import count_records
from ldct_tf.workdir import SALT_FILE

SALT = "5a17" * 8
SETTINGS = [arg for item in TINY for arg in ("--set", item)]
VOLATILE = {"seconds", "training_seconds", "exported_at", "slices_per_s"}  # a run's timings
# Runs `python -m MODULE ARGS` under a file-size limit, set after the module's imports (TensorFlow
# probes the temporary folder while it starts).
LIMITED = """
import importlib, resource, runpy, signal, sys, tempfile
limit, module = int(sys.argv[1]), sys.argv[2]
importlib.import_module(module)
tempfile.gettempdir()
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
sys.argv = [module, *sys.argv[3:]]
from ldct_tf.cli import quiet_startup
quiet_startup()
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def limited(limit: int, module: str, argv: list) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LIMITED, str(limit), module, *map(str, argv)],
                          capture_output=True, text=True, timeout=300)


def killed_when(ready: Callable[[], bool], module: str, argv: list) -> None:
    """Start ``python -m module argv``, SIGKILL it as soon as ``ready()``; it must not finish
    first."""
    proc = subprocess.Popen([sys.executable, "-m", module, *map(str, argv)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while proc.poll() is None and not ready() and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"{module} ended before the kill:\n{err[-2000:]}"


def appeared(folder: Path, pattern: str) -> Callable[[], bool]:
    return lambda: any(Path(folder).glob(pattern))


def in_process(main, argv: list) -> None:
    assert run_cli(main, [str(a) for a in argv]) == 0


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode == EXIT_BAD_INPUT, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def _comparable(name: str, data: bytes):
    if name.endswith(".json"):
        return _drop_volatile(json.loads(data))
    if name.endswith(".npz"):  # its zip entries carry the time they were written
        with np.load(io.BytesIO(data)) as arrays:
            return {key: (arrays[key].dtype.str, arrays[key].shape, arrays[key].tobytes())
                    for key in arrays.files}
    return data


def _drop_volatile(value):
    if isinstance(value, dict):
        return {k: _drop_volatile(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_drop_volatile(v) for v in value]
    return value


def artifacts(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, object]:
    """Every file under ``folder`` (relative path -> comparable content); none half-made: no
    temporary file of `ldct_tf.atomic`, no lock, no Beam temporary folder, no empty file."""
    found = {}
    for path in sorted(Path(folder).rglob("*")):
        rel = path.relative_to(folder).as_posix()
        assert not atomic.is_partial(path) and path.name != ".lock", rel
        assert not path.name.startswith(("beam-temp", ".beam")), rel
        if path.is_file() and not rel.startswith(skip):
            data = path.read_bytes()
            assert data, f"{rel} is empty"
            found[rel] = _comparable(path.name, data)
    return found


def check_whole(folder: Path) -> None:
    """Each file a later run trusts parses or loads (what a killed run left in a temporary name or
    a Beam temporary folder no reader opens)."""
    for path in Path(folder).rglob("*"):
        if not path.is_file() or atomic.is_partial(path) or "beam-temp" in str(path):
            continue
        if path.name == SALT_FILE:
            assert cli.workdir_salt(path.parent) == path.read_text()
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".dcm":
            assert pydicom.dcmread(path).pixel_array.size
        elif ".tfrecord" in path.name:
            count_records(path)


def salted(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SALT_FILE).write_text(SALT)
    return folder
