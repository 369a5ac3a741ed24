"""Cascade evaluation: a cheap first stage decides whether a candidate earns the full evaluation.

The bar is a quantile of the first-stage fitnesses seen so far in the run (higher-is-better), so it
rises as the archive improves. Until enough first-stage results exist, there is no bar and every
candidate goes on to the full stage.
"""

from __future__ import annotations

import math

MIN_SAMPLES = 5  # first-stage results needed before the gate closes on anyone


def threshold(fitnesses: list[float], quantile: float, min_samples: int = MIN_SAMPLES) -> float | None:
    """The first-stage fitness a candidate must reach: the given quantile of earlier ones (linear interpolation).

    None (everything passes) while there are fewer than min_samples finite values.
    """
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"cascade quantile must lie in [0, 1], got {quantile}")
    values = sorted(f for f in fitnesses if f is not None and math.isfinite(f))
    if len(values) < max(min_samples, 1):
        return None
    position = quantile * (len(values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def passes(stage_fitness: float | None, bar: float | None) -> bool:
    """Whether a first-stage result earns the full evaluation; a failed first stage (None) never does."""
    if stage_fitness is None or not math.isfinite(stage_fitness):
        return False
    return bar is None or stage_fitness >= bar
