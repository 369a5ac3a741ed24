"""Trusted evaluator: online bin packing with a candidate priority function (FunSearch style).

The evaluator runs the online packing loop itself. For each arriving item it asks the candidate's
`priority(item, bins)` (in a child process, discovery_harness.CandidateProcess) to rank the open
bins that can hold the item plus one fresh empty bin, and puts the item in the highest-ranked one.
The candidate never sees future items, never touches the packing, and never reports a score.

Score (minimised): the mean, over instances, of the excess bins over the L1 lower bound
ceil(sum(items) / capacity), in percent.

Instances are generated here from (split, seed): the train and held-out splits use disjoint
random streams, so the held-out instances are never shown to the LLM.
  OR-style:      capacity 150, items uniform integers in [20, 100] (like OR-Library binpack "u").
  Weibull-style: capacity 100, items round(Weibull(shape 3) * 45) clipped to [1, 100] (FunSearch).
Sizes (instances per family x items): train 5 x 500, heldout 5 x 2000, smoke stage 1 x 100.
"""

from __future__ import annotations

import math
import time
import tomllib
from pathlib import Path
from typing import NamedTuple

import numpy as np
from discovery_harness import CandidateError, CandidateProcess

SPLITS = {"train": 0, "heldout": 1}  # split -> stream id; different ids give disjoint instances
FAMILIES = ("or", "weibull")
SIZES = {"train": (5, 500), "heldout": (5, 2000), "smoke": (1, 100)}  # (instances per family, items)


class Instance(NamedTuple):
    """One bin packing instance: a family name, a bin capacity and the item sizes in arrival order."""

    family: str
    capacity: float
    items: np.ndarray

    @property
    def lower_bound(self) -> int:
        """The L1 lower bound on the number of bins: ceil(total size / capacity)."""
        return math.ceil(float(self.items.sum()) / self.capacity)


def make_instance(family: str, n_items: int, rng: np.random.Generator) -> Instance:
    """Draw one instance of a family."""
    if family == "or":
        return Instance("or", 150.0, rng.integers(20, 101, n_items).astype(np.float64))
    if family == "weibull":
        return Instance("weibull", 100.0, np.clip(np.round(rng.weibull(3.0, n_items) * 45.0), 1.0, 100.0))
    raise ValueError(f"unknown instance family {family!r}")


def make_instances(split: str, seed: int, stage: str | None = None) -> list[Instance]:
    """The instances of a split: deterministic in (split, seed), disjoint across splits."""
    if split not in SPLITS:
        raise ValueError(f"bin_packing has splits {sorted(SPLITS)}, not {split!r}")
    count, n_items = SIZES["smoke" if stage == "smoke" else split]
    return [
        make_instance(family, n_items, np.random.default_rng([seed, SPLITS[split], family_id, k]))
        for family_id, family in enumerate(FAMILIES)
        for k in range(count)
    ]


def _time_budget_s() -> float:
    """Seconds the candidate may use: the task's timeout, less a margin so we report before a kill."""
    spec = tomllib.loads((Path(__file__).parent / "task.toml").read_text())
    timeout_s = float(spec.get("resources", {}).get("timeout_s", 60.0))
    return max(1.0, 0.8 * timeout_s - 1.0)


def _choose(priorities: object, n_bins: int) -> int:
    """Index of the highest priority (first on ties); CandidateError unless n_bins finite numbers."""
    if not isinstance(priorities, list):
        raise CandidateError(
            f"priority() must return an array with one priority per bin ({n_bins}), got {type(priorities).__name__}"
        )
    array = np.asarray(priorities) if priorities else np.zeros(0)
    if array.shape != (n_bins,) or array.dtype.kind not in "iuf":
        shape = array.shape if array.dtype.kind != "O" else "ragged"
        raise CandidateError(
            f"priority() must return {n_bins} numbers (one per bin in `bins`), got shape {shape} dtype {array.dtype}"
        )
    if not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array))[0])
        raise CandidateError(f"priority() returned a non-finite value {array[bad]} for bin {bad} of {n_bins}")
    return int(np.argmax(array))


