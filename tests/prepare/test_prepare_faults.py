"""prepare under faults: a full disk; kill -9, then the same command again (how faults and kills
are made and runs compared: `fault_fixtures`)."""


import re
from pathlib import Path

import pytest
from fault_fixtures import (
    SETTINGS,
    appeared,
    artifacts,
    check_whole,
    error_lines,
    in_process,
    killed_when,
    limited,
    salted,
)
from records_fixtures import IN_PROCESS

from ldct_tf.errors import LdctError
from ldct_tf.prepare import pipeline as prepare
from ldct_tf.records import split_sizes
from ldct_tf.workdir import Workdir

pytestmark = pytest.mark.slow


def _prepare_argv(workdir: Path) -> list:
    return ["--workdir", workdir, *SETTINGS, "--", *IN_PROCESS]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    workdir = salted(tmp_path_factory.mktemp("prepared") / "run")
    in_process(prepare.main, _prepare_argv(workdir))
    return artifacts(workdir)


def test_prepare_on_a_full_disk_stops_with_one_line_and_a_rerun_completes(prepared, tmp_path):
    workdir = salted(tmp_path / "run")
    # the salt, lock and config fit; the first shard does not. Beam's default: a worker process
    # per core (each prints the traceback of what it raises; the fault is counted instead)
    [line] = error_lines(limited(4096, "ldct_tf.prepare.pipeline",
                                 ["--workdir", workdir, *SETTINGS]))
    records = Workdir(workdir).records
    assert re.fullmatch(rf"error: file too large writing {re.escape(str(records))}/"
                        r"(train|val|test)-0000\d-of-00002\.tfrecord \(.*\): raise the limit or "
                        r"choose another --workdir/--output, then run again", line), line
    check_whole(workdir)
    assert not (records / "stats.json").exists()  # the records are not taken for complete
    with pytest.raises(LdctError, match="stats.json not found"):
        split_sizes(records)
    in_process(prepare.main, _prepare_argv(workdir))
    assert artifacts(workdir) == prepared


# the first shard in place (others and the statistics still to come; a Beam temporary folder
# lives too briefly to catch), and the statistics of the pipeline before the shard counts
@pytest.mark.parametrize("moment", ["*-of-*.tfrecord*", ".beam.stats.json"])
def test_prepare_killed_then_run_again_gives_the_uninterrupted_result(prepared, tmp_path, moment):
    workdir = salted(tmp_path / "run")
    records = Workdir(workdir).records
    killed_when(appeared(records, moment), "ldct_tf.prepare.pipeline", _prepare_argv(workdir))
    check_whole(workdir)
    assert not (records / "stats.json").exists()
    in_process(prepare.main, _prepare_argv(workdir))
    assert artifacts(workdir) == prepared
