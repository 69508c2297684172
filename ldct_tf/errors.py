"""The one domain exception and the command-line wrapper that turns it into a one-line message.

Expected bad input (a broken file, a bad config value, a missing model) raises `LdctError` with a
message that names the thing and the fix; `run_cli` prints it on one line and exits non-zero, with
no traceback (the pydicom `InvalidDicomError("... Use force=True ...")` style).
"""

from __future__ import annotations

import sys
from typing import Callable

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class LdctError(Exception):
    """Bad input a user can fix; the message says what is wrong and how to fix it."""


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Call `main(argv)`; map `LdctError` to a one-line message on stderr and exit status 2."""
    try:
        return int(main(argv) or 0)
    except LdctError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
