"""Import TensorFlow without its C++ start-up lines.

On a CPU-only host every process that imports the full ``tensorflow`` package prints CUDA probing
lines ("Could not find cuda drivers ...") through absl before logging is initialised, whatever
TF_CPP_MIN_LOG_LEVEL says, and a "failed call to cuInit" error at the first operation. Step
commands and Beam workers import TensorFlow through `import_tensorflow`, which sends file
descriptor 2 to /dev/null while it imports TensorFlow and lists the devices (which initialises the
CUDA platform), and only then. Python exceptions still propagate; `ldct-tf info` shows which GPUs
TensorFlow found.
"""

from __future__ import annotations

import os
import sys


def import_tensorflow():
    """The ``tensorflow`` module, imported quietly the first time."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow

        tensorflow.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tensorflow
