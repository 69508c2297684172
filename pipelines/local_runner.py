"""The main job on one machine: prepare -> classifier -> cam -> pretrain -> finetune -> evaluate ->
export, each step the same code as its command (`pipelines.steps`), with TFX-style caching.

    python -m pipelines.local_runner --config pipelines/configs/demo.toml [--workdir DIR]
        [--from STEP] [--only STEP] [--set section.key=value ...]

A step whose outputs exist and whose fingerprint (the config sections it reads plus its inputs'
fingerprints) is unchanged is skipped and says so; a changed setting re-runs that step and
everything downstream. A failing step stops the run with its name and message; the next run
resumes there (finished steps stay cached). ``<workdir>/manifest.json`` records package versions,
the git commit, each step's fingerprint, status and time.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

from ldct_tf import cli
from ldct_tf.config import Config
from ldct_tf.errors import LdctError, run_cli
from ldct_tf.provenance import git_commit, package_versions
from pipelines.steps import STEPS, Step, steps_for

STATE_FILE = "pipeline_state.json"
MANIFEST_FILE = "manifest.json"


def fingerprints(config: Config, steps: list[Step]) -> dict[str, str]:
    """Each step's fingerprint: its config sections and its upstream steps' fingerprints."""
    out: dict[str, str] = {}
    for step in steps:
        sections = step.configure(config).to_dict()
        parts = {"sections": {name: sections[name] for name in step.sections},
                 "inputs": [out[name] for name in step.inputs]}
        out[step.name] = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()
                                        ).hexdigest()[:16]
    return out


def run(config: Config, workdir: Path, start: str | None = None, only: str | None = None
        ) -> dict:
    """Run (or skip) every step; return the manifest."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    steps = steps_for(config)
    names = [s.name for s in steps]
    for option, value in (("--from", start), ("--only", only)):
        if value is not None and value not in names:
            raise LdctError(f"{option} {value!r} is not a step of this run; steps: "
                            f"{', '.join(names)}")
    prints = fingerprints(config, steps)
    state = _load(workdir / STATE_FILE)
    forced = set(names[names.index(start):]) if start else {only} if only else set()
    manifest = {"packages": package_versions(), "git_commit": git_commit(), "workdir": str(workdir),
                "steps": {}}
    started = time.time()
    for step in steps:
        if only and step.name != only:
            continue
        previous = state.get(step.name, {})
        cached = (step.name not in forced and previous.get("fingerprint") == prints[step.name]
                  and step.outputs(workdir, previous))
        if cached:
            print(f"[{step.name}] cached (fingerprint {prints[step.name]}, outputs present): "
                  "skipped")
            manifest["steps"][step.name] = {"fingerprint": prints[step.name], "status": "cached",
                                            "seconds": 0.0}
            continue
        print(f"[{step.name}] running", flush=True)
        t0 = time.time()
        try:
            record = step.run(step.configure(config), workdir) or {}
        except LdctError as exc:
            _save(workdir, state, manifest)
            raise LdctError(f"step {step.name} failed: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - name the step, keep the cause for the log
            _save(workdir, state, manifest)
            raise LdctError(f"step {step.name} failed: {type(exc).__name__}: {exc}") from exc
        seconds = round(time.time() - t0, 1)
        state[step.name] = {"fingerprint": prints[step.name], **record}
        manifest["steps"][step.name] = {"fingerprint": prints[step.name], "status": "ran",
                                        "seconds": seconds, **record}
        _save(workdir, state, manifest)
        print(f"[{step.name}] done in {seconds:.0f} s")
    manifest["seconds"] = round(time.time() - started, 1)
    _save(workdir, state, manifest)
    _closing(workdir, state)
    return manifest


def _closing(workdir: Path, state: dict) -> None:
    metrics_path = workdir / "eval" / "metrics.json"
    if metrics_path.exists():
        from ldct_tf.report import summary_table

        print("\n" + summary_table(json.loads(metrics_path.read_text())))
        print(f"\nreport:      {workdir / 'eval' / 'report.md'}")
    export = state.get("export", {}).get("export_path")
    if export:
        print(f"export:      {export}")
    print(f"tensorboard: tensorboard --logdir {workdir / 'logs'}")


def _save(workdir: Path, state: dict, manifest: dict) -> None:
    (workdir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
    (workdir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")


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
    args = parser.parse_args(argv)
    config, workdir = cli.resolve(args)
    run(config, workdir, args.start, args.only)
    return 0


if __name__ == "__main__":
    cli.quiet_startup()
    sys.exit(run_cli(main))
