"""Files written whole or not at all: the temporary name, failures, leftovers, folders, errors."""

import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ldct_tf import atomic
from ldct_tf.errors import EXIT_BAD_INPUT, environment_fault, run_cli


def test_write_text_json_and_mode(tmp_path):
    atomic.write_text(tmp_path / "a.txt", "é\n")
    assert (tmp_path / "a.txt").read_bytes() == "é\n".encode()
    atomic.write_json(tmp_path / "b.json", {"b": 1, "a": [2]}, sort_keys=True)
    assert (tmp_path / "b.json").read_text() == json.dumps({"a": [2], "b": 1}, indent=2) + "\n"
    atomic.write_text(tmp_path / "secret", "x", mode=0o600)
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.json", "secret"]


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "cases.npz"
    np.savez(target, a=np.arange(3))
    before = target.read_bytes()
    with pytest.raises(RuntimeError, match="stopped"):
        with atomic.replacing(target) as temp:
            assert temp.name == ".partial.cases.npz"  # keeps the suffix: np.savez adds none
            np.savez(temp, a=np.arange(5))
            raise RuntimeError("stopped")
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["cases.npz"]


def test_a_leftover_is_ignored_then_removed_and_a_link_is_written_through(tmp_path):
    (tmp_path / ".partial.x.json").write_text('{"cut')  # a killed run's
    assert atomic.is_partial(tmp_path / ".partial.x.json")
    atomic.write_json(tmp_path / "x.json", [1])
    assert not (tmp_path / ".partial.x.json").exists()
    (tmp_path / "real.json").write_text("{}")
    (tmp_path / "link.json").symlink_to("real.json")  # a seed study's shared files are links
    atomic.write_json(tmp_path / "link.json", [2])
    assert (tmp_path / "link.json").is_symlink()
    assert json.loads((tmp_path / "real.json").read_text()) == [2]
    with atomic.replacing(tmp_path / "untouched") as temp:  # nothing written: nothing changes
        assert not temp.exists()
    assert not (tmp_path / "untouched").exists()


def test_shared_writers_each_use_their_own_temporary(tmp_path):
    target = tmp_path / "cache.json"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / f".partial.{dead}.cache.json").write_text("cut")  # a finished process's
    (tmp_path / f".partial.{os.getppid()}.cache.json").write_text("busy")  # a live one's
    with atomic.replacing(target, shared=True) as temp:
        assert temp.name == f".partial.{os.getpid()}.cache.json"
        temp.write_text("{}")
    assert not (tmp_path / f".partial.{dead}.cache.json").exists()
    assert (tmp_path / f".partial.{os.getppid()}.cache.json").exists()


def test_a_folder_is_swapped_in_whole(tmp_path):
    target = tmp_path / "1"
    with atomic.replacing_dir(target) as temp:
        (temp / "variables").mkdir(parents=True)
        (temp / "saved_model.pb").write_text("old")
    with pytest.raises(ValueError):
        with atomic.replacing_dir(target) as temp:
            temp.mkdir()
            (temp / "saved_model.pb").write_text("half")
            raise ValueError("killed")
    assert (target / "saved_model.pb").read_text() == "old"
    (tmp_path / ".replaced.1").mkdir()  # a run killed between the two renames
    with atomic.replacing_dir(target) as temp:
        temp.mkdir()
        (temp / "saved_model.pb").write_text("new")
    assert (target / "saved_model.pb").read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["1"]


@pytest.mark.parametrize("raised, named", [
    (OSError(errno.ENOSPC, "No space left on device"), "TARGET"),  # a write() names no file
    (OSError(errno.EFBIG, "File too large", "TEMP"), "TARGET"),
    (OSError(errno.EACCES, "Permission denied", "/elsewhere/input"), "/elsewhere/input"),
    (RuntimeError("UnknownError: ... : No space left on device"), "TARGET"),  # TensorFlow's
    (RuntimeError("h5py: errno = 122, error message = 'Disk quota exceeded'"), "TARGET"),
])
def test_an_error_of_the_write_names_the_target(tmp_path, raised, named):
    target = tmp_path / "model.keras"
    with pytest.raises(OSError) as caught:
        with atomic.replacing(target) as temp:
            if getattr(raised, "filename", None) == "TEMP":
                raised.filename = str(temp)
            raise raised
    expected = str(target) if named == "TARGET" else named
    assert caught.value.filename == expected and caught.value.errno is not None
    assert environment_fault(caught.value).count(expected) == 1


def test_other_errors_pass_unchanged(tmp_path):
    with pytest.raises(KeyError):
        with atomic.replacing(tmp_path / "x") as temp:
            temp.write_text("x")
            raise KeyError("a bug")
    with pytest.raises(OSError) as caught:  # no errno: not the environment's, left as it was
        with atomic.replacing(tmp_path / "x"):
            raise OSError("no errno")
    assert caught.value.errno is None and environment_fault(caught.value) is None


@pytest.mark.parametrize("error, line", [
    (OSError(errno.ENOSPC, "x", "/w/eval/cases.npz"),
     "error: no space left on device writing /w/eval/cases.npz: free space or choose another "
     "--workdir/--output, then run again"),
    (OSError(errno.EROFS, "x", "/ro/salt"), "error: read-only file system at /ro/salt: choose "
                                            "another --workdir/--output on a writable disk"),
    (PermissionError(errno.EACCES, "x", "/w/config.toml"),
     "error: permission denied on /w/config.toml: fix its permissions or choose another "
     "--workdir/--output"),
])
def test_run_cli_prints_an_environment_fault_as_one_line(capsys, error, line):
    def main(argv):
        raise error

    assert run_cli(main, []) == EXIT_BAD_INPUT
    assert capsys.readouterr().err == line + "\n"


@pytest.mark.parametrize("error", [FileNotFoundError(errno.ENOENT, "x"),  # names no file
                                   OSError(errno.EINVAL, "x", "/w/a"), ZeroDivisionError()])
def test_run_cli_keeps_a_bug_visible(error):
    def main(argv):
        raise error

    with pytest.raises(type(error)):
        run_cli(main, [])
