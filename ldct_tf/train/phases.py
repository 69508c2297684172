"""`python -m ldct_tf.train --phase PHASE`: train one model of the method.

Phases, in order: ``classifier`` (the lesion detector whose Grad-CAM maps weight the loss),
``observer`` (an independent lesion detector, its own seed, trained on LDCT and NDCT with the
``[lesion_test]`` lesions, that `evaluate` reads every image set with; never used for maps),
``pretrain`` (denoiser, plain MSE) and ``finetune`` (denoiser, activation-weighted MSE, starting
from the pretrain network). ``finetune_control`` (uniform weight: the control every claim about
the map is measured against), ``finetune_oracle`` (lesion-disk weight: a diagnostic) and
``finetune_pairs`` (the paper's literal LDCT*A -> NDCT*A) are the same phase with
``finetune.weight`` or ``finetune.mode`` set. Each phase reads the records of the work directory
and writes its model, metrics and TensorBoard logs there.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from ldct_tf import cli
from ldct_tf.config import FINETUNE_VARIANTS, Config
from ldct_tf.errors import run_cli

PHASES = ("classifier", "observer", "pretrain", *FINETUNE_VARIANTS)


def main(argv: list[str] | None = None) -> int:
    parser = cli.base_parser("python -m ldct_tf.train",
                             "Train one model of the method (classifier, observer, pretrain, a "
                             "finetune variant).")
    parser.add_argument("--phase", required=True, choices=PHASES)
    args = parser.parse_args(argv)
    config, workdir = cli.resolve(args)
    if args.phase in FINETUNE_VARIANTS:  # the phase names the variant, whatever the config says
        config = config.replace(finetune=config.finetune.as_variant(args.phase))
    from ldct_tf.train import distribute

    distribution = distribute.strategy_for(config.train.strategy)  # first: before TF starts
    # Only the chief writes into the work directory (`distribute.output_dirs`): the other workers
    # of a multi-worker run share it without claiming it.
    with (cli.claim(workdir, parser.prog, argv) if distribution.is_chief
          else contextlib.nullcontext()):
        _train(args.phase, config, workdir)
    return 0


def _train(phase: str, config: Config, workdir: Path) -> None:
    if phase == "classifier":
        from ldct_tf.train import classifier as classifier_training

        classifier_training.run(config, workdir)
    elif phase == "observer":
        from ldct_tf.train import observer as observer_training

        observer_training.run(config, workdir)
    else:
        from ldct_tf.train import denoiser as denoiser_training

        denoiser_training.run(config, workdir,
                              "finetune" if phase in FINETUNE_VARIANTS else phase)


if __name__ == "__main__":
    cli.quiet_startup()
    sys.exit(run_cli(main))
