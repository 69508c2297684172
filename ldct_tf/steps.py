"""The one step registry: the commands of ``ldct-tf STEP`` (and ``python -m ldct_tf.STEP``), and
the steps of the main job as `pipelines.local_runner` runs them.

Every pipeline step is a module's ``run(config, workdir)`` (pretrain and the fine-tunes add their
phase); a `Step` says which config sections it reads (its fingerprint), which steps feed it and
which output of the work directory (`ldct_tf.workdir`) shows it is done.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ldct_tf.config import FINETUNE_VARIANTS, Config
from ldct_tf.workdir import STATS_FILE, Workdir

# Command -> module with ``main(argv) -> int`` (a step package's command module).
COMMANDS: dict[str, str] = {"prepare": "ldct_tf.prepare.pipeline",
                            "train": "ldct_tf.train.phases", "cam": "ldct_tf.cam",
                            "evaluate": "ldct_tf.evaluate.study", "export": "ldct_tf.export",
                            "denoise": "ldct_tf.denoise", "seed_study": "ldct_tf.seed_study"}


def command_main(name: str) -> Callable[[list[str] | None], int]:
    return importlib.import_module(COMMANDS[name]).main


@dataclass(frozen=True, kw_only=True)
class Step:
    """One step of the main job. ``configure`` adapts the run's config to what the step runs with
    (a fine-tune variant sets its mode); the fingerprint hashes ``sections`` of that config."""

    name: str
    module: str  # has ``run(config, workdir, *args)``, imported when the step runs
    sections: tuple[str, ...]
    inputs: tuple[str, ...] = ()
    done: Callable[[Workdir, dict], bool]
    args: tuple = ()
    configure: Callable[[Config], Config] = field(default=lambda config: config)

    def run(self, config: Config, workdir: Path) -> dict | None:
        """The step's own ``run``; a returned dict is merged into the runner's state."""
        return importlib.import_module(self.module).run(config, workdir, *self.args)

    def outputs(self, workdir: Path, record: dict) -> bool:
        return self.done(Workdir(workdir), record)


def _variant(name: str):
    return lambda config: config.replace(finetune=config.finetune.as_variant(name))


def _exported(paths: Workdir, record: dict) -> bool:
    return bool(record.get("export_path")) and Path(record["export_path"]).exists()


STEPS = ("prepare", "classifier", "cam", "observer", "pretrain", *FINETUNE_VARIANTS, "evaluate",
         "export")
TRAINING_STEPS = ("pretrain", *FINETUNE_VARIANTS, "evaluate")  # what a seed study repeats


def steps_for(config: Config) -> list[Step]:
    """The steps of this config's run, in order (finetune variants from ``[pipeline]``)."""
    wanted = set()
    if "weighted" in config.pipeline.finetune_modes:
        wanted |= {"finetune", "finetune_control"}  # the method never runs without its control
    if config.pipeline.oracle:
        wanted.add("finetune_oracle")
    if "pairs" in config.pipeline.finetune_modes:
        wanted.add("finetune_pairs")
    tuned = tuple(name for name in FINETUNE_VARIANTS if name in wanted)
    steps = [
        Step(name="prepare", module="ldct_tf.prepare.pipeline",
             sections=("data", "scanner", "lesion", "lesion_test", "lesion_variants"),
             done=lambda paths, _: (paths.records / STATS_FILE).exists()),
        Step(name="classifier", module="ldct_tf.train.classifier", sections=("classifier",),
             inputs=("prepare",), done=lambda paths, _: paths.classifier_model.exists()),
        Step(name="cam", module="ldct_tf.cam", sections=("cam",), inputs=("classifier",),
             done=lambda paths, _: (paths.records_with_mask / STATS_FILE).exists()),
        # The evaluation's CNN observer: its own seed and the test lesions, never the map maker.
        Step(name="observer", module="ldct_tf.train.observer",
             sections=("classifier", "observer", "lesion_test"), inputs=("prepare",),
             done=lambda paths, _: paths.observer_model.exists()),
        Step(name="pretrain", module="ldct_tf.train.denoiser", args=("pretrain",),
             sections=("model", "pretrain", "input", "train"), inputs=("prepare",),
             done=lambda paths, _: paths.denoiser_model("pretrain").exists()),
    ]
    steps += [Step(name=name, module="ldct_tf.train.denoiser", args=("finetune",),
                   sections=("model", "finetune", "input", "train"), inputs=("pretrain", "cam"),
                   done=lambda paths, _, name=name: paths.denoiser_model(name).exists(),
                   configure=_variant(name)) for name in tuned]
    steps.append(Step(name="evaluate", module="ldct_tf.evaluate.study", sections=("evaluate",),
                      inputs=("prepare", "classifier", "observer", "pretrain", *tuned),
                      done=lambda paths, _: paths.metrics.exists()))
    steps.append(Step(name="export", module="ldct_tf.export", sections=("pipeline",),
                      inputs=tuned[:1], done=_exported))
    return steps
