"""Knapsack solver: take items in decreasing priority while they fit."""

from checks import fits
from heuristic import priority


def solve(values, weights, capacity):
    """Indices of the items to pack."""
    order = sorted(range(len(values)), key=lambda i: priority(values[i], weights[i], capacity), reverse=True)
    chosen, load = [], 0
    for i in order:
        if fits(load, weights[i], capacity):
            chosen.append(i)
            load += weights[i]
    return chosen
