"""The main job on one machine: prepare -> classifier -> cam -> observer -> pretrain -> finetune ->
evaluate -> export, each step the same code as its command (`ldct_tf.steps`, the one registry),
with TFX-style caching.

    python -m pipelines.local_runner --config pipelines/configs/demo.toml [--workdir DIR]
        [--from STEP] [--only STEP] [--steps STEP,STEP] [--seeds N] [--set section.key=value ...]
        [-- BEAM OPTIONS]

Beam options after ``--`` (``pipeline.beam_args``) go to the prepare step, e.g.
``-- --runner DaskRunner --dask_client_address host:8786`` to prepare on a dask cluster.

A step whose outputs exist and whose fingerprint (the config sections it reads plus its inputs'
fingerprints) is unchanged is skipped and says so; a changed setting re-runs that step and
everything downstream. A failing step stops the run with its name and message; the next run
resumes there (finished steps stay cached). ``<workdir>/manifest.json`` records package versions,
the git commit, the command, each step's fingerprint, status and seconds (and ``phases``: the
seconds of the phases the step timed with `ldct_tf.progress.phase`, when it timed any), and the
run's total ``seconds``.

Progress: each step is shown as k of the n steps this invocation considers, with the run's
elapsed time and an estimate of what is left, and the phases it timed::

    [3/9 cam] running (run elapsed 1 min 12 s, about 6 min left)
    [3/9 cam] done in 19 s (run elapsed 1 min 31 s, about 5 min 40 s left)
    ...
    [8/9 evaluate] done in 1 min 20 s (run elapsed 7 min 2 s, about 5 s left)
        phases: load 4 s, baselines 21 s, denoise 9 s, cnn_observers 6 s, metrics 12 s, ...

What is left is the expected seconds of the steps still to run (not cached), each from the first
of: the step's time in this work directory's previous manifest (when it ran then), for a seed the
step's time in the study's own run, the preset's last run (kept per user,
`ldct_tf.progress.preset_seconds`; the preset is the ``--config`` file's name, ``default``
without one), and for the demo preset `DEMO_STEP_SECONDS`. A seed's lines read
``[seed 2/3: 1/6 pretrain] running (seed elapsed 0 s, about 4 min left)``: what that seed has left.

A seed study (``--seeds N`` or ``pipeline.seeds``): the run itself is training seed
``train.seed``; seeds ``train.seed + 1`` .. ``+ N-1`` each re-train pretrain and every fine-tune
variant (and evaluate them, without the seed-independent baselines) in
``<workdir>/seeds/seed-<k>/``, which shares the records, classifier, maps and observer of the run
(the data, the maps and the observer are fixed; what varies is the network's initialisation and
the order of its patches). Each seed pretrains afresh, so the spread includes the starting point
every fine-tune and its control share. `ldct_tf.seed_study` then writes
``<workdir>/seeds/summary.md``, ``summary.json`` and ``figures/tradeoff.png``: each network's mean
and spread over seeds and the claims with the seed variation in their intervals.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from ldct_tf import atomic, cli, progress
from ldct_tf.config import Config
from ldct_tf.errors import LdctError, environment_fault, run_cli
from ldct_tf.provenance import git_commit, package_versions
from ldct_tf.steps import STEPS, TRAINING_STEPS, Step, steps_for
from ldct_tf.workdir import SHARED, Workdir
from ldct_tf.workdir_lock import claim as claim_folder

# A first run's expected seconds per step for the demo preset (pipelines/configs/demo.toml),
# measured on 2 CPU cores; any run's own times replace them. PLACEHOLDERS until measured.
DEMO_STEP_SECONDS = {"prepare": 90, "classifier": 60, "cam": 15, "observer": 60, "pretrain": 70,
                     "finetune": 90, "finetune_control": 80, "finetune_oracle": 80,
                     "finetune_pairs": 80, "evaluate": 80, "export": 5}
FIRST_RUN_SECONDS = {"demo": DEMO_STEP_SECONDS}  # preset -> step -> seconds


def fingerprints(config: Config, steps: list[Step], salt: str = "") -> dict[str, str]:
    """Each step's fingerprint: its config sections and its upstream steps' fingerprints, hashed
    with the run's ``salt`` (the sections hold ``data.input``, whose folder names can name the
    patient: an unsalted hash of them could be matched against guesses)."""
    out: dict[str, str] = {}
    for step in steps:
        sections = step.configure(config).to_dict()
        sections["pipeline"].pop("beam_args")  # how prepare runs, not what it writes
        parts = {"sections": {name: sections[name] for name in step.sections},
                 "inputs": [out[name] for name in step.inputs]}
        text = salt + "\x00" + json.dumps(parts, sort_keys=True)
        out[step.name] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return out


def run(config: Config, workdir: Path, start: str | None = None, only: str | None = None,
        include: tuple[str, ...] | None = None, closing: bool = True, *,
        preset: str | None = None, label: str = "",
        expected: dict[str, float] | None = None, command: str | None = None) -> dict:
    """Run (or skip) every step (of ``include`` only, when given); return the manifest.

    ``preset`` (the config file's name) looks up, and records, the preset's last step times for
    the estimate of what is left; ``expected`` are step times to use before the preset's (a seed
    study's own run); ``label`` prefixes the step lines (a seed of a seed study)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    steps = steps_for(config)
    names = [s.name for s in steps]
    for option, value in (("--from", start), ("--only", only)):
        if value is not None and value not in names:
            raise LdctError(f"{option} {value!r} is not a step of this run; steps: "
                            f"{', '.join(names)}")
    prints = fingerprints(config, steps, cli.workdir_salt(workdir))
    state = _load(Workdir(workdir).state)
    previous_times = progress.ran_seconds(_load(Workdir(workdir).manifest))  # before overwritten
    forced = set(names[names.index(start):]) if start else {only} if only else set()
    chosen = [step for step in steps if not ((only and step.name != only)
                                             or (include is not None and step.name not in include))]

    def is_cached(step: Step) -> bool:
        previous = state.get(step.name, {})
        return bool(step.name not in forced and previous.get("fingerprint") == prints[step.name]
                    and step.outputs(workdir, previous))

    shown = progress.RunProgress(
        [step.name for step in chosen], [step.name for step in chosen if not is_cached(step)],
        progress.expected_seconds([step.name for step in chosen], previous_times, expected,
                                  *_preset_times(preset)),
        label=label, scope="seed" if label else "run")
    manifest = {"packages": package_versions(), "git_commit": git_commit(), "workdir": str(workdir),
                **({"command": command} if command else {}), "steps": {}}
    started = time.time()
    for step in chosen:
        if is_cached(step):
            print(shown.cached(step.name, f"fingerprint {prints[step.name]}, outputs present"))
            manifest["steps"][step.name] = {"fingerprint": prints[step.name], "status": "cached",
                                            "seconds": 0.0}
            continue
        print(shown.running(step.name), flush=True)
        progress.reset_phases()
        t0 = time.time()
        try:
            record = step.run(step.configure(config), workdir) or {}
        except LdctError as exc:
            _save(workdir, state, manifest)
            raise LdctError(f"step {step.name} failed: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - name the step, keep the cause for the log
            fault = environment_fault(exc)  # a full disk: the step and the file, no traceback
            with contextlib.suppress(OSError) if fault else contextlib.nullcontext():
                _save(workdir, state, manifest)  # on that disk too, it may not be written
            if fault:
                raise LdctError(f"step {step.name} failed: {fault}") from None
            raise LdctError(f"step {step.name} failed: {type(exc).__name__}: {exc}") from exc
        seconds = round(time.time() - t0, 1)
        phases = {name: round(s, 1) for name, s in progress.phases().items()}
        state[step.name] = {"fingerprint": prints[step.name], **record}
        entry = {"fingerprint": prints[step.name], "status": "ran", "seconds": seconds}
        # the step's record after, never over, the runner's keys (evaluate's report and the
        # training summaries hold a "seconds" of their own)
        entry.update((key, value) for key, value in record.items()
                     if key not in entry and key != "phases")
        manifest["steps"][step.name] = {**entry, **({"phases": phases} if phases else {})}
        _save(workdir, state, manifest)
        if preset:
            progress.record_preset_seconds(preset, step.name, seconds)
        print(shown.done(step.name, seconds), flush=True)
        if phases:
            print(f"    phases: {progress.phases_text(phases)}", flush=True)
    manifest["seconds"] = round(time.time() - started, 1)
    _save(workdir, state, manifest)
    if closing:
        _closing(workdir, state)
    return manifest


def _preset_times(preset: str | None) -> list[dict[str, float]]:
    """The preset's recorded step times, then its first-run table (none without a preset)."""
    if not preset:
        return []
    return [progress.preset_seconds(preset), FIRST_RUN_SECONDS.get(preset, {})]


def seed_workdir(workdir: Path, index: int) -> Path:
    return Workdir(workdir).seed(index).root


def run_seeds(config: Config, workdir: Path, seeds: int, preset: str | None = None) -> dict:
    """The seed study (see the module docstring) after the run itself; returns its summary.
    Each seed's step lines read ``[seed 2/3: 1/6 pretrain]``, with the seed's elapsed time and
    what the seed has left; its estimates come from the run's own step times (then ``preset``'s),
    and a seed (whose evaluate skips the baselines) records none for the preset."""
    workdir = Path(workdir)
    dirs = [workdir]
    run_times = progress.ran_seconds(_load(Workdir(workdir).manifest))
    expected = {}
    for times in reversed([run_times, *_preset_times(preset)]):
        expected.update(times)  # the first source that has a step wins
    for index in range(1, seeds):
        target = seed_workdir(workdir, index)
        # a seed's folder is a work directory of its own, which a step can be run on alone
        with claim_folder(target, f"python -m pipelines.local_runner (seed {index + 1} of "
                                  f"{seeds} of {workdir})"):
            _link_shared(workdir, target)
            seed = config.train.seed + index
            print(f"\n[seed {index + 1}/{seeds}] train.seed={seed} in {target}", flush=True)
            seeded = config.replace(
                train=dataclasses.replace(config.train, seed=seed),
                evaluate=dataclasses.replace(config.evaluate, baselines=False))
            run(seeded, target, include=TRAINING_STEPS, closing=False,
                label=f"seed {index + 1}/{seeds}", expected=expected)
        dirs.append(target)
    from ldct_tf.evaluate import seed_study

    summary = seed_study.aggregate(dirs, Workdir(workdir).seeds, config.evaluate.resamples,
                                   config.evaluate.seed)
    print(f"\nseed study ({seeds} seeds): {Workdir(workdir).seeds / 'summary.md'}")
    return summary


def _link_shared(workdir: Path, target: Path) -> None:
    """Link the run's seed-independent outputs into a seed's work directory."""
    target.mkdir(parents=True, exist_ok=True)
    for name in SHARED:
        source, link = workdir / name, target / name
        if not source.exists():
            raise LdctError(f"{source} is missing; the seed study needs the run's {name} "
                            f"(run `python -m pipelines.local_runner` without --only first)")
        if link.is_symlink() or link.exists():
            if link.resolve() == source.resolve():
                continue
            raise LdctError(f"{link} exists and is not a link to {source}; remove it")
        link.symlink_to(os.path.relpath(source, target))


def _closing(workdir: Path, state: dict) -> None:
    metrics_path = Workdir(workdir).metrics
    if metrics_path.exists():
        from ldct_tf.evaluate.report import summary_table

        print("\n" + summary_table(json.loads(metrics_path.read_text())))
        print(f"\nreport:      {Workdir(workdir).report}")
    export = state.get("export", {}).get("export_path")
    if export:
        print(f"export:      {export}")
    print(f"tensorboard: tensorboard --logdir {Workdir(workdir).logs()}")


def _save(workdir: Path, state: dict, manifest: dict) -> None:
    """Write the cache state and the manifest, each whole or not at all (a killed run leaves
    the previous state, which marks no step as done that did not finish)."""
    atomic.write_json(Workdir(workdir).state, state)
    atomic.write_json(Workdir(workdir).manifest, manifest)


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError:
        return {}  # a broken state file only costs a re-run


def main(argv: list[str] | None = None) -> int:
    parser = cli.base_parser("python -m pipelines.local_runner",
                             "Run every step of the method with caching.")
    parser.add_argument("--from", dest="start", metavar="STEP", choices=list(STEPS),
                        help="re-run from this step on, cached or not")
    parser.add_argument("--only", metavar="STEP", choices=list(STEPS),
                        help="run just this step")
    parser.add_argument("--steps", metavar="STEP,STEP",
                        help="run only these steps (comma-separated; each cached when it can "
                             "be), e.g. prepare,classifier,cam,pretrain,finetune for the ready "
                             "model")
    parser.add_argument("--seeds", type=int, metavar="N",
                        help="seed study: repeat the training steps for N training seeds "
                             "(default pipeline.seeds)")
    ours, beam_args = cli.split_passthrough(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(ours)
    extra = [f"pipeline.seeds={args.seeds}"] if args.seeds is not None else []
    extra += [f"pipeline.beam_args={json.dumps(beam_args)}"] if beam_args else []
    config, workdir = cli.resolve(args, extra)
    preset = Path(args.config).stem if args.config else "default"
    include = None
    if args.steps:
        include = tuple(name.strip() for name in args.steps.split(",") if name.strip())
        names = [step.name for step in steps_for(config)]
        unknown = [name for name in include if name not in names]
        if unknown or not include:
            raise LdctError(f"--steps {args.steps!r}: {', '.join(unknown) or 'no step'} is not a "
                            f"step of this run; steps: {', '.join(names)}")
    # input folders shown as <input>: their names can name the patient
    command = cli.command_line("python -m pipelines.local_runner", argv)
    with cli.claim(workdir, parser.prog, argv):  # the steps' own `run`s do not claim
        run(config, workdir, args.start, args.only, include=include, preset=preset,
            command=command)
        if config.pipeline.seeds > 1 and not args.only and not include:
            run_seeds(config, workdir, config.pipeline.seeds, preset)
    return 0


if __name__ == "__main__":
    cli.quiet_startup()
    sys.exit(run_cli(main))
