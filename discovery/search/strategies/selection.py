"""Parent selection: the Darwin Gödel Machine rule, and best-of-N (every child from the seed) as a baseline."""

from __future__ import annotations

import math
import random
from typing import Literal

from discovery.domain import Candidate

Strategy = Literal["dgm", "best-of-n"]


def dgm_weights(fitnesses: list[float], children: list[int], steepness: float = 10.0) -> list[float]:
    """DGM weights: sigmoid(steepness * (normalised fitness - midpoint)) / (1 + children).

    Fitness is min-max normalised to [0, 1] over the archive (DGM's scores already lie there), and the
    midpoint is the mean of the top three, as in DGM.
    """
    lo, hi = min(fitnesses), max(fitnesses)
    span = hi - lo
    normalised = [(f - lo) / span if span > 0 else 1.0 for f in fitnesses]
    top = sorted(normalised, reverse=True)[:3]
    midpoint = sum(top) / len(top)
    return [
        1.0 / (1.0 + math.exp(-steepness * (a - midpoint))) / (1.0 + n)
        for a, n in zip(normalised, children, strict=True)
    ]


def select_parent(
    strategy: Strategy,
    parents: list[Candidate],
    children_counts: dict[int, int],
    seed_candidate: Candidate,
    rng: random.Random,
) -> Candidate:
    """Choose the parent of the next child among successfully evaluated candidates."""
    if strategy == "best-of-n" or not parents:
        return seed_candidate
    weights = dgm_weights([c.fitness for c in parents], [children_counts.get(c.id, 0) for c in parents])
    return rng.choices(parents, weights=weights, k=1)[0]
