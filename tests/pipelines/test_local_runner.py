"""The end-to-end runner on a tiny config: every step and artefact, caching, resume after a
failure."""

import json
import subprocess
import sys

import pytest
from records_fixtures import IN_PROCESS, TINY

from ldct_tf.config import load_config
from ldct_tf.errors import LdctError
from pipelines import local_runner


def _config(tmp_path, *extra):
    # prepare runs Beam in this process, as the session's tiny run does: the default, a worker
    # process per core, costs each worker TensorFlow's start-up (tests/prepare/test_pipeline.py
    # tests the worker processes and the defaults)
    return load_config(None, [*TINY, "classifier.epochs=1", "observer.epochs=1",
                              "evaluate.bm3d=false",
                              "evaluate.resamples=20", "evaluate.cho_splits=2",
                              "train.image_panels=1",
                              f"pipeline.beam_args={json.dumps(IN_PROCESS)}",
                              f'pipeline.export_dir="{tmp_path / "saved_models"}"', *extra])


def _statuses(manifest):
    return {name: step["status"] for name, step in manifest["steps"].items()}


@pytest.mark.slow
def test_runner_makes_everything_then_caches_and_reruns_downstream(tmp_path):
    workdir = tmp_path / "run"
    first = local_runner.run(_config(tmp_path), workdir)
    assert set(_statuses(first).values()) == {"ran"}
    for artefact in ("records/stats.json", "classifier/model.keras", "records_with_mask/stats.json",
                     "observer/model.keras", "denoiser/pretrain/model.keras",
                     "denoiser/finetune/model.keras", "denoiser/finetune_control/model.keras",
                     "eval/metrics.json",
                     "eval/report.md", "manifest.json"):
        assert (workdir / artefact).exists(), artefact
    assert (tmp_path / "saved_models" / "ldct_denoiser" / "1" / "saved_model.pb").exists()
    manifest = json.loads((workdir / "manifest.json").read_text())
    assert manifest["packages"]["tensorflow"] and len(manifest["steps"]) == 9

    second = local_runner.run(_config(tmp_path), workdir)
    assert set(_statuses(second).values()) == {"cached"}

    third = local_runner.run(_config(tmp_path, "finetune.learning_rate=3e-4"), workdir)
    ran = {name for name, status in _statuses(third).items() if status == "ran"}
    assert ran == {"finetune", "finetune_control", "evaluate", "export"}
    assert (tmp_path / "saved_models" / "ldct_denoiser" / "2").exists()
    metrics = json.loads((workdir / "eval" / "metrics.json").read_text())
    assert metrics["claim"]["a"] == "finetune" and metrics["claim"]["b"] == "finetune_control"

    changed = _config(tmp_path, "finetune.learning_rate=3e-4")  # the config of the last run
    study = local_runner.run_seeds(changed, workdir, 2)
    seed_dir = local_runner.seed_workdir(workdir, 1)
    assert (seed_dir / "records").is_symlink() and (seed_dir / "classifier").is_symlink()
    assert (seed_dir / "observer").is_symlink()  # one observer reads every seed's images
    for artefact in ("denoiser/pretrain/model.keras", "denoiser/finetune/model.keras",
                     "denoiser/finetune_control/model.keras", "eval/metrics.json"):
        assert (seed_dir / artefact).exists(), artefact
    seed_metrics = json.loads((seed_dir / "eval" / "metrics.json").read_text())
    assert "bm3d" in seed_metrics["skipped"] and "gaussian" in seed_metrics["skipped"]
    assert study["n_seeds"] == 2 and study["train_seeds"] == [0, 1]
    assert (workdir / "seeds" / "summary.md").exists()
    assert (workdir / "seeds" / "figures" / "tradeoff.png").exists()
    # the seeds' networks differ (different initialisation and patch order)
    import keras
    a = keras.models.load_model(workdir / "denoiser" / "pretrain" / "model.keras").get_weights()
    b = keras.models.load_model(seed_dir / "denoiser" / "pretrain" / "model.keras").get_weights()
    assert any(not (x == y).all() for x, y in zip(a, b))

    # (with the last run's config: only the missing output re-runs, not the finetunes as well)
    (workdir / "classifier" / "model.keras").unlink()
    with pytest.raises(LdctError, match="step cam failed: classifier model .* not found"):
        local_runner.run(changed, workdir, only="cam")
    resumed = local_runner.run(changed, workdir)
    assert _statuses(resumed)["classifier"] == "ran"  # its output was gone
    assert _statuses(resumed)["prepare"] == "cached"


