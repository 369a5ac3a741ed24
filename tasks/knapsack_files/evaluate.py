"""Trusted evaluator for the multi-file knapsack task: runs the candidate package's solve() in a child.

The candidate is a folder (task.toml `candidate = "solver"`); candidate_path is that folder and
its entry file main.py imports its siblings. The evaluator checks every selection itself (it
does not trust the candidate's checks.py) and compares it with the optimum from dynamic
programming. Instances come from (split, seed, index): train and held-out never overlap.
"""

from __future__ import annotations

import random
from pathlib import Path

from discovery_harness import CandidateError, CandidateProcess

INSTANCES = {"train": 6, "heldout": 12}


def instance(split: str, seed: int, index: int) -> tuple[list[int], list[int], int]:
    """One instance: values, weights and a capacity of about a third of the total weight."""
    rng = random.Random(f"{split}:{seed}:{index}")
    n = rng.randint(18, 30)
    weights = [rng.randint(1, 30) for _ in range(n)]
    values = [max(1, min(60, w + rng.randint(-10, 30))) for w in weights]
    return values, weights, sum(weights) // 3


def optimum(values: list[int], weights: list[int], capacity: int) -> int:
    """The best packed value, by dynamic programming over the capacity."""
    best = [0] * (capacity + 1)
    for value, weight in zip(values, weights, strict=True):
        for room in range(capacity, weight - 1, -1):
            best[room] = max(best[room], best[room - weight] + value)
    return best[capacity]


def packed_value(chosen: object, values: list[int], weights: list[int], capacity: int) -> int:
    """The value of a selection; CandidateError when it is not a valid one."""
    if not isinstance(chosen, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in chosen
    ):
        raise CandidateError(f"solve() must return a list of ints, got {chosen!r:.200}")
    if len(set(chosen)) != len(chosen) or any(not 0 <= i < len(values) for i in chosen):
        raise CandidateError("solve() returned repeated or unknown item indices")
    load = sum(weights[i] for i in chosen)
    if load > capacity:
        raise CandidateError(f"the selection weighs {load}, over the capacity {capacity}")
    return sum(values[i] for i in chosen)


def evaluate(candidate_path, split, seed):
    """Mean packed value over the optimum across the split's instances."""
    ratios = []
    with CandidateProcess(Path(candidate_path) / "main.py", timeout_s=5) as proc:
        for index in range(INSTANCES.get(split, 6)):
            values, weights, capacity = instance(split, seed, index)
            chosen = proc.call("solve", values, weights, capacity)
            ratios.append(
                packed_value(chosen, values, weights, capacity) / optimum(values, weights, capacity)
            )
    score = sum(ratios) / len(ratios)
    return {
        "score": score,
        "worst": min(ratios),
        "feedback": f"worst instance at {min(ratios):.3f} of optimal",
    }
