"""Time and progress of long runs: durations in words, what a run has left, a per-phase profile
of a step, and a "done of total" counter for long loops.

- `duration` / `rough_duration`: seconds in words (``1 min 12 s``; an estimate coarser:
  ``about 5 min 40 s``).
- `RunProgress`: the local runner's step lines, each step as k of n with the run's elapsed time
  and an estimate of what is left (`expected_seconds`: the first of several sources that timed
  the step, e.g. this work directory's previous manifest, then the preset's last run
  (`preset_seconds`, kept in the user's cache), then a first-run table).
- `phase`: ``with progress.phase("simulate"): ...`` adds the block's wall-clock seconds to the
  phase's total in one process-global collector (`phases`, `reset_phases`); the runner resets it
  before each step and stores what the step timed in its manifest entry. A phase entered again
  adds up; phases may nest (the inner block's time also counts in the outer phase), except that a
  phase nested in itself (on the same thread) counts once. The collector is per process: phases
  timed in worker processes (Apache Beam's multi-process DirectRunner or a cluster's workers)
  never reach the runner's; threads of one process share it (a lock). Phases need not cover a
  step, so they need not add up to its time.
- `Counter`: ``label: 128/300 slices`` while a loop runs; on a terminal one line redrawn in place,
  elsewhere (a log file) a line every ``every_s`` seconds and the last one, so logs stay clean.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Iterable, Mapping, TextIO

from ldct_tf import atomic

# --- durations in words ---------------------------------------------------------------------------

def duration(seconds: float) -> str:
    """``0 s``, ``19 s``, ``1 min 12 s``, ``6 min``, ``1 h 5 min`` (to the second below an hour,
    to the minute above)."""
    total = _half_up(max(0.0, seconds))
    if total < 60:
        return f"{total} s"
    if total < 3600:
        minutes, secs = divmod(total, 60)
        return f"{minutes} min" + (f" {secs} s" if secs else "")
    hours, minutes = divmod(_half_up(total / 60), 60)
    return f"{hours} h" + (f" {minutes} min" if minutes else "")


def rough_duration(seconds: float) -> str:
    """An estimate in words, no finer than it can be right: to 5 s below a minute, to 10 s below
    ten minutes, to the minute above (``40 s``, ``5 min 40 s``, ``12 min``, ``1 h 5 min``)."""
    seconds = max(0.0, seconds)
    step = 5 if seconds < 60 else 10 if seconds < 600 else 60
    return duration(_half_up(seconds / step) * step)


def _half_up(x: float) -> int:
    """Nearest whole number, halves up (`round` takes halves to even: 18.5 -> 18)."""
    return int(x + 0.5)


# --- what a run has left ----------------------------------------------------------------------

def ran_seconds(manifest: Mapping | None) -> dict[str, float]:
    """Each step's seconds in a runner manifest, for the steps that ran (a cached step's 0 s says
    nothing of how long it takes)."""
    out = {}
    for name, step in ((manifest or {}).get("steps") or {}).items():
        if not isinstance(step, Mapping) or step.get("status") != "ran":
            continue
        seconds = step.get("seconds")
        if isinstance(seconds, (int, float)) and seconds >= 0:
            out[name] = float(seconds)
    return out


def expected_seconds(names: Iterable[str], *sources: Mapping[str, float] | None
                     ) -> dict[str, float | None]:
    """Each step's expected seconds from the first source that has it (None: no source has)."""
    sources = [source for source in sources if source]
    return {name: next((float(source[name]) for source in sources if name in source), None)
            for name in names}


def seconds_left(names: Iterable[str], expected: Mapping[str, float | None]
                 ) -> tuple[float, int]:
    """(the sum of the known expected seconds of ``names``, how many have none)."""
    known = [expected.get(name) for name in names]
    return sum(s for s in known if s is not None), sum(s is None for s in known)


class RunProgress:
    """The step lines of one run: ``[3/9 cam] running (run elapsed 1 min 12 s, about 6 min
    left)``. ``names`` are the steps this run considers, in order (k of n counts them);
    ``to_run`` those expected to run (not cached): what is left is their expected seconds.
    ``label`` prefixes every step (``seed 2/3: 3/9 cam``); ``scope`` names the elapsed time."""

    def __init__(self, names: list[str], to_run: Iterable[str],
                 expected: Mapping[str, float | None], label: str = "", scope: str = "run",
                 clock=time.monotonic):
        self.names, self.to_run = list(names), set(to_run)
        self.expected, self.label, self.scope = dict(expected), label, scope
        self.clock, self.started = clock, clock()

    def tag(self, name: str) -> str:
        where = f"{self.names.index(name) + 1}/{len(self.names)} {name}"
        return f"[{self.label}: {where}]" if self.label else f"[{where}]"

    def elapsed(self) -> float:
        return self.clock() - self.started

    def left(self, name: str, including: bool) -> tuple[float, int, int]:
        """(known expected seconds, steps without an estimate, steps) of the steps still to run
        after ``name`` (and ``name`` itself when ``including``)."""
        k = self.names.index(name) + (0 if including else 1)
        remaining = [n for n in self.names[k:] if n in self.to_run]
        return (*seconds_left(remaining, self.expected), len(remaining))

    def status(self, name: str, including: bool) -> str:
        """``(run elapsed 1 min 12 s, about 6 min left)``; no estimate when nothing is left or
        no remaining step was ever timed; untimed steps are counted apart."""
        parts = [f"{self.scope} elapsed {duration(self.elapsed())}"]
        known, unknown, remaining = self.left(name, including)
        if remaining and unknown < remaining:
            parts.append(f"about {rough_duration(known)} left"
                         + (f" + {unknown} untimed step{'s' if unknown > 1 else ''}"
                            if unknown else ""))
        return "(" + ", ".join(parts) + ")"

    def cached(self, name: str, detail: str) -> str:
        return f"{self.tag(name)} cached ({detail}): skipped"

    def running(self, name: str) -> str:
        return f"{self.tag(name)} running {self.status(name, including=True)}"

    def done(self, name: str, seconds: float) -> str:
        return f"{self.tag(name)} done in {duration(seconds)} {self.status(name, including=False)}"


