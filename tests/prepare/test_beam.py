"""Tests for ldct_tf.prepare.beam on a distributed runner: the same pipeline on Beam's DaskRunner,
against a dask.distributed cluster of two worker processes on this machine, writes the same
records, stats and quarantine list as on the DirectRunner."""

import json

import pytest
import tensorflow as tf
from records_fixtures import prepare_tiny

from ldct_tf.records import files
from ldct_tf.workdir import QUARANTINE_FILE, STATS_FILE, Workdir

distributed = pytest.importorskip("distributed")

# lesions larger than some slices hold: a quarantine list that is not empty
OVERRIDES = ["lesion.diameter_mm=[5.0, 25.0]"]


def _records(workdir) -> dict[str, list[bytes]]:
    """Every split's serialized examples, sorted (runners may order them differently)."""
    out = {}
    for split in ("train", "val", "test"):
        shards = files.shards(Workdir(workdir).records, split)
        out[split] = sorted(r.numpy() for s in shards for r in tf.data.TFRecordDataset(str(s)))
    return out


@pytest.mark.slow
def test_dask_runner_writes_what_the_direct_runner_writes(tmp_path):
    direct, dask = tmp_path / "direct", tmp_path / "dask"
    for workdir in (direct, dask):  # the same salt: the same anonymous series keys
        workdir.mkdir()
        (workdir / "salt").write_text("0123456789abcdef")
    prepare_tiny(direct, OVERRIDES)
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        prepare_tiny(dask, OVERRIDES, ["--runner", "DaskRunner", "--dask_client_address",
                                       cluster.scheduler_address])
    expected, got = _records(direct), _records(dask)
    assert {s: len(r) for s, r in got.items()} == {s: len(r) for s, r in expected.items()}
    assert got == expected  # byte for byte: examples are serialized deterministically
    for name in (STATS_FILE, QUARANTINE_FILE):
        assert json.loads((Workdir(dask).records / name).read_text()) == json.loads(
            (Workdir(direct).records / name).read_text())
    assert json.loads((Workdir(dask).records / QUARANTINE_FILE).read_text())  # not empty
    assert not list(Workdir(dask).records.glob("beam-temp-*"))
