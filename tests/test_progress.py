"""Durations in words, the estimate of what a run has left, the phase collector and the counter,
against hand-computed values."""

import io
import json
import threading

import pytest

from ldct_tf import progress


@pytest.fixture(autouse=True)
def _empty_collector():
    progress.reset_phases()
    yield
    progress.reset_phases()


class FakeClock:
    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.mark.parametrize("seconds, text", [
    (0, "0 s"), (-3, "0 s"), (0.4, "0 s"), (0.5, "1 s"), (19.4, "19 s"), (59.4, "59 s"),
    (59.5, "1 min"), (60, "1 min"), (72, "1 min 12 s"), (91.2, "1 min 31 s"), (360, "6 min"),
    (3599, "59 min 59 s"), (3600, "1 h"), (3629, "1 h"), (3630, "1 h 1 min"), (3900, "1 h 5 min"),
    (7200, "2 h")])
def test_duration(seconds, text):
    assert progress.duration(seconds) == text


@pytest.mark.parametrize("seconds, text", [
    (0, "0 s"), (2.4, "0 s"), (2.5, "5 s"), (42, "40 s"), (57.5, "1 min"),
    (185, "3 min 10 s"),  # 18.5 tens: halves up, not to even
    (336, "5 min 40 s"), (344.9, "5 min 40 s"), (360, "6 min"), (599, "10 min"),
    (629, "10 min"), (630, "11 min"), (3900, "1 h 5 min")])
def test_rough_duration(seconds, text):
    assert progress.rough_duration(seconds) == text


def test_only_steps_that_ran_give_a_time():
    manifest = {"steps": {"prepare": {"status": "ran", "seconds": 88.1},
                          "cam": {"status": "cached", "seconds": 0.0},
                          "pretrain": {"status": "ran"},  # no seconds
                          "odd": "not a step", "finetune": {"status": "ran", "seconds": 61}}}
    assert progress.ran_seconds(manifest) == {"prepare": 88.1, "finetune": 61.0}
    assert progress.ran_seconds(None) == {} and progress.ran_seconds({}) == {}


def test_the_first_source_that_timed_a_step_wins():
    expected = progress.expected_seconds(
        ["prepare", "cam", "pretrain", "export"],
        {"prepare": 80.0}, None, {"prepare": 1.0, "cam": 20.0}, {"cam": 2.0, "pretrain": 70})
    assert expected == {"prepare": 80.0, "cam": 20.0, "pretrain": 70.0, "export": None}
    assert progress.seconds_left(["prepare", "cam", "export"], expected) == (100.0, 1)
    assert progress.seconds_left([], expected) == (0, 0)


def test_step_lines_count_k_of_n_and_what_is_left():
    clock = FakeClock()
    shown = progress.RunProgress(
        ["prepare", "classifier", "cam", "observer", "evaluate"],
        to_run=["cam", "observer", "evaluate"],  # prepare and classifier cached
        expected={"prepare": 90, "classifier": 60, "cam": 15, "observer": 260, "evaluate": 85},
        clock=clock)
    assert shown.cached("prepare", "fingerprint abc, outputs present") == \
        "[1/5 prepare] cached (fingerprint abc, outputs present): skipped"
    clock.now += 72
    # cam + observer + evaluate = 360 s
    assert shown.running("cam") == "[3/5 cam] running (run elapsed 1 min 12 s, about 6 min left)"
    clock.now += 19.4
    # observer + evaluate = 345 s -> to 10 s: 5 min 50 s (345 = 34.5 tens, halves up)
    assert shown.done("cam", 19.4) == \
        "[3/5 cam] done in 19 s (run elapsed 1 min 31 s, about 5 min 50 s left)"
    clock.now += 300
    assert shown.done("evaluate", 80) == \
        "[5/5 evaluate] done in 1 min 20 s (run elapsed 6 min 31 s)"


