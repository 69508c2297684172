"""`python -m ldct_tf.prepare`: an Apache Beam pipeline that writes LDCT/NDCT TFRecord shards.

Like TFX's ExampleGen: the driver plans work units (`ldct_tf.prepare.plan`: series -> split, by
patient), the workers turn each unit into slice examples (`ldct_tf.prepare.examples`), and the
pipeline (`ldct_tf.prepare.beam`) writes into ``<workdir>/records/``:

- ``{train,val,test}-SSSSS-of-NNNNN.tfrecord`` (``.tfrecord.gz`` with GZIP),
- ``schema.json`` (the record keys), ``stats.json`` (counts per split and label, HU
  mean/SD/percentiles and noise of LDCT and NDCT), ``quarantine.json`` (every skipped file or
  slice with its reason; an empty list when none), ``config.toml`` (the resolved config).

Input files are named in these artifacts and in log lines by `ldct_tf.dicom.path_labels` labels
(``<input>/<hashed components>``), never by their paths, unless ``--keep-paths``
(``data.keep_paths``); ``python -m ldct_tf.dicom.quarantine`` maps the labels back for whoever holds
the input. A failed run leaves no Beam temporary folder behind; ``stats.json`` is removed first
and written last, so the records of a run killed part-way are never taken for complete (the next
run writes them again).

The default runner is Beam's DirectRunner in multi-process mode with one worker per CPU core. Any
Beam runner and its options can be passed after ``--``, e.g.
``python -m ldct_tf.prepare --config c.toml -- --runner FlinkRunner --flink_master host:8081``.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import sys
import time
from pathlib import Path

from ldct_tf import cli, dicom, progress, records
from ldct_tf.config import SOURCES, SPLITS, Config
from ldct_tf.dicom.path_labels import PathLabels
from ldct_tf.errors import LdctError, environment_fault, run_cli
from ldct_tf.prepare import plan as U
from ldct_tf.workdir import QUARANTINE_FILE, STATS_FILE, Workdir

log = logging.getLogger("ldct_tf.prepare")


def plan_units(config: Config, salt: str) -> tuple[list[U.Unit], list[tuple[str, str]]]:
    """Work units, and the files skipped while indexing (DICOM sources)."""
    data = config.data
    if data.source == "synthetic":
        return U.synthetic_units(config), []
    if not data.input:
        raise LdctError(f"source {data.source} needs a DICOM folder: pass --input PATH "
                        "(or set data.input)")
    index = dicom.index_series(data.input, salt=salt)
    labels = PathLabels(index.root, salt, config.data.keep_paths)
    skipped = [(labels(path), reason) for path, reason in index.skipped]
    if not index.groups:
        raise dicom.NoUsableSliceError(
            f"no DICOM series found under {data.input!r}: {len(skipped)} file(s) skipped; point "
            "--input at a folder of CT DICOM files", skipped)
    return U.dicom_units(index, data.source, data.seed, data.split_fractions), skipped


def run(config: Config, workdir: Path, beam_args: list[str] | None = None) -> dict:
    """Prepare the records of ``config`` in ``workdir``; return ``stats.json`` as a dict.
    ``beam_args`` (Beam options) default to ``pipeline.beam_args``."""
    beam_args = list(config.pipeline.beam_args if beam_args is None else beam_args)
    import apache_beam as beam

    from ldct_tf.prepare.beam import (
        INTERIM_STATS,
        build_pipeline,
        environment_faults,
        write_quarantine,
    )

    workdir = Path(workdir)
    out = Workdir(workdir).records
    out.mkdir(parents=True, exist_ok=True)
    salt = cli.workdir_salt(workdir)
    cli.save_config(config, workdir, out)
    with progress.phase("plan"):
        try:
            units, index_skipped = plan_units(config, salt)
        except dicom.NoUsableSliceError as exc:  # no series: still list every skipped file
            write_quarantine(exc.skipped, str(out / QUARANTINE_FILE))
            raise LdctError(f"{exc} (each skipped file and its reason: "
                            f"{out / QUARANTINE_FILE})") from None
    # stats.json says the records are complete: gone while they change, back once they are whole
    try:
        (out / STATS_FILE).unlink(missing_ok=True)
    except OSError as exc:  # a folder in the way, no permission
        raise LdctError(f"prepare could not write into {out} ({exc.strerror}: {exc.filename}); "
                        "fix permissions or remove what is in the way, then re-run") from None
    remove_beam_temp(out)  # what a killed run left
    (out / INTERIM_STATS).unlink(missing_ok=True)
    records.remove_shards(out)
    log.info("prepare: %d series -> %s; about %d examples (each test slice as %d lesion "
             "present/absent twin pair(s))", len(units), U.describe(units),
             U.expected_examples(units, config.lesion_test.pairs_per_slice,
                                 config.lesion_variants.count),
             config.lesion_test.pairs_per_slice)
    started = time.time()
    pipeline = None
    try:
        with progress.phase("beam"), _pipeline(beam, beam_args) as pipeline:
            build_pipeline(pipeline, units, config, salt, out, index_skipped)
    except Exception as exc:  # noqa: BLE001 - Beam wraps a worker's OSError in its own error
        # a worker's OSError comes wrapped, its traceback first where workers are processes
        found = re.search(r"\w+Error: \[Errno \d+\][^\n\[]*", str(exc))
        if isinstance(exc, OSError) or found:
            what = (str(exc).splitlines() or [""])[0] if isinstance(exc, OSError) else found[0]
            raise LdctError(f"prepare could not write into {out} ({what.strip()[:200]}); free "
                            "space, fix permissions or remove what is in the way, then re-run"
                            ) from None
        raise
    finally:
        remove_beam_temp(out)
        close_dask_client(pipeline)
    faults = environment_faults(pipeline.result)
    if faults:
        raise LdctError(environment_fault(faults[0]))
    n = config.data.shards_per_split(len(units))
    _check_written(out, [*(records.shard_name(split, k, n, config.data.compression)
                           for split in SPLITS for k in range(n)), INTERIM_STATS])
    records.write_schema(out, config.data.compression)
    records.write_shard_counts(out, json.loads((out / INTERIM_STATS).read_text()))
    (out / INTERIM_STATS).unlink()
    stats = json.loads((out / STATS_FILE).read_text())
    _report(stats, out, time.time() - started)
    return stats


def _check_written(out: Path, names: list[str]) -> None:
    """Every file ``names`` of the pipeline's output is there (a runner that lost a worker's
    output without raising must not leave records taken for complete)."""
    missing = [name for name in names if not (out / name).is_file()]
    if missing:
        raise LdctError(f"prepare's Beam pipeline finished without writing {', '.join(missing[:3])}"
                        f"{' ...' if len(missing) > 3 else ''} in {out}; run prepare again")


def _pipeline(beam, beam_args: list[str]):
    """A Beam pipeline with ``beam_args``; an unknown runner is a one-line error."""
    from ldct_tf.prepare.beam import beam_options

    try:
        return beam.Pipeline(options=beam_options(beam_args))
    except ValueError as exc:
        if "pipeline runner" not in str(exc):
            raise
        raise LdctError(f"Beam options {' '.join(beam_args)!r}: {str(exc).split('. ')[0]}; pass "
                        "DirectRunner, DaskRunner, FlinkRunner, SparkRunner, DataflowRunner or a "
                        "runner's full module path") from None


def close_dask_client(pipeline) -> None:
    """Close the dask Client that the DaskRunner connects and leaves open (its futures would
    hold the last results on the cluster, and it logs reconnection errors once the cluster is
    gone)."""
    client = getattr(getattr(pipeline, "result", None), "client", None)
    if client is not None:
        client.close()


def remove_beam_temp(out: Path) -> None:
    """Delete the temporary folders Beam's file sinks leave when a pipeline fails."""
    for temp in Path(out).glob("beam-temp-*"):
        shutil.rmtree(temp, ignore_errors=True)


