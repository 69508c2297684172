"""Every path of a run's work directory, in one place: no other module spells one.

    <workdir>/
      config.toml  salt                       the resolved config; the run's secret salt
      records/  records_with_mask/            prepare's shards; the same with cam's maps
      classifier/  cam/  observer/            map classifier; map summary and figure; observer
      denoiser/<phase>/  logs/<phase>/        each trained network; its TensorBoard logs
      eval/                                   metrics.json, cases.npz, report.md, figures
      eval/lcd/                               the MITA-LCD phantom study (`evaluate.lcd`)
      pipeline_state.json  manifest.json      the local runner's cache and provenance
      seeds/seed-<k>/                         a seed study's extra seeds (sharing `SHARED`)
      .lock                                   while a command writes (`ldct_tf.workdir_lock`)

``Workdir(path)`` is a frozen value; each property is a path, nothing is created by reading one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.toml"  # the resolved config, in the work directory and each step folder
METRICS_FILE = "metrics.json"
SALT_FILE = "salt"
LOCK_FILE = ".lock"  # the one writer's claim on a folder (`ldct_tf.workdir_lock`)
# in a records folder
STATS_FILE, SCHEMA_FILE, QUARANTINE_FILE = "stats.json", "schema.json", "quarantine.json"
# in a step's folder
SUMMARY_FILE, HISTORY_FILE, SUMMARY_MD_FILE = "summary.json", "history.json", "summary.md"
REPORT_FILE, REPORT_HTML_FILE, FIGURES_DIR = "report.md", "report.html", "figures"
DEFAULT_RUNS_DIR = "runs"
# What a seed's work directory shares with the run (links): data, classifier, maps, observer, salt.
SHARED = ("records", "records_with_mask", "classifier", "cam", "observer", SALT_FILE)


@dataclasses.dataclass(frozen=True)
class Workdir:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # prepare
    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def salt(self) -> Path:
        return self.root / SALT_FILE

    @property
    def records(self) -> Path:
        return self.root / "records"

    @property
    def records_with_mask(self) -> Path:
        return self.root / "records_with_mask"

    # the map classifier, its maps and the independent observer
    @property
    def classifier(self) -> Path:
        return self.root / "classifier"

    @property
    def classifier_model(self) -> Path:
        return self.classifier / MODEL_FILE

    @property
    def classifier_metrics(self) -> Path:
        return self.classifier / METRICS_FILE

    @property
    def cam(self) -> Path:
        return self.root / "cam"

    @property
    def cam_figure(self) -> Path:
        return self.cam / FIGURES_DIR / "maps.png"

    @property
    def observer(self) -> Path:
        return self.root / "observer"

    @property
    def observer_model(self) -> Path:
        return self.observer / MODEL_FILE

    # the denoisers
    def denoiser(self, phase: str) -> Path:
        return self.root / "denoiser" / phase

    def denoiser_model(self, phase: str) -> Path:
        return self.denoiser(phase) / MODEL_FILE

    def logs(self, name: str = "") -> Path:
        return self.root / "logs" / name if name else self.root / "logs"

    # evaluation
    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def metrics(self) -> Path:
        return self.eval / METRICS_FILE

    @property
    def cases(self) -> Path:
        return self.eval / "cases.npz"

    @property
    def report(self) -> Path:
        return self.eval / REPORT_FILE

    @property
    def lcd(self) -> Path:
        return self.eval / "lcd"

    # the local runner and the seed study
    @property
    def state(self) -> Path:
        return self.root / "pipeline_state.json"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def seeds(self) -> Path:
        return self.root / "seeds"

    def seed(self, index: int) -> "Workdir":
        return Workdir(self.seeds / f"seed-{index}")


def default_workdir(config_path: str | None) -> Path:
    """``runs/<config name>`` (``runs/default`` without a config)."""
    name = Path(config_path).stem if config_path else "default"
    return Path(DEFAULT_RUNS_DIR) / name
