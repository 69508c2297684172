import sys

from ldct_tf.cli import quiet_startup
from ldct_tf.errors import run_cli
from ldct_tf.prepare.pipeline import main

quiet_startup()
sys.exit(run_cli(main))
