"""The Beam transforms of `prepare`: units -> examples -> TFRecord shards, stats and quarantine.

Runner-agnostic: files are written through Beam's ``FileSystems``, every element's randomness
comes from its identity (`ldct_tf.prepare.examples`), and each example's shard from its series key
and place in the series, so DirectRunner, the DaskRunner (tested), Flink, Spark or Dataflow write
the same shards. Only Create, ParDo, GroupByKey and Flatten are used (see `build_pipeline`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
import uuid
from pathlib import Path

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.tfrecordio import _TFRecordUtil
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import (
    DirectOptions,
    PipelineOptions,
    StandardOptions,
    WorkerOptions,
)

from ldct_tf import atomic, records
from ldct_tf.config import SPLITS, Config
from ldct_tf.dicom.path_labels import PathLabels
from ldct_tf.errors import ENVIRONMENT_FAULTS, LdctError
from ldct_tf.prepare.examples import unit_examples
from ldct_tf.prepare.plan import Unit, expected_examples, stable_int
from ldct_tf.records import schema as F
from ldct_tf.records import stats as record_stats
from ldct_tf.workdir import QUARANTINE_FILE

_PROGRESS_EVERY_S = 10.0


def beam_options(beam_args: list[str]) -> PipelineOptions:
    """The user's Beam arguments over local defaults: DirectRunner, one process per CPU core."""
    options = PipelineOptions(list(beam_args))
    standard = options.view_as(StandardOptions)
    if standard.runner is None:
        standard.runner = "DirectRunner"
    if standard.runner in ("DaskRunner", "dask"):  # Beam knows it by its full name only
        standard.runner = "apache_beam.runners.dask.dask_runner.DaskRunner"
    if standard.runner.endswith("DaskRunner"):
        if importlib.util.find_spec("distributed") is None:  # Beam imports it only at run time
            raise LdctError("the DaskRunner needs dask and distributed: pip install "
                            "'ldct_tf[dask]' (make does)")
        from apache_beam.runners.dask.dask_runner import DaskOptions
        dask = options.view_as(DaskOptions)
        if dask.npartitions is None and dask.partition_size is None:
            # the Units Create's partitions are the DaskRunner's only parallelism (its
            # Reshuffle is a no-op) and it puts 128 elements in one by default
            dask.partition_size = 1
    if standard.runner in ("DirectRunner", "direct"):
        direct = options.view_as(DirectOptions)
        if "--direct_running_mode" not in " ".join(beam_args):
            direct.direct_running_mode = "multi_processing"
        if "--direct_num_workers" not in " ".join(beam_args):
            direct.direct_num_workers = os.cpu_count() or 1
    worker = options.view_as(WorkerOptions)
    if worker.default_sdk_harness_log_level is None:
        # a worker's failure reaches this process in the exception `run` reports (its traceback
        # inside); the worker's own log lines of it would only repeat it, traceback and all
        worker.default_sdk_harness_log_level = "CRITICAL"
    return options


# A fault of the environment while a worker writes a file (`ldct_tf.errors.ENVIRONMENT_FAULTS`: a
# full disk, a quota, a size limit, a read-only folder) is counted, not raised, under a runner that
# reports Beam metrics (the DirectRunner): a Beam worker process prints the traceback of whatever
# it raises, while `prepare` reads the count after the run and says it once, in one line. Other
# runners (the DaskRunner reports no metrics) raise it.
FAULTS = "ldct_tf.environment_faults"


def counts_faults(options: PipelineOptions) -> bool:
    """Whether the runner of ``options`` reports the fault counters (`FAULTS`)."""
    return options.view_as(StandardOptions).runner in ("DirectRunner", "direct")


def _counted(exc: OSError, path: str, count: bool) -> bool:
    """Count ``exc`` (writing ``path``) as an environment fault, if it is one and ``count``."""
    if not (count and exc.errno in ENVIRONMENT_FAULTS):
        return False
    Metrics.counter(FAULTS, f"{exc.errno} {path}").inc()
    return True