def test_unknown_step_is_a_one_line_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pipelines.local_runner", "--workdir",
                             str(tmp_path), "--from", "nonsense"], capture_output=True, text=True)
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_fingerprints_change_downstream_only():
    config = load_config(None)
    steps = local_runner.steps_for(config)
    before = local_runner.fingerprints(config, steps)
    after = local_runner.fingerprints(config.replace(cam=config.cam.__class__(method="layercam")),
                                      steps)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"cam", "finetune", "finetune_control", "evaluate", "export"}


def test_the_observer_step_trains_apart_from_the_maps_and_feeds_evaluate():
    config = load_config(None)
    steps = {step.name: step for step in local_runner.steps_for(config)}
    names = list(steps)
    assert names.index("cam") < names.index("observer") < names.index("evaluate")
    assert steps["observer"].inputs == ("prepare",)  # never the map classifier's outputs
    assert set(steps["observer"].sections) == {"classifier", "observer", "lesion_test"}
    assert "observer" in steps["evaluate"].inputs and "observer" in local_runner.SHARED
    before = local_runner.fingerprints(config, list(steps.values()))
    after = local_runner.fingerprints(
        config.replace(observer=config.observer.__class__(seed=7)), list(steps.values()))
    assert {name for name in before if before[name] != after[name]} == {"observer", "evaluate"}


def test_finetune_mode_in_the_config_changes_nothing_the_runner_sets_itself():
    # The runner runs each finetune variant with its own mode; the user's [finetune] mode is
    # overridden, so it must not invalidate the cache.
    config = load_config(None, ["pipeline.finetune_modes=['weighted', 'pairs']"])
    steps = local_runner.steps_for(config)
    weighted = local_runner.fingerprints(config, steps)
    pairs = local_runner.fingerprints(
        config.replace(finetune=config.finetune.__class__(mode="pairs")), steps)
    assert weighted == pairs
    assert weighted["finetune"] != weighted["finetune_pairs"]


def test_beam_options_after_the_separator_reach_prepare_and_no_fingerprint(tmp_path, capsys):
    from ldct_tf import cli
    from ldct_tf.errors import run_cli
    from ldct_tf.steps import steps_for

    ours, passed = cli.split_passthrough(["--only", "prepare", "--", "--runner", "NoSuchRunner"])
    assert ours == ["--only", "prepare"] and passed == ["--runner", "NoSuchRunner"]
    # what the runner hands the prepare step (pipeline.beam_args) is what prepare runs with
    status = run_cli(local_runner.main, ["--workdir", str(tmp_path / "run"), "--only", "prepare",
                                         *[a for o in TINY for a in ("--set", o)], "--",
                                         "--runner", "NoSuchRunner"])
    err = capsys.readouterr().err
    assert status == 2 and "NoSuchRunner" in err and "Traceback" not in err
    config = load_config(None, TINY)
    on_dask = load_config(None, [*TINY, 'pipeline.beam_args=["--runner", "DaskRunner"]'])
    steps = steps_for(config)
    assert local_runner.fingerprints(config, steps) == local_runner.fingerprints(on_dask, steps)


