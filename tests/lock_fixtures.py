"""Another process holding a folder's lock (`ldct_tf.workdir_lock`) while a test runs."""

import contextlib
import subprocess
import sys

from ldct_tf.workdir import LOCK_FILE

# Claims argv[1] as argv[2] in another process and holds it until its stdin closes.
HOLD = """
import sys
from ldct_tf.workdir_lock import claim
with claim(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def held_elsewhere(folder, command="python -m ldct_tf.prepare --workdir W"):
    """Another process holds ``folder`` for the block; yields its pid."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), command],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc.pid
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    assert not (folder / LOCK_FILE).exists(), "the holder did not remove its lock"