def _report(stats: dict, out: Path, seconds: float) -> None:
    splits = stats["splits"]
    total = sum(s["examples"] for s in splits.values())
    quarantined = len(json.loads((out / QUARANTINE_FILE).read_text()))
    print(f"prepare: {total} examples in {seconds:.0f} s -> {out}")
    for split, s in splits.items():
        labels = s["labels"]
        noise = (f"; noise index LDCT {s['ldct']['noise_index_hu']} HU, NDCT "
                 f"{s['ndct']['noise_index_hu']} HU" if s["examples"] else "")
        print(f"  {split:5s} {s['examples']:6d} examples from {s['series']:4d} series "
              f"(lesion present {labels['1']}, absent {labels['0']}){noise}")
    print(f"  skipped {quarantined} file(s) or slice(s) (see {out / 'quarantine.json'})")
    if total == 0:
        raise LdctError(f"no usable slice: every input was skipped; see {out / 'quarantine.json'}")
    empty = [split for split, s in splits.items() if s["examples"] == 0]
    if empty:
        log.warning("warning: split(s) %s are empty: fewer series than splits; add series or "
                    "change data.split_fractions", ", ".join(empty))


def main(argv: list[str] | None = None) -> int:
    ours, beam_args = cli.split_passthrough(sys.argv[1:] if argv is None else argv)
    parser = cli.base_parser("python -m ldct_tf.prepare",
                             "Write LDCT/NDCT TFRecords with an Apache Beam pipeline.")
    parser.add_argument("--source", choices=SOURCES)
    parser.add_argument("--input", help="DICOM folder for the dicom sources")
    parser.add_argument("--keep-paths", action="store_true",
                        help="name input files by their real paths in quarantine.json, logs and "
                             "saved configs (default: salted labels, as folder names can name "
                             "the patient)")
    args = parser.parse_args(ours)
    extra = [f"data.source={json.dumps(args.source)}"] if args.source else []
    extra += [f"data.input={json.dumps(args.input)}"] if args.input else []
    extra += ["data.keep_paths=true"] if args.keep_paths else []
    config, workdir = cli.resolve(args, extra)
    with cli.claim(workdir, parser.prog, argv):
        run(config, workdir, beam_args or None)
    return 0


if __name__ == "__main__":
    cli.quiet_startup()
    sys.exit(run_cli(main))
