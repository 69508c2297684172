"""Mixed-precision policy for one training run, restored afterwards.

Config values: "float32", "mixed_float16", "mixed_bfloat16", or "auto" (mixed_float16 when a GPU
is visible, else float32: on CPUs float16 is emulated and slow). The global Keras policy is changed
only inside `policy_scope`, so no caller finds it changed after a function returns.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from ldct_tf.config import POLICIES
from ldct_tf.tf_import import import_tensorflow


def resolve_policy(name: str) -> str:
    if name not in POLICIES:
        raise ValueError(f"precision must be one of {', '.join(POLICIES)}, got {name!r}")
    if name != "auto":
        return name
    tf = import_tensorflow()
    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"


@contextlib.contextmanager
def policy_scope(name: str) -> Iterator[str]:
    """Set the global Keras dtype policy (resolved from ``name``) for the block; yield its name."""
    import_tensorflow()
    import keras

    previous = keras.mixed_precision.global_policy()
    resolved = resolve_policy(name)
    keras.mixed_precision.set_global_policy(resolved)
    try:
        yield resolved
    finally:
        keras.mixed_precision.set_global_policy(previous)
