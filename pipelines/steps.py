"""The steps of the main job: what each reads from the config, which steps feed it, how it runs
(the library's own ``run``, as its command calls it) and which outputs show it is done.

Wiring only; every algorithm lives in ``ldct_tf``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ldct_tf import records
from ldct_tf.config import Config


@dataclass(frozen=True)
class Step:
    name: str
    sections: tuple[str, ...]
    inputs: tuple[str, ...]
    run: Callable[[Config, Path], dict | None]
    outputs: Callable[[Config, Path, dict], bool]
    extra: Callable[[Config], object] = field(default=lambda config: None)


def _prepare(config, workdir):
    from ldct_tf import prepare

    prepare.run(config, workdir)


def _classifier(config, workdir):
    from ldct_tf import classifier_training

    classifier_training.run(config, workdir)


def _cam(config, workdir):
    from ldct_tf import cam

    cam.run(config, workdir)


def _pretrain(config, workdir):
    from ldct_tf import denoiser_training

    denoiser_training.run(config, workdir, "pretrain")


def _finetune(mode: str):
    def run(config, workdir):
        from ldct_tf import denoiser_training

        tuned = config.replace(finetune=dataclasses.replace(config.finetune, mode=mode))
        denoiser_training.run(tuned, workdir, "finetune")

    return run


def _evaluate(config, workdir):
    from ldct_tf import evaluate

    evaluate.run(config, workdir)


def _export(config, workdir):
    from ldct_tf import export

    phase = "finetune" if "weighted" in config.pipeline.finetune_modes else "finetune_pairs"
    target = export.run(workdir, phase, config.pipeline.export_name, None,
                        config.pipeline.export_dir)
    return {"export_path": str(target)}


def _exists(*parts: str):
    return lambda config, workdir, record: Path(workdir, *parts).exists()


STEPS = ("prepare", "classifier", "cam", "pretrain", "finetune", "finetune_pairs", "evaluate",
         "export")


def steps_for(config: Config) -> list[Step]:
    """The steps of this config's run, in order (finetune variants from ``[pipeline]``)."""
    modes = config.pipeline.finetune_modes
    tuned = [name for name, mode in (("finetune", "weighted"), ("finetune_pairs", "pairs"))
             if mode in modes]
    steps = [
        Step("prepare", ("data", "scanner", "lesion"), (), _prepare,
             _exists(records.RECORDS_DIR, "stats.json")),
        Step("classifier", ("classifier",), ("prepare",), _classifier,
             _exists("classifier", "model.keras")),
        Step("cam", ("cam",), ("classifier",), _cam,
             _exists(records.RECORDS_WITH_MASK_DIR, "stats.json")),
        Step("pretrain", ("model", "pretrain", "input", "train"), ("prepare",), _pretrain,
             _exists("denoiser", "pretrain", "model.keras")),
    ]
    for name in tuned:
        mode = "weighted" if name == "finetune" else "pairs"
        steps.append(Step(name, ("model", "finetune", "input", "train"), ("pretrain", "cam"),
                          _finetune(mode), _exists("denoiser", name, "model.keras"),
                          extra=lambda config, mode=mode: mode))
    steps.append(Step("evaluate", ("evaluate",), ("prepare", "classifier", "pretrain", *tuned),
                      _evaluate, _exists("eval", "metrics.json")))
    steps.append(Step("export", ("pipeline",), tuple(tuned), _export,
                      lambda config, workdir, record: bool(record.get("export_path"))
                      and Path(record["export_path"]).exists()))
    return steps
