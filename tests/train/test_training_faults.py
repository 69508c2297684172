"""Each training phase killed (kill -9) at several moments, then the same command again (how
kills are made: `fault_fixtures`)."""

import json
import shutil

import keras
import pytest
from fault_fixtures import SETTINGS, appeared, artifacts, check_whole, in_process, killed_when

from ldct_tf.train import phases
from ldct_tf.workdir import MODEL_FILE, Workdir

pytestmark = pytest.mark.slow


# Moments: the classifier after its first epoch's checkpoint (it keeps no backup: it trains
# anew), pretrain as training begins (its CSV history opened, no backup yet), finetune after its
# first backup. (Pretrain killed after a backup resumes at the next epoch: test_denoiser.py.)
@pytest.mark.parametrize("phase, moment", [("classifier", "model.keras"),
                                           ("pretrain", "history.csv"),
                                           ("finetune", "backup/training_metadata.json")])
def test_training_killed_then_run_again_finishes_cleanly(request, tmp_path, phase, moment):
    source = request.getfixturevalue("denoisers_tiny" if phase == "finetune" else "tiny_run")[1]
    later = {"classifier": ("classifier", "cam", "records_with_mask", "denoiser", "observer"),
             "pretrain": ("classifier", "cam", "records_with_mask", "denoiser", "observer"),
             "finetune": ("finetune", "finetune_control", "finetune_oracle", "finetune_pairs",
                          "eval")}[phase]
    workdir = tmp_path / "run"
    shutil.copytree(source, workdir, symlinks=True,
                    ignore=shutil.ignore_patterns("logs", *later))
    argv = ["--phase", phase, "--workdir", workdir, *SETTINGS, "--set", f"{phase}.epochs=2"]
    w = Workdir(workdir)
    out = w.classifier if phase == "classifier" else w.denoiser(phase)
    killed_when(appeared(out, moment), "ldct_tf.train", argv)
    check_whole(workdir)
    in_process(phases.main, argv)
    artifacts(workdir)  # nothing half-made
    if phase == "classifier":
        assert json.loads((out / "metrics.json").read_text())["epochs_run"] == 2
        keras.models.load_model(out / MODEL_FILE)
        return
    history = json.loads((out / "history.json").read_text())  # every epoch, resumed ones too
    assert set(history["epoch"]) == {0, 1}
    json.loads((out / "summary.json").read_text())
    keras.models.load_model(out / MODEL_FILE)
    assert not (out / "backup").exists()