def environment_faults(result: beam.runners.runner.PipelineResult) -> list[OSError]:
    """The faults the writers of a finished pipeline counted, each as the OSError it was (errno,
    the file that was being written), sorted by file; none where the runner counts none."""
    try:
        counters = result.metrics().query(MetricsFilter().with_namespace(FAULTS))["counters"]
    except NotImplementedError:  # the DaskRunner: its writers raise (`counts_faults`)
        return []
    faults = []
    for counter in counters:
        if counter.committed or counter.attempted:
            number, path = counter.key.metric.name.split(" ", 1)
            faults.append(OSError(int(number), os.strerror(int(number)), path))
    return sorted(faults, key=lambda fault: fault.filename)


def build_pipeline(pipeline: beam.Pipeline, units: list[Unit], config: Config, salt: str,
                   out: Path, index_skipped: list[tuple[str, str]] = ()) -> None:
    """Wire the prepare transforms onto ``pipeline``; outputs go to the folder ``out``.

    Only Create, ParDo, GroupByKey and Flatten, with no side inputs and no tagged outputs, and
    every branch ends in one final Flatten: the DaskRunner translates nothing else (a tagged
    output reaches the consumers of every tag; a side input recomputes its whole branch inside a
    task) and computes only the last transform's branch.
    """
    count = counts_faults(pipeline.options)
    made = (pipeline
            | "Units" >> beam.Create(units)
            | "Spread" >> beam.Reshuffle()
            | "MakeExamples" >> beam.ParDo(MakeExamples(config, salt, expected_examples(
                units, config.lesion_test.pairs_per_slice, config.lesion_variants.count),
                config.data.shards_per_split(len(units)))))
    examples = made | "Examples" >> beam.Filter(lambda item: item[0] != SKIPPED)
    n = config.data.shards_per_split(len(units))
    every_shard = [((split, shard), []) for split in SPLITS for shard in range(n)]
    written = ((examples | "KeyByShard" >> beam.Map(lambda item: ((item[0], item[3]), [item[1]])),
                pipeline | "EveryShard" >> beam.Create(every_shard))
               | "AllShards" >> beam.Flatten()
               | "GroupShards" >> beam.GroupByKey()
               | "WriteShards" >> beam.ParDo(WriteShard(str(out), n, config.data.compression,
                                                             count)))
    stats = (examples
             | "StatsBySplit" >> beam.Map(lambda item: (item[0], item[2]))
             | "CombineStats" >> beam.CombinePerKey(StatsFn())
             | "AllStats" >> _ToList("Stats")
             | "WriteStats" >> beam.Map(write_stats, str(Path(out) / INTERIM_STATS), count))
    quarantine = ((made
                   | "Skipped" >> beam.Filter(lambda item: item[0] == SKIPPED)
                   | "SkippedEntry" >> beam.Map(lambda item: item[1]),
                   pipeline | "IndexSkipped" >> beam.Create(list(index_skipped)))
                  | "AllSkipped" >> beam.Flatten()
                  | "ListSkipped" >> _ToList("Skipped")
                  | "WriteQuarantine" >> beam.Map(write_quarantine,
                                                  str(Path(out) / QUARANTINE_FILE), count))
    (written, stats, quarantine) | "Done" >> beam.Flatten()


SKIPPED = "skipped"
# The pipeline's statistics: `prepare` adds the shard counts and publishes them as stats.json,
# which says the records are complete, once every shard is in place (`records.write_shard_counts`).
INTERIM_STATS = ".beam.stats.json"


