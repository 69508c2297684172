"""`python -m ldct_tf.train --phase PHASE`: train one model of the method.

Phases, in order: ``classifier`` (the lesion detector whose Grad-CAM maps weight the loss),
``pretrain`` (denoiser, plain MSE) and ``finetune`` (denoiser, activation-weighted MSE, starting
from the best pretrain checkpoint). Each phase reads the records of the work directory and writes
its model, metrics and TensorBoard logs there.
"""

from __future__ import annotations

import importlib
import sys

from ldct_tf import cli
from ldct_tf.errors import run_cli

# phase -> module with run(config, workdir)
PHASES = {"classifier": ("ldct_tf.classifier_training", "run"),
          "pretrain": ("ldct_tf.denoiser_training", "run_pretrain"),
          "finetune": ("ldct_tf.denoiser_training", "run_finetune")}


def main(argv: list[str] | None = None) -> int:
    parser = cli.base_parser("python -m ldct_tf.train", __doc__.splitlines()[0].split(": ")[1])
    parser.add_argument("--phase", required=True, choices=list(PHASES))
    args = parser.parse_args(argv)
    config, workdir = cli.resolve(args)
    module, function = PHASES[args.phase]
    getattr(importlib.import_module(module), function)(config, workdir)
    return 0


if __name__ == "__main__":
    cli.quiet_startup()
    sys.exit(run_cli(main))
