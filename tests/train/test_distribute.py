"""Tests for ldct_tf.train.distribute: TF_CONFIG reading, the strategy choice, the shard policy,
each worker's share of the training files, the non-chief's temporary outputs, and the one-line
errors (the worker processes themselves are in test_multiworker.py)."""

import json
import logging
import os
import subprocess
import sys
import tempfile

import pytest

from ldct_tf import records
from ldct_tf.config import load_config
from ldct_tf.errors import LdctError
from ldct_tf.records import denoiser_input
from ldct_tf.train import distribute


def tf_config(workers=2, chief=False, index=0, kind="worker"):
    cluster = {"worker": [f"127.0.0.1:{2000 + i}" for i in range(workers)]}
    if chief:
        cluster["chief"] = ["127.0.0.1:1999"]
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})}


def test_cluster_workers_counts_chief_and_workers():
    assert distribute.cluster_workers({}) == 0
    assert distribute.cluster_workers({"TF_CONFIG": "  "}) == 0
    assert distribute.cluster_workers(tf_config(2)) == 2
    assert distribute.cluster_workers(tf_config(2, chief=True)) == 3
    spec = {"cluster": {"worker": ["a:1"], "ps": ["b:2", "c:3"]},
            "task": {"type": "worker", "index": 0}}
    assert distribute.cluster_workers({"TF_CONFIG": json.dumps(spec)}) == 1  # ps are not trainers


@pytest.mark.parametrize("text", ["{not json", '{"cluster": {"worker": ["a:1"]}}', "[1, 2]",
                                  '{"cluster": {}, "task": "worker"}'])
def test_a_malformed_tf_config_is_one_clear_error(text):
    with pytest.raises(LdctError, match=r"^TF_CONFIG is not a TensorFlow cluster description"):
        distribute.cluster_workers({"TF_CONFIG": text})


def test_without_a_cluster_the_strategy_is_the_default(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    distribution = distribute.strategy_for("none")
    assert distribution.kind == "default" and distribution.is_chief
    assert distribution.replicas == 1 and distribution.workers == 1
    with pytest.raises(LdctError, match="train.strategy must be one of auto, multiworker"):
        distribute.strategy_for("parameter_server")


def test_shard_policy_by_file_only_with_a_shard_per_worker(caplog):
    assert distribute.shard_policy("auto", 1, 1) == "OFF"
    assert distribute.shard_policy("auto", 2, 2) == "FILE"
    assert distribute.shard_policy("auto", 16, 3) == "FILE"
    assert distribute.shard_policy("data", 16, 2) == "DATA"
    with caplog.at_level(logging.WARNING, logger="ldct_tf.train"):
        assert distribute.shard_policy("auto", 1, 2) == "DATA"
    assert "1 training shard(s) for 2 workers" in caplog.text
    assert "data.num_shards >= 2" in caplog.text
    with pytest.raises(LdctError, match=r'input_sharding = "file" needs at least 3 training'):
        distribute.shard_policy("file", 2, 3)


def test_config_accepts_the_strategies_and_names_them_when_wrong():
    assert load_config(None, ['train.strategy="multiworker"']).train.strategy == "multiworker"
    assert load_config(None, ['train.input_sharding="data"']).train.input_sharding == "data"
    with pytest.raises(LdctError, match=r"\[train\] strategy: must be one of auto, multiworker, "
                                        r"mirrored, none"):
        load_config(None, ['train.strategy="tpu"'])
    with pytest.raises(LdctError, match=r"\[train\] input_sharding: must be auto, file or data"):
        load_config(None, ['train.input_sharding="rows"'])


def test_each_worker_reads_its_own_training_files(tiny_run):
    """shard=(i, n) gives worker i the patches of files i, i+n, ...: counted against the record
    counts in stats.json, the shares are those files' patches and add up to the whole."""
    config, workdir = tiny_run
    source = workdir / "records"
    counts = json.loads((source / "stats.json").read_text())["shards"]
    files = [p.name for p in records.shards(source, "train")]
    assert len(files) == 2
    per_slice = config.input.patches_per_slice

    def patches(shard):
        ds = denoiser_input.make_dataset(records.pattern(source, "train"), config, True,
                                         seed=3, batch_size=1, shard=shard)
        return sum(1 for _ in ds)

    shares = [patches((i, 2)) for i in range(2)]
    assert shares == [counts[files[i]] * per_slice for i in range(2)]
    assert sum(shares) == patches(None)


def test_a_non_chief_writes_into_a_temporary_folder_it_deletes(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    chief = distribute.Distribution(None, "multiworker", 2, "worker 0", True)
    other = distribute.Distribution(None, "multiworker", 2, "worker 1", False)
    out, logs = tmp_path / "w" / "denoiser" / "pretrain", tmp_path / "w" / "logs" / "pretrain"
    with distribute.output_dirs(chief, out, logs) as dirs:
        assert dirs == (out, logs)
    with distribute.output_dirs(other, out, logs) as (o, g):
        assert o.parent == g.parent and o.parent.parent == tmp_path / "tmp"
        assert (o.name, g.name) == ("0-pretrain", "1-pretrain")
        o.mkdir()
        (o / "model.keras").write_text("x")
        scratch = o.parent
    assert not scratch.exists() and not (tmp_path / "w").exists()
    # A worker killed inside the block leaves the folder; started again it starts clean.
    scratch.mkdir()
    (scratch / "stale").write_text("from a killed run")
    with distribute.output_dirs(other, out, logs) as (o, _):
        assert o.parent == scratch and not (scratch / "stale").exists()


def test_failure_reason_names_the_lost_task():
    text = ("{{function_node __wrapped__CollectiveReduceV2_device_/job:worker/replica:0/task:0}} "
            "Collective ops is aborted by: The following tasks are unhealthy (stopped sending "
            "heartbeats):\n/job:worker/replica:0/task:1\nThe tasks have crashed.")
    assert distribute.failure_reason(RuntimeError(text)) == \
        "/job:worker/replica:0/task:1 stopped sending heartbeats"
    assert distribute.failure_reason(RuntimeError("{{function_node f}} socket closed\nmore")) \
        == "socket closed"


def run_python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env}, timeout=120)


