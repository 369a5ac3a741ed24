"""Parent selection: the Darwin Gödel Machine rule, and best-of-N (every child from the seed) as a baseline."""

from __future__ import annotations

import math
import random
from typing import Literal

from discovery.domain import Candidate

Strategy = Literal["dgm", "best-of-n"]


def dgm_weights(fitnesses: list[float], children: list[int], steepness: float = 10.0) -> list[float]:
    """DGM weights: sigmoid(steepness * (normalised fitness - midpoint)) / (1 + children).

    DGM's scores lie on a fixed [0, 1] scale; here a fitness becomes its rank in the archive, scaled to
    [0, 1] (ties share their mean rank), and the midpoint is the mean of the top three, as in DGM.
    Ranks, not a min-max rescale: one outlier (an invalid program scored 0, say) would squash every
    other difference towards 1 under min-max and flatten the selection; ranks ignore how far it lies.
    """
    normalised = rank_scale(fitnesses)
    top = sorted(normalised, reverse=True)[:3]
    midpoint = sum(top) / len(top)
    return [
        1.0 / (1.0 + math.exp(-steepness * (a - midpoint))) / (1.0 + n)
        for a, n in zip(normalised, children, strict=True)
    ]


def rank_scale(values: list[float]) -> list[float]:
    """Each value's rank among values scaled to [0, 1] (lowest 0, highest 1); ties share their mean rank."""
    n = len(values)
    if n < 2:
        return [1.0] * n
    order = sorted(range(n), key=values.__getitem__)
    ranks = [0.0] * n
    start = 0
    while start < n:
        end = start
        while end + 1 < n and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2 / (n - 1)
        start = end + 1
    return ranks


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
