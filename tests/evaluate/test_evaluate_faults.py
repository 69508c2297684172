"""evaluate killed (kill -9) while measuring and while writing its report, then the same command
again (how kills are made and runs compared: `fault_fixtures`)."""


import shutil

import pytest
from fault_fixtures import SETTINGS, appeared, artifacts, check_whole, in_process, killed_when

from ldct_tf.workdir import CONFIG_FILE, Workdir

pytestmark = pytest.mark.slow

EVALUATE = [*SETTINGS, "--set", "evaluate.resamples=30", "--set", "evaluate.bm3d=false",
            "--set", "evaluate.cho_splits=2"]


@pytest.fixture(scope="module")
def evaluated_once(denoisers_tiny, tmp_path_factory):
    """A copy of the tiny trained run and its uninterrupted evaluation (moved aside to
    ``reference``, so that the rerun's paths in metrics.json are the same)."""
    from ldct_tf.evaluate import study

    _, source = denoisers_tiny
    root = tmp_path_factory.mktemp("evaluate")
    workdir = root / "run"
    shutil.copytree(source, workdir, symlinks=True, ignore=shutil.ignore_patterns("eval"))
    for extra in ("finetune_control", "finetune_oracle", "finetune_pairs"):  # other tests' extras
        shutil.rmtree(workdir / "denoiser" / extra, ignore_errors=True)
    in_process(study.main, ["--workdir", workdir, *EVALUATE])
    reference = artifacts(Workdir(workdir).eval)
    shutil.rmtree(Workdir(workdir).eval)
    return workdir, reference


@pytest.mark.parametrize("moment", [CONFIG_FILE, "cases.npz"])  # measuring; writing the report
def test_evaluate_killed_then_run_again_gives_the_uninterrupted_result(evaluated_once, moment):
    from ldct_tf.evaluate import study

    workdir, reference = evaluated_once
    out = Workdir(workdir).eval
    shutil.rmtree(out, ignore_errors=True)
    argv = ["--workdir", workdir, *EVALUATE]
    killed_when(appeared(out, moment), "ldct_tf.evaluate", argv)
    check_whole(workdir)
    assert not (out / "metrics.json").exists()  # what says the evaluation is complete
    in_process(study.main, argv)
    assert artifacts(out) == reference
