"""Timing for same-process kernel tasks: clocks captured at import, CUDA events, L2 flush, medians.

Every clock and CUDA primitive is captured when this module is imported, before any candidate
code exists, so a candidate that replaces time.perf_counter_ns or torch.cuda.Event.elapsed_time
changes nothing here (and the Guard reports the replacement). On CPU a call is timed with
perf_counter_ns at a fixed torch thread count; on GPU with CUDA events, after flushing L2 and
with a full device synchronisation (all streams) before the end event, cross-checked against
the host clock.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

import torch

from discovery_harness.errors import CandidateError

_perf_counter_ns = time.perf_counter_ns
_monotonic_ns = time.monotonic_ns
_sorted = sorted
_Event = torch.cuda.Event
_record = torch.cuda.Event.record
_event_sync = torch.cuda.Event.synchronize
_elapsed_time = torch.cuda.Event.elapsed_time
_synchronize = torch.cuda.synchronize

L2_FLUSH_BYTES = 256 * 1024 * 1024
# The host clock encloses the two events; allow for the clocks' granularity only.
_EVENT_SLACK_NS = 50_000
_OVERHEAD_FLOOR_NS = 200_000


def monotonic_ns() -> int:
    """The harness's second clock (captured at import), for wall-time cross-checks."""
    return _monotonic_ns()


def median(values: list[float]) -> float:
    """Median of a non-empty list."""
    ordered = _sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


@dataclasses.dataclass
class Clock:
    """Times one call on the configured device; on CUDA it owns the L2 flush buffer."""

    device: str
    flush: torch.Tensor | None = None

    @classmethod
    def for_device(cls, device: str) -> Clock:
        """A clock for "cpu" or "cuda"; the CUDA one allocates the flush buffer once."""
        if device == "cuda":
            return cls(device, torch.empty(L2_FLUSH_BYTES // 4, dtype=torch.float32, device="cuda"))
        return cls(device)

    def time(self, call: Callable[[], Any]) -> tuple[int, Any]:
        """Run call() once; return (nanoseconds, its result)."""
        if self.device != "cuda":
            start = _perf_counter_ns()
            result = call()
            return _perf_counter_ns() - start, result
        self.flush.zero_()  # evict the previous trial's data from L2
        _synchronize()
        start, end = _Event(enable_timing=True), _Event(enable_timing=True)
        host_start = _perf_counter_ns()
        _record(start)
        result = call()
        _synchronize()  # every stream: work left on a side stream is counted
        _record(end)
        _event_sync(end)
        host_ns = _perf_counter_ns() - host_start
        event_ns = int(_elapsed_time(start, end) * 1e6)
        if event_ns > host_ns + _EVENT_SLACK_NS:
            raise CandidateError(
                f"timer disagreement: CUDA events measured {event_ns / 1e6:.3f} ms inside a host interval "
                f"of {host_ns / 1e6:.3f} ms"
            )
        return event_ns, result


@dataclasses.dataclass(frozen=True)
class TimingResult:
    """Interleaved reference/candidate timings of one evaluation."""

    ref_ns: tuple[int, ...]
    cand_ns: tuple[int, ...]
    plausible_speedup: float
    ref_first: tuple[bool, ...] = ()  # per trial: did the reference run first?

    @property
    def ref_ms(self) -> float:
        return median(list(self.ref_ns)) / 1e6

    @property
    def cand_ms(self) -> float:
        return median(list(self.cand_ns)) / 1e6

    @property
    def speedup(self) -> float:
        """Reference time over candidate time, balanced for call order.

        Whichever side runs second in a trial tends to run a few percent faster (warm allocator
        and caches). Trials alternate the order, so the geometric mean of the median pair ratio
        of each order cancels that bias; medians keep it robust to interference.
        """
        ratios = [r / max(c, 1) for r, c in zip(self.ref_ns, self.cand_ns, strict=True)]
        firsts = self.ref_first or tuple(i % 2 == 0 for i in range(len(ratios)))
        groups = [[x for x, f in zip(ratios, firsts, strict=True) if f == side] for side in (True, False)]
        groups = [g for g in groups if g]
        return math.prod(median(g) for g in groups) ** (1 / len(groups))

    @property
    def flagged(self) -> bool:
        """Beyond the task's plausibility bound: reported, never promoted."""
        return self.speedup > self.plausible_speedup

    @property
    def spread(self) -> float:
        """Interquartile range of the per-trial ratios over their median: a noise figure."""
        ratios = _sorted(r / max(c, 1) for r, c in zip(self.ref_ns, self.cand_ns, strict=False))
        n = len(ratios)
        return (ratios[(3 * n) // 4] - ratios[n // 4]) / max(median(ratios), 1e-12)


def check_wall(trial_ns: list[int], outer_ns: list[int], wall_ns: int) -> None:
    """Each trial's clock must fit inside the host's view of that trial, and all of them in the wall time."""
    for index, (inner, outer) in enumerate(zip(trial_ns, outer_ns, strict=False)):
        if inner > outer + _EVENT_SLACK_NS:
            raise CandidateError(
                f"timer disagreement: trial {index} measured {inner / 1e6:.3f} ms but took "
                f"{outer / 1e6:.3f} ms of wall time"
            )
    if sum(trial_ns) > wall_ns + _EVENT_SLACK_NS:
        raise CandidateError(
            f"timer disagreement: trials sum to {sum(trial_ns) / 1e6:.1f} ms, wall time {wall_ns / 1e6:.1f} ms"
        )


class UnreportedTime(CandidateError):
    """The candidate's calls took more untimed wall time than the reference's: a check that noise can trip."""


def check_overheads(ref: list[tuple[int, int]], cand: list[tuple[int, int]]) -> None:
    """Catch a forged (too small) candidate time: its untimed overhead would grow by what it hid.

    Each element is one trial's (timed, wall) nanoseconds; trial i of both lists ran back to back,
    so the difference of their untimed overheads cancels the load the machine was under just then.
    The median of those differences must stay within an allowance: 0.2 ms and 5% of the reference
    time (hiding less is not worth a forgery), plus four standard errors of that median, estimated
    from the differences' own spread. A loaded machine widens the spread and so the allowance; a
    forgery shifts every difference alike. (Comparing the two sides' medians instead gave false
    alarms under load: with about half the calls delayed, each median can land in another mode.)
    """
    diffs = [(c_out - c_in) - (r_out - r_in) for (r_in, r_out), (c_in, c_out) in zip(ref, cand, strict=True)]
    centre = median(diffs)
    # MAD * 1.4826 estimates the standard deviation; the median's standard error is 1.2533 sd / sqrt(n).
    spread = median([abs(d - centre) for d in diffs]) * 1.4826
    standard_error = 1.2533 * spread / math.sqrt(len(diffs))
    ref_ns = median([inner for inner, _ in ref])
    allowed = _OVERHEAD_FLOOR_NS + 0.05 * ref_ns + 4 * standard_error
    if centre > allowed:
        raise UnreportedTime(
            f"timer disagreement: the candidate's calls took {centre / 1e6:.3f} ms more untimed wall time "
            f"than the reference's, beyond the {allowed / 1e6:.3f} ms that noise explains"
        )