def test_a_multiworker_strategy_made_after_tensorflow_started_is_one_line():
    """TensorFlow configures collective ops only at start-up: a strategy asked for later (a
    training step run in-process after others) is an LdctError naming the fix, not a hang."""
    result = run_python(
        "import tensorflow as tf; tf.constant(1.0) + 1\n"
        "from ldct_tf.train import distribute\n"
        "from ldct_tf.errors import LdctError\n"
        "try:\n    distribute.strategy_for('auto')\n"
        "except LdctError as e:\n    print('LdctError:', e)\n", tf_config(2))
    assert "LdctError: a multi-worker strategy must be made before TensorFlow starts" \
        in result.stdout, result.stderr[-2000:]


def test_local_cluster_gives_each_worker_its_place_in_one_cluster():
    configs = [json.loads(c) for c in distribute.local_cluster(3)]
    addresses = configs[0]["cluster"]["worker"]
    assert len(set(addresses)) == 3 and all(a.startswith("127.0.0.1:") for a in addresses)
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
    assert all(c["cluster"] == configs[0]["cluster"] for c in configs)
    assert distribute.cluster_workers({"TF_CONFIG": json.dumps(configs[2])}) == 3


def test_a_lost_peer_is_one_line_under_several_workers_only():
    import tensorflow as tf

    lost = tf.errors.UnavailableError(None, None, "The following tasks are unhealthy (stopped "
                                      "sending heartbeats):\n/job:worker/replica:0/task:1\n")
    worker = distribute.Distribution(None, "multiworker", 2, "worker 0", True)
    with pytest.raises(LdctError, match=r"^worker 0: a worker of the cluster stopped "
                       r"\(/job:worker/replica:0/task:1 stopped sending heartbeats\); go on"):
        with distribute.peer_failures(worker, "go on"):
            raise lost
    with pytest.raises(tf.errors.UnavailableError):  # one process: not a cluster's failure
        with distribute.peer_failures(distribute.Distribution(None, "default"), "go on"):
            raise lost