def test_untimed_steps_are_counted_apart_and_none_timed_gives_no_estimate():
    clock = FakeClock()
    shown = progress.RunProgress(["a", "b", "c"], ["a", "b", "c"], {"a": None, "b": 30, "c": None},
                                 label="seed 2/3", scope="seed", clock=clock)
    assert shown.running("a") == \
        "[seed 2/3: 1/3 a] running (seed elapsed 0 s, about 30 s left + 2 untimed steps)"
    assert shown.done("a", 4) == \
        "[seed 2/3: 1/3 a] done in 4 s (seed elapsed 0 s, about 30 s left + 1 untimed step)"
    assert shown.running("c") == "[seed 2/3: 3/3 c] running (seed elapsed 0 s)"


def test_preset_times_are_kept_per_preset_and_a_broken_file_costs_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = progress.preset_history_path()
    assert path == tmp_path / "cache" / "ldct_tf" / "step_seconds.json"
    assert progress.preset_seconds("demo") == {}
    progress.record_preset_seconds("demo", "prepare", 88.14)
    progress.record_preset_seconds("demo", "cam", 19)
    progress.record_preset_seconds("paper", "prepare", 900)
    progress.record_preset_seconds("demo", "prepare", 91)  # the last run's time replaces
    assert progress.preset_seconds("demo") == {"prepare": 91.0, "cam": 19.0}
    assert json.loads(path.read_text())["paper"] == {"prepare": 900.0}
    path.write_text("{not json")
    assert progress.preset_seconds("demo") == {}
    progress.record_preset_seconds("demo", "cam", 20)  # starts afresh
    assert progress.preset_seconds("demo") == {"cam": 20.0}
    blocked = tmp_path / "file"
    blocked.write_text("")
    progress.record_preset_seconds("demo", "cam", 1, path=blocked / "x" / "y.json")  # no raise


def test_phases_add_up_nest_and_reset(monkeypatch):
    ticks = iter([0.0, 1.0,  # a: 1 s
                  10.0, 11.0, 13.0, 14.0,  # b (4 s) holding c (2 s)
                  20.0, 20.5])  # a again: 0.5 s
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(ticks))
    with progress.phase("a"):
        pass
    with progress.phase("b"):
        with progress.phase("c"):
            pass
        with progress.phase("b"):  # nested in itself: counted once, by the outer block
            pass
    with progress.phase("a"):
        pass
    assert progress.phases() == {"a": 1.5, "b": 4.0, "c": 2.0}
    assert progress.phases_text({"simulate": 41.2, "write": 3}) == "simulate 41 s, write 3 s"
    progress.reset_phases()
    assert progress.phases() == {}


def test_a_failing_phase_still_counts_and_threads_share_the_collector():
    with pytest.raises(ValueError):
        with progress.phase("broken"):
            raise ValueError("boom")
    assert "broken" in progress.phases()

    @progress.phase("worker")
    def work():
        pass

    threads = [threading.Thread(target=lambda: [work() for _ in range(200)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(progress.phases()) == {"broken", "worker"} and progress.phases()["worker"] >= 0


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_counter_in_a_log_writes_a_line_every_interval_and_the_last():
    clock, out = FakeClock(0.0), io.StringIO()
    counter = progress.Counter("denoise: series s1", 300, stream=out, every_s=10, clock=clock)
    for _ in range(30):
        clock.now += 1
        counter.add(10)
    counter.finish(" (12.3 slices/s)")
    assert out.getvalue().splitlines() == ["denoise: series s1: 100/300 slices",
                                           "denoise: series s1: 200/300 slices",
                                           "denoise: series s1: 300/300 slices (12.3 slices/s)"]


def test_counter_on_a_terminal_redraws_one_line():
    clock, out = FakeClock(0.0), Tty()
    counter = progress.Counter("x", 12, unit="tiles", stream=out, redraw_s=1, clock=clock)
    for _ in range(12):
        clock.now += 1
        counter.add()
    counter.finish()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\rx: 12/12 tiles\n")
    assert "\rx: 11/12 tiles" in text


def test_counter_ends_a_half_drawn_line_when_the_loop_fails():
    clock, out = FakeClock(0.0), Tty()
    with pytest.raises(RuntimeError):
        with progress.Counter("x", 10, stream=out, redraw_s=0, clock=clock) as counter:
            clock.now += 1
            counter.add(3)
            raise RuntimeError
    assert out.getvalue() == "\rx: 3/10 slices\n"
