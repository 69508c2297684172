"""cam killed (kill -9) at several moments, then the same command again (how kills are made and
runs compared: `fault_fixtures`)."""


import shutil
from pathlib import Path

import pytest
from fault_fixtures import SETTINGS, appeared, artifacts, check_whole, in_process, killed_when

from ldct_tf import cam
from ldct_tf.workdir import Workdir

pytestmark = pytest.mark.slow


def _copy_run(trained_tiny, target: Path) -> Path:
    _, workdir, _ = trained_tiny
    shutil.copytree(workdir, target, symlinks=True)
    for made in ("records_with_mask", "cam", "denoiser"):  # what later fixtures may have added
        shutil.rmtree(target / made, ignore_errors=True)
    return target


@pytest.fixture(scope="module")
def cam_reference(trained_tiny, tmp_path_factory):
    """The files of an uninterrupted cam run on a copy of the tiny trained run."""
    reference = _copy_run(trained_tiny, tmp_path_factory.mktemp("cam") / "reference")
    in_process(cam.main, ["--workdir", reference, *SETTINGS])
    return artifacts(reference)


# a shard being written (under its temporary name), the first shard in place
@pytest.mark.parametrize("moment", [".partial.*-of-*.tfrecord*", "*-of-*.tfrecord*"])
def test_cam_killed_then_run_again_gives_the_uninterrupted_result(trained_tiny, cam_reference,
                                                                  tmp_path, moment):
    workdir = _copy_run(trained_tiny, tmp_path / "run")
    argv = ["--workdir", workdir, *SETTINGS]
    target = Workdir(workdir).records_with_mask
    killed_when(appeared(target, moment), "ldct_tf.cam", argv)
    check_whole(workdir)
    assert not (target / "stats.json").exists()
    in_process(cam.main, argv)
    assert artifacts(workdir) == cam_reference
