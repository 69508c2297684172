"""One writer per folder: `claim(folder, command)` holds ``<folder>/.lock`` while a command writes.

The lock file is created atomically (``O_CREAT | O_EXCL``) and holds JSON ``{host, pid, command,
started}`` (``started``: local ISO time), plus a token of the claiming process; it is removed when
the block ends, however it ends. Only writers claim: reading a finished work directory never waits.

A second writer is refused with an `LdctError` naming the holder and the fix. A lock is taken over,
with a one-line warning on stderr, only when its holder is certainly gone: it names this host and a
pid that no longer exists (``os.kill(pid, 0)`` raises ProcessLookupError), or this process's pid
with another process's token (an earlier process that had the same pid, as in containers). A lock
of another host is never taken over (its pid means nothing here): the message says to delete it
if that run is dead. A lock file that cannot be read as a lock (empty, cut, garbled) is refused
while younger than `GRACE_SECONDS`, as its writer may be between creating and filling it, and taken
over when older (a writer killed in that gap, a full disk). A take-over moves the old file aside
and checks it is still the one judged stale, so two processes cannot both take one over.

The same process claiming a folder it already holds re-enters (the local runner runs its steps in
this process): the inner claim finds its own lock and leaves it for the outer one to remove, so
only the outermost claim removes the file. Threads of one process count as one writer.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import secrets
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from ldct_tf.atomic import alive
from ldct_tf.errors import LdctError, environment_fault
from ldct_tf.workdir import LOCK_FILE

GRACE_SECONDS = 10.0  # an unreadable lock younger than this may still be being written
# This process's token (a constant, not state): tells its own lock from an earlier process's that
# had the same pid.
_PROCESS = secrets.token_hex(8)
_TRIES = 3  # a stale lock taken over, then the create retried: another writer may win the race


@contextlib.contextmanager
def claim(folder: str | Path, command: str, option: str = "--workdir") -> Iterator[Path]:
    """Hold ``<folder>/.lock`` for the block; yield its path. The folder is created if missing,
    and removed again if the block leaves it empty (a refused or failed command leaves no folder).

    ``command`` is shown to a second writer; ``option`` is the flag its message suggests changing
    (``--workdir``, ``--output``, ``--out``; empty where there is no other folder to use)."""
    folder = Path(folder)
    lock = folder / LOCK_FILE
    with _removed_if_left_empty(folder):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            created = _acquire(lock, command, option)
        except OSError as exc:  # a full disk says so and how to fix it (`environment_fault`)
            if exc.filename is None:
                exc.filename = str(lock)
            fault = environment_fault(exc)
            raise LdctError(f"cannot claim {folder} for writing: {fault}" if fault else
                            f"cannot claim {folder} for writing ({exc.strerror or exc}); pass a "
                            f"folder you can write to as {option}") from None
        try:
            yield lock
        finally:
            if created:
                _release(lock)


@contextlib.contextmanager
def _removed_if_left_empty(folder: Path) -> Iterator[None]:
    """After the block, remove ``folder`` and the parents made with it, when they did not exist
    before and are empty."""
    made = [path for path in (folder, *folder.parents) if not path.exists()]  # deepest first
    try:
        yield
    finally:
        for path in made:
            try:
                path.rmdir()
            except OSError:  # not empty: the command wrote there
                break


def _acquire(lock: Path, command: str, option: str) -> bool:
    """Create the lock (True), or find this process already holds it (False)."""
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    mine = {"host": socket.gethostname(), "pid": os.getpid(), "command": command,
            "started": started, "process": _PROCESS}
    for _ in range(_TRIES):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pass
        else:
            try:
                with os.fdopen(fd, "w") as file:
                    file.write(json.dumps(mine) + "\n")
            except BaseException:  # a full disk: no half-made lock to refuse the next run
                lock.unlink(missing_ok=True)
                raise
            return True
        raw, holder, age = _read(lock)
        if raw is None:
            continue  # released between our create and our read
        if holder is None and age < GRACE_SECONDS:
            raise LdctError(f"{lock.parent} is being claimed by another run ({lock} is not "
                            f"complete yet); wait for it to finish{_or_another(option)}")
        if holder is not None:
            if holder["host"] != mine["host"]:
                raise LdctError(f"{_busy(lock, holder, option)} (if that run on "
                                f"{_one_line(holder['host'])} is dead, delete {lock})")
            if holder["pid"] == os.getpid() and holder.get("process") == _PROCESS:
                return False
            if holder["pid"] != os.getpid() and alive(holder["pid"]):
                raise LdctError(_busy(lock, holder, option))
        if _remove_if_unchanged(lock, raw):
            why = (f"the run that wrote it (pid {holder['pid']}, {_one_line(holder['command'])}, "
                   f"since {_one_line(holder['started'])}) no longer exists" if holder else
                   f"it is unreadable and older than {GRACE_SECONDS:g} s")
            print(f"warning: taking over the stale lock {lock}: {why}", file=sys.stderr)
    raise LdctError(f"{lock.parent}: another run claimed it while a stale lock was taken over; "
                    f"wait for it to finish{_or_another(option)}")


def _busy(lock: Path, holder: dict, option: str) -> str:
    return (f"{lock.parent} is being written by pid {holder['pid']} on host "
            f"{_one_line(holder['host'])} ({_one_line(holder['command'])}, since "
            f"{_one_line(holder['started'])}); wait for it to finish{_or_another(option)}")


def _read(lock: Path) -> tuple[bytes | None, dict | None, float]:
    """The lock's bytes (None: gone), its holder (None: not a readable lock) and age (seconds)."""
    try:
        raw, age = lock.read_bytes(), time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return None, None, 0.0
    try:
        holder = json.loads(raw)
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        return raw, None, age
    if not (isinstance(holder, dict) and all(k in holder for k in ("host", "command", "started"))
            and type(holder.get("pid")) is int and holder["pid"] > 0):
        return raw, None, age
    return raw, holder, age


def _remove_if_unchanged(lock: Path, raw: bytes) -> bool:
    """Remove the lock if it still holds ``raw``. It is moved aside first (atomic), so of two
    processes taking over one stale lock only one removes it; a fresh lock moved aside by mistake
    (it replaced the stale one after we read it) is put back."""
    aside = lock.with_name(f"{LOCK_FILE}.stale-{os.getpid()}-{_PROCESS}")
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return False
    try:
        if aside.read_bytes() == raw:
            return True
        with contextlib.suppress(FileExistsError):
            os.link(aside, lock)
        return False
    finally:
        aside.unlink(missing_ok=True)


def _release(lock: Path) -> None:
    """Remove the lock if it is still this process's (someone may have deleted and re-claimed)."""
    _, holder, _ = _read(lock)
    if holder and holder["pid"] == os.getpid() and holder.get("process") == _PROCESS:
        lock.unlink(missing_ok=True)


def _or_another(option: str) -> str:
    return f", or use another {option}" if option else ""


def _one_line(value) -> str:
    return " ".join(str(value).split())
