"""Step commands at the command line, as a fresh process or in this one.

A fresh ``python -m ldct_tf.STEP`` pays TensorFlow's start-up (about 5 s on 2 cores) before it
fails, so each command keeps one test that runs it for real (`run_module`: the ``python -m`` glue
prints one line, exits 2, shows no traceback), and its other error cases call the same
``run_cli(main, argv)`` the ``__main__`` calls, in this process (`run_in_process`). What a fresh
process would show on stderr is kept: printed lines (file-descriptor level, so C++ output too),
log records at the levels `ldct_tf.cli.quiet_startup` sets (with any traceback they carry), and
warnings; an argparse error's ``SystemExit`` becomes the exit code.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings
from dataclasses import dataclass

from ldct_tf.errors import run_cli

# the levels `ldct_tf.cli.quiet_startup` sets: INFO on the root logger, and these
QUIET = {"absl": logging.WARNING, "tensorflow": logging.WARNING, "h5py": logging.WARNING,
         "apache_beam": logging.ERROR}


@dataclass
class Result:
    """What `subprocess.run(..., capture_output=True, text=True)` gives the tests."""

    returncode: int
    stdout: str
    stderr: str


def run_module(module: str, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    """``python -m module argv...`` in a fresh process, output captured as text."""
    return subprocess.run([sys.executable, "-m", module, *map(str, argv)], capture_output=True,
                          text=True, **kwargs)


def _logged(record: logging.LogRecord) -> str:
    text = record.getMessage()
    if "apitools not found" in text:  # dropped by quiet_startup's filter
        return ""
    if record.exc_info:
        text += "\n" + logging.Formatter().formatException(record.exc_info)
    return text + "\n"


def run_in_process(main, argv: list[str], capfd, caplog) -> Result:
    """``run_cli(main, argv)`` here, with the exit code and output a ``python -m`` run gives
    (``capfd`` and ``caplog`` are the test's fixtures)."""
    capfd.readouterr()  # drop what the test printed before
    for name, level in QUIET.items():
        caplog.set_level(level, logger=name)
    caplog.set_level(logging.INFO)  # last: it sets the capturing handler's level too
    first = len(caplog.records)
    with warnings.catch_warnings(record=True) as caught:
        # Python's default filters for a script run with `python -m`
        warnings.simplefilter("default")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                         ResourceWarning):
            warnings.filterwarnings("ignore", category=category)
        try:
            code = run_cli(main, [str(a) for a in argv])
        except SystemExit as exc:  # argparse (usage errors: 2, --help: 0)
            code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
            if exc.code is not None and not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
    out, err = capfd.readouterr()
    logged = "".join(_logged(r) for r in caplog.records[first:] if r.levelno >= _level(r.name))
    shown = "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line)
                    for w in caught)
    return Result(code, out, err + logged + shown)


def _level(name: str) -> int:
    """The level a logger of this name shows at under quiet_startup."""
    while name:
        if name in QUIET:
            return QUIET[name]
        name = name.rpartition(".")[0]
    return logging.INFO
