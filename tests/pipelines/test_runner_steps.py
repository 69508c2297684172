"""`--steps`: the runner runs just the named steps (what the ready model needs), and names a step
that is not one of the run's."""

from ldct_tf.errors import run_cli
from pipelines import local_runner


def test_unknown_step_in_steps_is_one_line_naming_it_and_the_steps(tmp_path, capsys):
    code = run_cli(local_runner.main, ["--workdir", str(tmp_path), "--steps",
                                       "prepare,nonsense"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "nonsense is not a step of this run" in err[0] and "prepare, classifier" in err[0]


def test_steps_are_passed_to_the_run_in_their_order(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(local_runner, "run", lambda *args, **kwargs: seen.update(kwargs))
    code = run_cli(local_runner.main, ["--workdir", str(tmp_path), "--steps",
                                       "prepare, classifier,cam,pretrain,finetune"])
    assert code == 0
    assert seen["include"] == ("prepare", "classifier", "cam", "pretrain", "finetune")
