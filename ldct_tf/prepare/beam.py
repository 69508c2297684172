"""The Beam transforms of `prepare`: units -> examples -> TFRecord shards, stats and quarantine.

Runner-agnostic: files are written through Beam's ``FileSystems`` and every element's randomness
comes from its identity (`ldct_tf.prepare.examples`), so DirectRunner, Flink, Spark or Dataflow produce
the same examples.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import (
    DirectOptions, PipelineOptions, StandardOptions, WorkerOptions)

from ldct_tf.records import schema as F, stats as record_stats
from ldct_tf import records
from ldct_tf.config import SPLITS, Config
from ldct_tf.prepare.examples import unit_examples
from ldct_tf.dicom.path_labels import PathLabels
from ldct_tf.prepare.plan import Unit, expected_examples
from ldct_tf.workdir import QUARANTINE_FILE, STATS_FILE

_PROGRESS_EVERY_S = 10.0


def beam_options(beam_args: list[str]) -> PipelineOptions:
    """The user's Beam arguments over local defaults: DirectRunner, one process per CPU core."""
    options = PipelineOptions(list(beam_args))
    standard = options.view_as(StandardOptions)
    if standard.runner is None:
        standard.runner = "DirectRunner"
    if standard.runner in ("DirectRunner", "direct"):
        direct = options.view_as(DirectOptions)
        if "--direct_running_mode" not in " ".join(beam_args):
            direct.direct_running_mode = "multi_processing"
        if "--direct_num_workers" not in " ".join(beam_args):
            direct.direct_num_workers = os.cpu_count() or 1
    worker = options.view_as(WorkerOptions)
    if worker.default_sdk_harness_log_level is None:
        worker.default_sdk_harness_log_level = "ERROR"
    return options


def build_pipeline(pipeline: beam.Pipeline, units: list[Unit], config: Config, salt: str,
                   out: Path, index_skipped: list[tuple[str, str]] = ()) -> None:
    """Wire the prepare transforms onto ``pipeline``; outputs go to the folder ``out``."""
    made = (pipeline
            | "Units" >> beam.Create(units)
            | "Spread" >> beam.Reshuffle()
            | "MakeExamples" >> beam.ParDo(MakeExamples(config, salt, expected_examples(
                units, config.lesion_test.pairs_per_slice)))
            .with_outputs(
                "skipped", main="examples"))
    compression = "gzip" if config.data.compression == "GZIP" else "uncompressed"
    for split in SPLITS:
        (made.examples
         | f"Select{split}" >> beam.Filter(lambda item, s=split: item[0] == s)
         | f"Serialize{split}" >> beam.Map(lambda item: item[1])
         | f"Write{split}" >> beam.io.WriteToTFRecord(
             str(Path(out) / split), file_name_suffix=records.suffix(config.data.compression),
             num_shards=config.data.num_shards, compression_type=compression))
    (made.examples
     | "StatsBySplit" >> beam.Map(lambda item: (item[0], item[2]))
     | "CombineStats" >> beam.CombinePerKey(StatsFn())
     | "AllStats" >> beam.combiners.ToList()
     | "WriteStats" >> beam.Map(write_stats, str(Path(out) / STATS_FILE)))
    ((made.skipped, pipeline | "IndexSkipped" >> beam.Create(list(index_skipped)))
     | "AllSkipped" >> beam.Flatten()
     | "ListSkipped" >> beam.combiners.ToList()
     | "WriteQuarantine" >> beam.Map(write_quarantine, str(Path(out) / QUARANTINE_FILE)))


class MakeExamples(beam.DoFn):
    """A unit -> (split, serialized example, stats) per example, and tagged ``skipped`` entries."""

    def __init__(self, config: Config, salt: str, expected: int = 0):
        self.config, self.salt, self.expected = config, salt, expected

    def setup(self):
        self.done, self.started, self.last = 0, time.time(), time.time()

    def process(self, unit: Unit):
        made = 0
        try:
            for kind, first, second in unit_examples(unit, self.config, self.salt):
                if kind == "skipped":
                    yield beam.pvalue.TaggedOutput("skipped", (first, second))
                    continue
                self.done, made = self.done + 1, made + 1
                self._progress()
                yield first, F.make_example(second), record_stats.add(record_stats.empty(), second)
        except Exception as exc:  # noqa: BLE001 - one series must not stop the others
            yield beam.pvalue.TaggedOutput("skipped", unit_failure(unit, self.config, self.salt,
                                                                   exc, made))

    def _progress(self):
        now = time.time()
        if now - self.last >= _PROGRESS_EVERY_S:
            rate = self.done / (now - self.started)
            print(f"prepare: worker {os.getpid()}: {self.done} examples ({rate:.1f}/s); about "
                  f"{self.expected} in all", file=sys.stderr, flush=True)
            self.last = now


def unit_failure(unit: Unit, config: Config, salt: str, exc: Exception, made: int
                 ) -> tuple[str, str]:
    """The quarantine entry of a series whose processing failed part-way: it names the series
    (its label), the error (input paths in its text labelled too) and the examples kept."""
    labels = PathLabels(unit.root or ".", salt, config.data.keep_paths)
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    detail = labels.scrub((detail.splitlines() or [""])[0], unit.files)[:200]
    where = (labels(unit.root) if unit.root else f"synthetic series {unit.series_key}")
    return where, (f"series {unit.series_key} failed: {type(exc).__name__}: {detail}; its other "
                   f"slices are not used ({made} example(s) written before the failure)")


class StatsFn(beam.CombineFn):
    """Merges the per-example `record_stats` accumulators of one split."""

    def create_accumulator(self):
        return record_stats.empty()

    def add_input(self, acc, item):
        return record_stats.merge([acc, item])

    def merge_accumulators(self, accs):
        return record_stats.merge(accs)

    def extract_output(self, acc):
        return record_stats.summary(acc)


def write_stats(per_split: list, path: str) -> None:
    found = dict(per_split)
    empty = record_stats.summary(record_stats.empty())
    _write_json({"splits": {s: found.get(s, empty) for s in SPLITS}}, path)


def write_quarantine(skipped: list, path: str) -> None:
    _write_json([{"path": p, "reason": r} for p, r in sorted(skipped)], path)


def _write_json(value, path: str) -> None:
    with FileSystems.create(path) as f:
        f.write((json.dumps(value, indent=2) + "\n").encode())
