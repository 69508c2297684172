"""The steps of the main job: what each reads from the config, which steps feed it, how it runs
(the library's own ``run``, as its command calls it) and which outputs show it is done.

Wiring only; every algorithm lives in ``ldct_tf``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ldct_tf import records
from ldct_tf.config import FINETUNE_VARIANTS, Config


@dataclass(frozen=True)
class Step:
    """One step. ``configure`` adapts the run's config to what the step runs with (a finetune
    variant sets its mode); the fingerprint hashes ``sections`` of that adapted config."""

    name: str
    sections: tuple[str, ...]
    inputs: tuple[str, ...]
    run: Callable[[Config, Path], dict | None]
    outputs: Callable[[Path, dict], bool]
    configure: Callable[[Config], Config] = field(default=lambda config: config)


def _call(module: str, *args):
    """``ldct_tf.<module>.run(config, workdir, *args)``, imported when the step runs; the step
    records nothing (the runner merges a returned dict into its state)."""
    def run(config, workdir):
        importlib.import_module(f"ldct_tf.{module}").run(config, workdir, *args)

    return run


def _export(phase: str):
    def run(config, workdir):
        from ldct_tf import export

        target = export.run(workdir, phase, config.pipeline.export_name, None,
                            config.pipeline.export_dir)
        return {"export_path": str(target)}

    return run


def _variant(name: str):
    return lambda config: config.replace(finetune=config.finetune.as_variant(name))


def _exists(*parts: str):
    return lambda workdir, record: Path(workdir, *parts).exists()


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
    tuned_names = tuple(name for name in FINETUNE_VARIANTS if name in wanted)
    steps = [
        Step("prepare", ("data", "scanner", "lesion", "lesion_test"), (), _call("prepare"),
             _exists(records.RECORDS_DIR, "stats.json")),
        Step("classifier", ("classifier",), ("prepare",), _call("classifier_training"),
             _exists("classifier", "model.keras")),
        Step("cam", ("cam",), ("classifier",), _call("cam"),
             _exists(records.RECORDS_WITH_MASK_DIR, "stats.json")),
        # The evaluation's CNN observer: its own seed and the test lesions, never the map maker.
        Step("observer", ("classifier", "observer", "lesion_test"), ("prepare",),
             _call("observer_training"), _exists("observer", "model.keras")),
        Step("pretrain", ("model", "pretrain", "input", "train"), ("prepare",),
             _call("denoiser_training", "pretrain"),
             _exists("denoiser", "pretrain", "model.keras")),
    ]
    steps += [Step(name, ("model", "finetune", "input", "train"), ("pretrain", "cam"),
                   _call("denoiser_training", "finetune"), _exists("denoiser", name, "model.keras"),
                   configure=_variant(name)) for name in tuned_names]
    steps.append(Step("evaluate", ("evaluate",), ("prepare", "classifier", "observer",
                                                  "pretrain", *tuned_names),
                      _call("evaluate"), _exists("eval", "metrics.json")))
    steps.append(Step("export", ("pipeline",), tuned_names[:1], _export(tuned_names[0]),
                      lambda workdir, record: bool(record.get("export_path"))
                      and Path(record["export_path"]).exists()))
    return steps
