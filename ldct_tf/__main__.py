"""`ldct-tf STEP [ARGS...]`: one entry point for the step commands (`python -m ldct_tf.STEP` too).

`ldct-tf info` prints the package versions, the DICOM decoders available, the accelerators seen and
the ready model shipped (`ldct_tf.ready_model`), which is what a bug report needs.
"""

from __future__ import annotations

import sys

from ldct_tf.steps import COMMANDS, command_main


def info() -> int:
    from ldct_tf.provenance import PACKAGES, package_versions

    extra = ("pylibjpeg", "pylibjpeg-libjpeg", "pylibjpeg-openjpeg", "pylibjpeg-rle")
    for package, version in package_versions(PACKAGES + extra).items():
        print(f"{package:20s} {version or 'not installed'}")
    from ldct_tf.dicom import available_decoders

    print("DICOM decoders:      " + ", ".join(available_decoders()))
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    print(f"GPUs:                {len(gpus)} {[g.name for g in gpus]}")
    from ldct_tf import ready_model

    print(f"ready model:         {ready_model.summary()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        names = ", ".join(["info", *COMMANDS])
        print(f"usage: ldct-tf STEP [ARGS...]   steps: {names}")
        return 0 if argv else 2
    step, rest = argv[0], argv[1:]
    if step == "info":
        return info()
    if step not in COMMANDS:
        print(f"error: unknown step {step!r}; choose one of: info, {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 2
    from ldct_tf.cli import quiet_startup
    from ldct_tf.errors import run_cli

    quiet_startup()
    return run_cli(command_main(step), rest)


if __name__ == "__main__":
    sys.exit(main())