class _ToList(beam.PTransform):
    """The whole PCollection as one list, also when empty (a `combiners.ToList` without its side
    input): one key, a seed element from Create, a GroupByKey."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def expand(self, pcoll):
        return ((pcoll | f"{self.name}One" >> beam.Map(lambda x: (None, [x])),
                 pcoll.pipeline | f"{self.name}Seed" >> beam.Create([(None, [])]))
                | f"{self.name}Both" >> beam.Flatten()
                | f"{self.name}Group" >> beam.GroupByKey()
                | f"{self.name}List" >> beam.Map(lambda kv: [x for xs in kv[1] for x in xs]))


class WriteShard(beam.DoFn):
    """((split, shard), [[record], ...]) -> the shard ``<split>-SSSSS-of-NNNNN.tfrecord[.gz]``,
    written under a ``beam-temp-`` name, then renamed; yields its path (nothing where a fault of
    the environment was counted: ``count_faults``, `FAULTS`)."""

    def __init__(self, out: str, num_shards: int, compression: str, count_faults: bool = False):
        self.out, self.num_shards, self.compression = out, num_shards, compression
        self.count_faults = count_faults

    def process(self, item):
        (split, shard), groups = item
        name = records.shard_name(split, shard, self.num_shards, self.compression)
        final = FileSystems.join(self.out, name)
        temp = FileSystems.join(self.out, f"beam-temp-{name}-{uuid.uuid4().hex}")
        kind = (CompressionTypes.GZIP if self.compression == "GZIP"
                else CompressionTypes.UNCOMPRESSED)
        try:
            FileSystems.mkdirs(temp)
            part = FileSystems.join(temp, name)
            with FileSystems.create(part, compression_type=kind) as f:
                for record in sorted(r for rs in groups for r in rs):
                    _TFRecordUtil.write_record(f, record)
            FileSystems.rename([part], [final])
            FileSystems.delete([temp])
        except OSError as exc:  # the temporary folder is removed by `prepare` after the run
            if _counted(exc, final, self.count_faults):
                return
            raise
        yield final


class MakeExamples(beam.DoFn):
    """A unit -> (split, serialized example, stats, shard) per example, and ("skipped", (where,
    reason)) per skipped file or slice."""

    def __init__(self, config: Config, salt: str, expected: int = 0, num_shards: int = 1):
        self.config, self.salt, self.expected = config, salt, expected
        self.num_shards = num_shards

    def setup(self):
        self.done, self.started, self.last = 0, time.time(), time.time()

    def process(self, unit: Unit):
        made = 0
        try:
            for kind, first, second in unit_examples(unit, self.config, self.salt):
                if kind == "skipped":
                    yield SKIPPED, (first, second)
                    continue
                # the shard: round robin over the unit's examples from a start fixed by its key
                shard = (stable_int(unit.series_key, bits=64) + made) % self.num_shards
                self.done, made = self.done + 1, made + 1
                self._progress()
                yield (first, F.make_example(second),
                       record_stats.add(record_stats.empty(), second), shard)
        except Exception as exc:  # noqa: BLE001 - one series must not stop the others
            yield SKIPPED, unit_failure(unit, self.config, self.salt, exc, made)

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


def write_stats(per_split: list, path: str, count_faults: bool = False) -> None:
    found = dict(per_split)
    empty = record_stats.summary(record_stats.empty())
    _write_json({"splits": {s: found.get(s, empty) for s in SPLITS}}, path, count_faults)


def write_quarantine(skipped: list, path: str, count_faults: bool = False) -> None:
    _write_json([{"path": p, "reason": r} for p, r in sorted(skipped)], path, count_faults)


def _write_json(value, path: str, count_faults: bool) -> None:
    """Whole or not at all, on any Beam file system: a hidden temporary file, then a rename (the
    names of `ldct_tf.atomic`). A fault of the environment is counted (``count_faults``, `FAULTS`)
    or raised, the temporary file removed."""
    folder, name = FileSystems.split(path)
    temp = FileSystems.join(folder, f"{atomic.PARTIAL_PREFIX}{name}")
    try:
        with FileSystems.create(temp) as f:
            f.write((json.dumps(value, indent=2) + "\n").encode())
        FileSystems.rename([temp], [path])  # local: os.rename, which replaces
    except OSError as exc:
        try:
            FileSystems.delete([temp])
        except Exception:  # noqa: BLE001 - never made, or the file system refuses: the fault stands
            pass
        if not _counted(exc, path, count_faults):
            raise
