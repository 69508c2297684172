"""One writer per work directory (`ldct_tf.workdir_lock`): a second writer, in another process, is
refused with one line naming the holder; the same process re-enters; a lock whose process is gone
is taken over with a warning; another host's lock never is. The step commands claim their folder
before writing anything into it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from cli_fixtures import run_in_process
from lock_fixtures import held_elsewhere

from ldct_tf.cli import command_line
from ldct_tf.errors import LdctError
from ldct_tf.workdir import LOCK_FILE
from ldct_tf.workdir_lock import GRACE_SECONDS, claim

# Tries to claim argv[1] in another process, with the `python -m` error handling.
TRY = """
import sys
from ldct_tf.errors import run_cli
from ldct_tf.workdir_lock import claim
def main(argv):
    with claim(argv[0], "second"):
        print("claimed")
sys.exit(run_cli(main, sys.argv[1:]))
"""


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lock(folder, pid: int, **fields) -> bytes:
    holder = {"host": socket.gethostname(), "pid": pid, "command": "python -m old",
              "started": "2026-12-02T11:00:00+00:00", **fields}
    (folder / LOCK_FILE).write_text(json.dumps(holder))
    return (folder / LOCK_FILE).read_bytes()


# --- the lock ---------------------------------------------------------------------------------

def test_a_claim_holds_a_lock_naming_this_process_and_removes_it_however_the_block_ends(tmp_path):
    with claim(tmp_path, "python -m ldct_tf.cam --workdir runs/x") as lock:
        holder = json.loads(lock.read_text())
        assert lock == tmp_path / LOCK_FILE
        assert (holder["host"], holder["pid"]) == (socket.gethostname(), os.getpid())
        assert holder["command"] == "python -m ldct_tf.cam --workdir runs/x"
        assert abs(time.time() - time.mktime(time.strptime(holder["started"][:19],
                                                           "%Y-%m-%dT%H:%M:%S"))) < 60
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError), claim(tmp_path, "x"):
        raise RuntimeError("a failing step")
    assert list(tmp_path.iterdir()) == []


def test_another_process_is_refused_with_one_line_naming_the_holder(tmp_path):
    with claim(tmp_path, "python -m ldct_tf.prepare --workdir runs/demo") as lock:
        started = json.loads(lock.read_text())["started"]
        second = subprocess.run([sys.executable, "-c", TRY, str(tmp_path)], capture_output=True,
                                text=True, timeout=60)
        assert lock.exists()
    assert second.returncode == 2 and "claimed" not in second.stdout
    assert second.stderr.splitlines() == [
        f"error: {tmp_path} is being written by pid {os.getpid()} on host "
        f"{socket.gethostname()} (python -m ldct_tf.prepare --workdir runs/demo, since "
        f"{started}); wait for it to finish, or use another --workdir"]


def test_this_process_is_refused_while_another_holds_the_folder(tmp_path):
    with held_elsewhere(tmp_path) as pid:
        before = (tmp_path / LOCK_FILE).read_bytes()
        with pytest.raises(LdctError, match=rf"is being written by pid {pid} on host .*"
                                            r"python -m ldct_tf.prepare --workdir W, since "):
            with claim(tmp_path, "second", "--output"):
                pass
        assert (tmp_path / LOCK_FILE).read_bytes() == before


def test_the_same_process_re_enters_and_only_the_outermost_claim_removes_the_lock(tmp_path):
    with claim(tmp_path, "python -m pipelines.local_runner") as lock:
        outer = lock.read_bytes()
        with claim(tmp_path, "python -m ldct_tf.prepare"):
            assert lock.read_bytes() == outer  # the runner still holds it
        assert lock.read_bytes() == outer
    assert not lock.exists()


@pytest.mark.parametrize("holder", ["dead pid", "own pid, earlier process"])
def test_a_lock_whose_process_is_gone_is_taken_over_with_a_warning(tmp_path, capsys, holder):
    pid = dead_pid() if holder == "dead pid" else os.getpid()  # a container reusing its pid
    write_lock(tmp_path, pid, process="0123456789abcdef")
    with claim(tmp_path, "new") as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    err = capsys.readouterr().err.splitlines()
    assert err == [f"warning: taking over the stale lock {lock}: the run that wrote it (pid "
                   f"{pid}, python -m old, since 2026-12-02T11:00:00+00:00) no longer exists"]
    assert not lock.exists()


def test_a_lock_of_another_host_is_never_taken_over(tmp_path):
    before = write_lock(tmp_path, 12345, host="other-node")
    with pytest.raises(LdctError, match=r"being written by pid \d+ on host other-node .*; wait "
                                        r"for it to finish, or use another --workdir \(if that "
                                        r"run on other-node is dead, delete .*\.lock\)$"):
        with claim(tmp_path, "new"):
            pass
    assert (tmp_path / LOCK_FILE).read_bytes() == before


@pytest.mark.parametrize("content", [b"", b'{"host": "h", "pi', b"\xff\xfe", b"[1, 2]"])
def test_an_unreadable_lock_is_refused_while_young_and_taken_over_when_old(tmp_path, capsys,
                                                                           content):
    lock = tmp_path / LOCK_FILE
    lock.write_bytes(content)
    with pytest.raises(LdctError, match="is being claimed by another run .* is not complete yet"):
        with claim(tmp_path, "new"):
            pass
    assert lock.read_bytes() == content
    old = time.time() - GRACE_SECONDS - 1
    os.utime(lock, (old, old))
    with claim(tmp_path, "new"):
        assert json.loads(lock.read_text())["command"] == "new"
    assert "it is unreadable and older than" in capsys.readouterr().err


def test_a_folder_made_by_the_claim_is_removed_when_nothing_was_written(tmp_path):
    with claim(tmp_path / "a" / "b", "x"):
        pass
    assert list(tmp_path.iterdir()) == []
    with claim(tmp_path / "a" / "b", "x"):
        (tmp_path / "a" / "b" / "out.json").write_text("{}")
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["out.json"]


def test_the_command_in_the_lock_shows_the_input_folder_as_a_label():
    assert command_line("python -m ldct_tf.prepare", [
        "--input", "/data/SMITH_JOHN", "--set", 'data.input="/data/SMITH"', "--input=/data/X",
        "--workdir", "runs/a b"]) == ("python -m ldct_tf.prepare --input '<input>' --set "
                                      "'data.input=<input>' '--input=<input>' --workdir 'runs/a b'")


# --- the commands: refused before writing anything --------------------------------------------

def _refused(result, pid) -> None:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and len(errors) == 1
    assert f"is being written by pid {pid} on host {socket.gethostname()}" in errors[0]


def test_prepare_and_training_refuse_a_held_work_directory_and_write_nothing(tmp_path, capfd,
                                                                            caplog):
    from ldct_tf.prepare.pipeline import main as prepare
    from ldct_tf.train.phases import main as train

    workdir = tmp_path / "run"
    workdir.mkdir()
    with held_elsewhere(workdir) as pid:
        for main, argv in ((prepare, ["--workdir", workdir, "--set", "data.seed=1"]),
                           (train, ["--phase", "pretrain", "--workdir", workdir])):
            _refused(run_in_process(main, argv, capfd, caplog), pid)
            assert [p.name for p in workdir.iterdir()] == [LOCK_FILE]


def test_the_runner_refuses_a_held_work_directory(tmp_path, capfd, caplog):
    from pipelines import local_runner

    with held_elsewhere(tmp_path) as pid:
        _refused(run_in_process(local_runner.main, ["--workdir", tmp_path], capfd, caplog), pid)
        assert [p.name for p in tmp_path.iterdir()] == [LOCK_FILE]


def test_the_seed_study_refuses_a_seed_folder_held_by_a_step_run_on_it_alone(tmp_path):
    from ldct_tf.config import load_config
    from pipelines import local_runner

    seed_dir = local_runner.seed_workdir(tmp_path, 1)
    seed_dir.mkdir(parents=True)
    with held_elsewhere(seed_dir, "python -m ldct_tf.train --phase pretrain") as pid:
        with pytest.raises(LdctError, match=rf"^{seed_dir} is being written by pid {pid} .*"
                                            r"--phase pretrain"):
            local_runner.run_seeds(load_config(None), tmp_path, 2)
        assert [p.name for p in seed_dir.iterdir()] == [LOCK_FILE]


def test_denoise_refuses_a_held_output_folder(tmp_path, capfd, caplog):
    from ldct_tf import denoise

    (tmp_path / "in").mkdir()
    output = tmp_path / "out"
    output.mkdir()
    with held_elsewhere(output) as pid:
        result = run_in_process(denoise.main, ["--model", tmp_path / "no_model", "--input",
                                               tmp_path / "in", "--output", output], capfd,
                                caplog)
        _refused(result, pid)
        assert "or use another --output" in result.stderr
        assert [p.name for p in output.iterdir()] == [LOCK_FILE]
