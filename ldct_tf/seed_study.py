"""`python -m ldct_tf.seed_study WORKDIR [WORKDIR ...] --out DIR`: the command of the seed study,
which lives in `ldct_tf.evaluate.seed_study` (see there)."""

import sys

from ldct_tf.errors import run_cli
from ldct_tf.evaluate.seed_study import main

if __name__ == "__main__":
    # no TensorFlow start-up here (cli.quiet_startup): the study reads JSON and NumPy files only
    sys.exit(run_cli(main))