def _fake_steps(monkeypatch, tmp_path):
    """Three instant steps named like real ones (the demo's first-run table knows them), through
    the runner's registry: no data, no training. ``prepare`` times two phases."""
    import types

    from ldct_tf import progress
    from ldct_tf.steps import Step

    module = types.ModuleType("fake_steps")

    def run(config, workdir, name):
        if name == "prepare":
            with progress.phase("simulate"):
                with progress.phase("write"):
                    pass
            with progress.phase("simulate"):
                pass
        (workdir / f"{name}.done").write_text("")
        return {"made": name, "seconds": 1234.0}  # a step's own time must not hide the runner's

    module.run = run
    monkeypatch.setitem(sys.modules, "fake_steps", module)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the preset's step times
    steps = [Step(name=name, module="fake_steps", args=(name,), sections=(section,),
                  inputs=inputs, done=lambda paths, _, name=name: (paths.root / f"{name}.done")
                  .exists())
             for name, section, inputs in (("prepare", "data", ()), ("cam", "cam", ("prepare",)),
                                           ("evaluate", "evaluate", ("cam",)))]
    monkeypatch.setattr(local_runner, "steps_for", lambda config: steps)


def _lines(capsys):
    """The step lines, with the times this machine took (elapsed, done in) made T."""
    import re

    out = capsys.readouterr().out
    return [re.sub(r"(elapsed|done in) (\d+ min )?\d+ s", r"\1 T", line)
            for line in out.splitlines() if line.startswith(("[", "    phases"))]


def test_runner_shows_k_of_n_what_is_left_and_each_steps_phases(tmp_path, monkeypatch, capsys):
    from ldct_tf import progress

    _fake_steps(monkeypatch, tmp_path)
    config, workdir = load_config(None), tmp_path / "run"
    # a first run of the demo preset: the estimates are the demo table's (90 + 15 + 80 s)
    first = local_runner.run(config, workdir, preset="demo", closing=False)
    assert _lines(capsys) == [
        "[1/3 prepare] running (run elapsed T, about 3 min 10 s left)",
        "[1/3 prepare] done in T (run elapsed T, about 1 min 40 s left)",
        "    phases: simulate 0 s, write 0 s",
        "[2/3 cam] running (run elapsed T, about 1 min 40 s left)",
        "[2/3 cam] done in T (run elapsed T, about 1 min 20 s left)",
        "[3/3 evaluate] running (run elapsed T, about 1 min 20 s left)",
        "[3/3 evaluate] done in T (run elapsed T)"]
    manifest = json.loads((workdir / "manifest.json").read_text())
    assert manifest == first and isinstance(manifest["seconds"], float)
    assert all(step["status"] == "ran" and step["seconds"] < 1234
               for step in manifest["steps"].values())
    assert set(manifest["steps"]["prepare"]["phases"]) == {"simulate", "write"}
    assert "phases" not in manifest["steps"]["cam"] and manifest["steps"]["cam"]["made"] == "cam"
    assert set(progress.preset_seconds("demo")) == {"prepare", "cam", "evaluate"}

    # this work directory's last times come first, then the preset's (cam cached last time)
    manifest["steps"]["cam"].update(status="ran", seconds=30.0)
    manifest["steps"]["evaluate"].update(status="cached", seconds=0.0)
    (workdir / "manifest.json").write_text(json.dumps(manifest))
    progress.record_preset_seconds("demo", "evaluate", 200)
    local_runner.run(config, workdir, start="cam", preset="demo", closing=False)
    assert _lines(capsys) == [
        "[1/3 prepare] cached (fingerprint "
        f"{first['steps']['prepare']['fingerprint']}, outputs present): skipped",
        "[2/3 cam] running (run elapsed T, about 3 min 50 s left)",
        "[2/3 cam] done in T (run elapsed T, about 3 min 20 s left)",
        "[3/3 evaluate] running (run elapsed T, about 3 min 20 s left)",
        "[3/3 evaluate] done in T (run elapsed T)"]

    # --only: n counts the steps this invocation considers; a seed's lines say which seed; the
    # step's own last time here (about 0 s) comes before ``expected``
    local_runner.run(config, workdir, only="evaluate", closing=False, label="seed 2/3",
                     expected={"evaluate": 42})
    assert _lines(capsys) == [
        "[seed 2/3: 1/1 evaluate] running (seed elapsed T, about 0 s left)",
        "[seed 2/3: 1/1 evaluate] done in T (seed elapsed T)"]
