"""The one domain exception and the command-line wrapper that turns it into a one-line message.

Expected bad input (a broken file, a bad config value, a missing model) raises `LdctError` with a
message that names the thing and the fix; `run_cli` prints it on one line and exits non-zero, with
no traceback (the pydicom `InvalidDicomError("... Use force=True ...")` style).

A fault of the environment rather than of the code (a full disk, a quota, a file-size limit, a
read-only file system, a permission, a file deleted while a run used it, a folder or file in the
way) is an `OSError` with its errno; `run_cli` prints it as one line naming the file and the fix
(`environment_fault`), exit status 2. Any other exception keeps its traceback: it is a bug to
report.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Callable

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class LdctError(Exception):
    """Bad input a user can fix; the message says what is wrong and how to fix it."""


_ELSEWHERE = "choose another --workdir/--output"
# errno -> (what happened, the fix); the first four are never the code's fault
ENVIRONMENT_FAULTS = {
    errno.ENOSPC: ("no space left on device writing {}", f"free space or {_ELSEWHERE}, then run "
                                                          "again"),
    errno.EDQUOT: ("disk quota exceeded writing {}", f"free space within your quota or "
                                                      f"{_ELSEWHERE}, then run again"),
    errno.EFBIG: ("file too large writing {} (the file system's or the process's file-size "
                  "limit, ulimit -f)", f"raise the limit or {_ELSEWHERE}, then run again"),
    errno.EROFS: ("read-only file system at {}", f"{_ELSEWHERE} on a writable disk"),
    errno.EACCES: ("permission denied on {}", f"fix its permissions or {_ELSEWHERE}"),
    errno.EPERM: ("operation not permitted on {}", f"fix its permissions or {_ELSEWHERE}"),
    errno.ENOENT: ("{} is missing (moved or deleted while the run used it, or never made)",
                   "put it back or make it again, and leave inputs and outputs alone while a run "
                   "works"),
    errno.EISDIR: ("{} is a folder where a file belongs", f"remove it or {_ELSEWHERE}"),
    errno.ENOTDIR: ("{} cannot be reached: a file stands where a folder of its path belongs",
                    f"remove that file or {_ELSEWHERE}"),
}
# without a file named, these are more likely a bug
_NEED_A_NAME = {errno.EACCES, errno.EPERM, errno.ENOENT, errno.EISDIR, errno.ENOTDIR}


def environment_fault(exc: BaseException) -> str | None:
    """The one-line message for an `OSError` the environment caused (`ENVIRONMENT_FAULTS`), naming
    its file; None for any other exception (permission and missing-file errors only when they
    name a file: otherwise they are more likely a bug)."""
    if not isinstance(exc, OSError) or exc.errno not in ENVIRONMENT_FAULTS:
        return None
    named = isinstance(exc.filename, (str, bytes, os.PathLike))
    if exc.errno in _NEED_A_NAME and not named:
        return None
    what, fix = ENVIRONMENT_FAULTS[exc.errno]
    where = os.fsdecode(exc.filename) if named else "a file (not named by the system)"
    if isinstance(exc.filename2, (str, bytes, os.PathLike)):
        where += f" (renaming to {os.fsdecode(exc.filename2)})"
    return f"{what.format(where)}: {fix}"


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Call `main(argv)`; map `LdctError` and a fault of the environment (`environment_fault`) to
    a one-line message on stderr and exit status 2."""
    try:
        return int(main(argv) or 0)
    except LdctError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        message = environment_fault(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