def pack_online(proc: CandidateProcess, instances: list[Instance], deadline: float) -> list[np.ndarray]:
    """Pack all instances online; returns, per instance, the bin index of each item.

    At step t every instance still running gets its item t; the calls for all instances go in
    one round trip (proc.map), which is still online: no instance's future items are sent.
    """
    assignments = [np.full(len(inst.items), -1, dtype=np.int64) for inst in instances]
    remaining = [np.empty(len(inst.items)) for inst in instances]  # residual capacity per open bin
    n_open = [0] * len(instances)
    for t in range(max(len(inst.items) for inst in instances)):
        active = [k for k, inst in enumerate(instances) if t < len(inst.items)]
        candidates, calls = [], []
        for k in active:
            item = float(instances[k].items[t])
            fits = np.flatnonzero(remaining[k][: n_open[k]] >= item)
            candidates.append(fits)
            calls.append((item, np.append(remaining[k][fits], instances[k].capacity)))
        replies = proc.map("priority", calls, timeout_s=max(0.05, deadline - time.monotonic()))
        if not isinstance(replies, list) or len(replies) != len(calls):
            raise CandidateError("the candidate process returned the wrong number of priority results")
        for k, fits, (item, bins), reply in zip(active, candidates, calls, replies, strict=True):
            choice = _choose(reply, len(bins))
            if choice == len(fits):  # the last entry is a fresh empty bin
                choice_bin = n_open[k]
                remaining[k][choice_bin] = instances[k].capacity
                n_open[k] += 1
            else:
                choice_bin = int(fits[choice])
            remaining[k][choice_bin] -= item
            assignments[k][t] = choice_bin
    return assignments


def check_packing(instance: Instance, assignment: np.ndarray) -> int:
    """Number of bins used; CandidateError if an item is unplaced or a bin holds more than capacity."""
    items = instance.items
    if assignment.shape != items.shape:
        raise CandidateError(f"the packing places {assignment.size} items, but the instance has {items.size}")
    unplaced = np.flatnonzero(assignment < 0)
    if unplaced.size:
        raise CandidateError(
            f"item {int(unplaced[0])} (size {items[unplaced[0]]:g}) was never placed; {unplaced.size} item(s) unplaced"
        )
    loads = np.bincount(assignment, weights=items)
    over = np.flatnonzero(loads > instance.capacity + 1e-9)
    if over.size:
        b = int(over[np.argmax(loads[over])])
        raise CandidateError(
            f"bin {b} holds {loads[b]:g} > capacity {instance.capacity:g}; {over.size} bin(s) over capacity"
        )
    # Empty bin indices would be phantom bins; count only bins that hold something.
    return int((loads > 0).sum())


def evaluate(
    candidate_path: str, split: str = "train", seed: int = 0, stage: str | None = None
) -> dict[str, object]:
    """Pack the split's instances online with the candidate's priority(); score = mean excess % over L1."""
    instances = make_instances(split, seed, stage)
    budget_s = _time_budget_s()
    deadline = time.monotonic() + budget_s
    with CandidateProcess(candidate_path, timeout_s=budget_s) as proc:
        assignments = pack_online(proc, instances, deadline)
    excess = {family: [] for family in FAMILIES}
    bins_used = lower_bound = 0
    for instance, assignment in zip(instances, assignments, strict=True):
        used = check_packing(instance, assignment)
        excess[instance.family].append(100.0 * (used - instance.lower_bound) / instance.lower_bound)
        bins_used += used
        lower_bound += instance.lower_bound
    score = float(np.mean([e for values in excess.values() for e in values]))
    per_family = {f"{family}_excess_pct": float(np.mean(values)) for family, values in excess.items()}
    feedback = (
        f"mean excess bins over the L1 lower bound: {score:.3f}% (lower is better); "
        f"OR-style (capacity 150, items 20..100): {per_family['or_excess_pct']:.3f}%, "
        f"Weibull-style (capacity 100): {per_family['weibull_excess_pct']:.3f}%. "
        f"{len(instances)} instances, {sum(i.items.size for i in instances)} items, "
        f"{bins_used} bins used vs lower bound {lower_bound}."
    )
    return {
        "score": score,
        **per_family,
        "bins_used": bins_used,
        "lower_bound": lower_bound,
        "instances": len(instances),
        "feedback": feedback,
    }