def preset_history_path() -> Path:
    """Where each preset's last step times are kept: ``$XDG_CACHE_HOME/ldct_tf/step_seconds.json``
    (``~/.cache`` without it): per user and machine, as the times are."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "ldct_tf" / "step_seconds.json"


def preset_seconds(preset: str, path: Path | None = None) -> dict[str, float]:
    """The seconds each step took when it last ran for ``preset`` (none recorded: empty)."""
    try:
        recorded = json.loads((path or preset_history_path()).read_text())
        return {name: float(s) for name, s in recorded.get(preset, {}).items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}  # none yet, or unreadable: estimates are best effort


def record_preset_seconds(preset: str, name: str, seconds: float,
                          path: Path | None = None) -> None:
    """Keep ``seconds`` as step ``name``'s last time for ``preset`` (best effort: a cache that
    cannot be written only costs a later estimate)."""
    path = path or preset_history_path()
    try:
        try:
            recorded = json.loads(path.read_text())
            recorded = recorded if isinstance(recorded, dict) else {}
        except (OSError, ValueError):
            recorded = {}
        if not isinstance(recorded.get(preset), dict):
            recorded[preset] = {}
        recorded[preset][name] = round(float(seconds), 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        # whole or not at all, also when two runs write at once
        atomic.write_json(path, recorded, shared=True, sort_keys=True)
    except OSError:
        pass


# --- per-phase profile --------------------------------------------------------------------------

_lock = threading.Lock()
_phases: dict[str, float] = {}
_active = threading.local()  # the phases open on this thread: a phase nested in itself counts once


@contextlib.contextmanager
def phase(name: str):
    """Add the block's wall-clock seconds to phase ``name`` (also usable as a decorator)."""
    open_here = getattr(_active, "names", None)
    if open_here is None:
        open_here = _active.names = set()
    if name in open_here:
        yield
        return
    open_here.add(name)
    with _lock:
        _phases.setdefault(name, 0.0)  # listed in the order first entered
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - started
        open_here.discard(name)
        with _lock:
            _phases[name] = _phases.get(name, 0.0) + seconds


def phases() -> dict[str, float]:
    """Seconds per phase since the last `reset_phases`, in the order first entered."""
    with _lock:
        return dict(_phases)


def reset_phases() -> None:
    with _lock:
        _phases.clear()


def phases_text(timed: Mapping[str, float]) -> str:
    """``simulate 41 s, write 3 s``."""
    return ", ".join(f"{name} {duration(seconds)}" for name, seconds in timed.items())


# --- done of total ----------------------------------------------------------------------------

class Counter:
    """``label: done/total unit`` for a long loop, on ``stream`` (default stderr). On a terminal
    the line is redrawn in place (at most every ``redraw_s``); elsewhere a line every ``every_s``
    seconds. `finish` writes the last line (``label: 300/300 slices`` and a ``suffix``). As a
    context manager it ends a half-drawn terminal line when the loop fails."""

    def __init__(self, label: str, total: int, unit: str = "slices", stream: TextIO | None = None,
                 every_s: float = 10.0, redraw_s: float = 0.2, clock=time.monotonic):
        self.label, self.total, self.unit = label, total, unit
        self.stream = stream if stream is not None else sys.stderr
        try:
            self.tty = bool(self.stream.isatty())
        except (AttributeError, ValueError):
            self.tty = False
        self.every_s = redraw_s if self.tty else every_s
        self.clock = clock
        self.done, self.last, self.drawn = 0, clock(), 0  # drawn: length of a pending tty line

    def text(self) -> str:
        return f"{self.label}: {self.done}/{self.total} {self.unit}"

    def add(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if now - self.last >= self.every_s and self.done < self.total:
            self.last = now
            self._write(self.text(), final=False)

    def finish(self, suffix: str = "") -> None:
        self._write(self.text() + suffix, final=True)

    def _write(self, line: str, final: bool) -> None:
        if self.tty:
            pad = " " * max(0, self.drawn - len(line))
            self.stream.write("\r" + line + pad + ("\n" if final else ""))
            self.drawn = 0 if final else len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def __enter__(self) -> "Counter":
        return self

    def __exit__(self, *exc) -> None:
        if self.drawn:  # a failure left the redrawn line open: end it before the error's lines
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = 0
