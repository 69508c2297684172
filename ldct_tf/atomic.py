"""Files a later step or run trusts appear whole or not at all.

Every such file is written under a hidden temporary name in its own folder, ``.partial.NAME``
(the name keeps ``NAME``'s suffixes, so Keras, NumPy and Matplotlib still see ``.keras``,
``.npz``, ``.png``), flushed to disk and renamed over ``NAME`` in one step (`os.replace`). A
process killed, or a disk filling up, part-way leaves either the old file or the new one, never
a cut one; what it leaves is a hidden ``.partial.NAME`` that no reader opens (no glob of this
package matches a name that starts with a dot) and that the next write of ``NAME`` removes.

- `write_text`, `write_bytes`, `write_json`: a whole file from memory (``mode``: permissions the
  file has from its creation, e.g. 0o600 for a secret); `copy_file`;
- `replacing`: a temporary path for writers that need a file name (``np.savez``, Keras
  ``model.save``, ``fig.savefig``, ``Dataset.save_as``);
- `replacing_dir`: the same for a folder (a SavedModel): written beside it, then swapped in;
- `is_partial`, `remove`: for a writer that clears a folder of a killed run's leftovers.

One writer per file at a time (a work directory's lock, `ldct_tf.workdir_lock`, makes sure of it).
An `OSError` of the writer that names no file, or the temporary one, is raised again naming the
target; an error of another library (TensorFlow, h5py) that reports a full disk, a quota or a
file-size limit in its message is raised as that `OSError`, so `ldct_tf.errors.run_cli` prints it
as one line.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from pathlib import Path
from typing import Iterator

PARTIAL_PREFIX = ".partial."  # a file or folder being written
REPLACED_PREFIX = ".replaced."  # a folder being swapped out (`replacing_dir`)
# errors other libraries report in their own exception types: matched in the message
_REPORTED = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES}


def partial_path(path: str | os.PathLike, shared: bool = False) -> Path:
    """The hidden temporary name ``path`` is written under (``shared``: this process's own)."""
    path = Path(path)
    return path.parent / f"{PARTIAL_PREFIX}{f'{os.getpid()}.' if shared else ''}{path.name}"


def is_partial(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a temporary name of this module (a killed run's leftover)."""
    return Path(path).name.startswith((PARTIAL_PREFIX, REPLACED_PREFIX))


@contextlib.contextmanager
def replacing(path: str | os.PathLike, shared: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for the block to write; when the block ends without
    error, the file is flushed to disk and renamed over ``path``. When it fails, the temporary
    file is removed and ``path`` stays as it was. A block that writes nothing (a checkpoint that
    did not improve) leaves ``path`` as it was too. A link is written through: its target is
    replaced, the link kept.

    ``shared``: several processes may write ``path`` at once (a per-user cache): each writes its
    own temporary file (the last rename wins), and only the leftovers of processes that no longer
    exist are removed."""
    path = _through_link(Path(path))
    temp = partial_path(path, shared)
    for leftover in _leftovers(path) if shared else [temp]:  # what killed runs left
        remove(leftover)
    with _removed_on_failure(temp, path):
        yield temp
        if temp.exists():
            _flush(temp)
            os.replace(temp, path)


def write_bytes(path: str | os.PathLike, data: bytes, mode: int | None = None,
                shared: bool = False) -> Path:
    """Write ``data`` to ``path`` whole or not at all; ``mode``: the file's permissions from its
    creation (default: the usual ones); ``shared``: see `replacing`. Returns ``path``."""
    with replacing(path, shared) as temp:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666 if mode is None else mode)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, mode: int | None = None,
               shared: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all (`write_bytes`)."""
    return write_bytes(path, text.encode("utf-8"), mode, shared)


def write_json(path: str | os.PathLike, value, shared: bool = False, **dumps) -> Path:
    """Write ``value`` as indented JSON with a final newline, whole or not at all; ``dumps``:
    further `json.dumps` arguments (``sort_keys``, ``default``); ``shared``: see `replacing`."""
    return write_text(path, json.dumps(value, indent=2, **dumps) + "\n", shared=shared)


def copy_file(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Copy ``source``'s bytes to ``target``, whole or not at all. Returns ``target``."""
    with replacing(target) as temp:
        shutil.copyfile(source, temp)
    return Path(target)


@contextlib.contextmanager
def replacing_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder path beside ``path`` (not created: the block makes it, as
    `shutil.copytree` and SavedModel writers expect); when the block ends without error, its
    files are flushed and it takes ``path``'s place (an old ``path`` is moved aside, then
    removed). Between the two renames ``path`` is briefly absent, never half-made. When the
    block fails, the temporary folder is removed and ``path`` stays as it was."""
    path = _through_link(Path(path))
    temp, aside = partial_path(path), path.parent / f"{REPLACED_PREFIX}{path.name}"
    for leftover in (temp, aside):
        remove(leftover)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _removed_on_failure(temp, path):
        yield temp
        if not temp.is_dir():
            raise FileNotFoundError(errno.ENOENT, "the block wrote no folder", str(temp))
        for file in sorted(p for p in temp.rglob("*") if p.is_file()):
            _flush(file)
        if path.exists():
            os.replace(path, aside)
        os.replace(temp, path)
    remove(aside)


def _leftovers(path: Path) -> list[Path]:
    """The per-process temporary files of ``path`` whose process no longer exists."""
    found = []
    for temp in path.parent.glob(f"{PARTIAL_PREFIX}*.{path.name}"):
        pid = temp.name[len(PARTIAL_PREFIX):-len(path.name) - 1]
        if pid.isdigit() and not alive(int(pid)):
            found.append(temp)
    return found


def alive(pid: int) -> bool:
    """Whether a process of this pid exists on this host (another user's counts): a temporary file
    or lock of a live process is never taken over."""
    if os.name == "nt":  # os.kill(pid, 0) would end the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process, or no way to ask: keep its file
        return True
    return True


def _through_link(path: Path) -> Path:
    return path.resolve() if path.is_symlink() else path


def _flush(path: Path) -> None:
    """Force ``path``'s data to disk before it is renamed into place: a full disk or a quota shows
    here, on the temporary file, and the rename never publishes data still in memory."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove(path: str | os.PathLike) -> None:
    """Remove a file or folder, best effort (for a killed run's leftovers: one that cannot be
    removed is written over, or named by the write that follows)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


@contextlib.contextmanager
def _removed_on_failure(temp: Path, path: Path) -> Iterator[None]:
    """When the block fails, ``temp`` is removed and the error raised again naming ``path``
    (`_naming`)."""
    try:
        yield
    except BaseException as exc:
        remove(temp)
        named = _naming(exc, path, temp)
        if named is exc:
            raise
        raise named from exc


def _naming(exc: BaseException, path: Path, temp: Path) -> BaseException:
    """``exc`` as an `OSError` that names ``path`` when it came from writing it (no file named,
    the temporary one, or a library's error whose message reports a full disk or a limit);
    anything else unchanged."""
    if isinstance(exc, OSError) and exc.errno is not None:
        name = (os.fsdecode(exc.filename)
                if isinstance(exc.filename, (str, bytes, os.PathLike)) else None)
        if name is None or name == str(temp) or name.startswith(str(temp) + os.sep):
            # a file inside a temporary folder is named at its final place
            where = str(path) + (name or str(temp))[len(str(temp)):]
            return OSError(exc.errno, exc.strerror, where)
        return exc
    if isinstance(exc, Exception):
        text = str(exc)
        for code in sorted(_REPORTED):
            if os.strerror(code) in text:
                return OSError(code, os.strerror(code), str(path))
    return exc
