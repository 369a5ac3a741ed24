"""The live progress line's time estimate: this invocation's pace, to the end of the budget or --max-time."""

from __future__ import annotations

from discovery.app.runs import Pace, _progress_line, duration
from discovery.search.loop import Stats


def test_durations_read_at_a_glance() -> None:
    assert [duration(s) for s in (0, 42.4, 65, 3600 + 120 + 5)] == ["0s", "42s", "1m05s", "1h02m"]


def test_the_estimate_follows_this_invocations_pace() -> None:
    # Resumed at call 1 of 10; two calls in 20 s: seven more take about 70 s.
    pace = Pace(started=100.0, calls_at_start=1)
    assert pace.left(Stats(calls=3, budget=10), now=120.0) == "~1m10s left"
    assert pace.left(Stats(calls=1, budget=10), now=120.0) == "? left"  # nothing to go by yet
    assert pace.left(Stats(calls=10, budget=10), now=120.0) == "~0s left"


def test_max_time_caps_the_estimate_when_it_comes_first() -> None:
    pace = Pace(started=0.0, calls_at_start=0, max_time=60.0)
    assert pace.left(Stats(calls=1, budget=100), now=30.0) == "30s left (--max-time)"
    assert pace.left(Stats(calls=0, budget=100), now=30.0) == "30s left (--max-time)"
    assert pace.left(Stats(calls=50, budget=51), now=30.0) == "~1s left"


def test_the_line_shows_elapsed_and_left() -> None:
    line = _progress_line(Stats(calls=0, budget=5), Pace(started=0.0, calls_at_start=0)).plain
    assert line.startswith("calls 0/5") and line.endswith("? left")
