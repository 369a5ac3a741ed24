"""A bandit over proposal arms (operator x model) that favours improvement per unit cost.

Each arm's value is its mean reward divided by its relative cost (its mean cost per pull over the
mean cost of all pulls), so with equal costs it is plain mean reward and the usual UCB1 constant
applies. "ucb" adds UCB1's exploration bonus; "thompson" samples the mean reward from a Gaussian
posterior. Both play every arm once before comparing. The state is a plain dict for the archive.
"""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any, Literal

Method = Literal["ucb", "thompson"]
METHODS: tuple[str, ...] = ("ucb", "thompson")
# An arm that costs nothing next to paid ones counts as this fraction of the mean cost, so free
# arms are strongly preferred without dividing by zero.
MIN_RELATIVE_COST = 0.05
# Prior for Thompson sampling before an arm has two pulls: rewards lie in [0, 1], so a standard
# deviation of 0.5 is the widest plausible spread.
PRIOR_STD = 0.5


@dataclasses.dataclass
class ArmStats:
    """Running sums for one arm."""

    pulls: int = 0
    reward: float = 0.0
    reward_sq: float = 0.0
    cost: float = 0.0

    @property
    def mean_reward(self) -> float:
        return self.reward / self.pulls if self.pulls else 0.0


def arm_name(operator: str, model: str) -> str:
    """The arm for one operator used with one model."""
    return f"{operator}|{model}"


def split_arm(arm: str) -> tuple[str, str]:
    """(operator, model) of an arm made by arm_name."""
    operator, _, model = arm.partition("|")
    return operator, model


def improvement_reward(
    parent_fitness: float | None, child_fitness: float | None, best_fitness_before: float
) -> float:
    """1 for a new best; up to 0.5 for beating the parent, by how much of the gap to the best it closed; else 0.

    Fitness is higher-is-better (Task.fitness). A child that failed or was rejected has fitness None.
    """
    if child_fitness is None or not math.isfinite(child_fitness):
        return 0.0
    if child_fitness > best_fitness_before:
        return 1.0
    if parent_fitness is None or child_fitness <= parent_fitness:
        return 0.0
    # parent < child <= best, so the gap is positive.
    return 0.5 * (child_fitness - parent_fitness) / (best_fitness_before - parent_fitness)


@dataclasses.dataclass
class Bandit:
    """Chooses among named arms; `update` feeds back each pull's reward and cost."""

    arms: dict[str, ArmStats]
    method: Method = "ucb"
    exploration: float = math.sqrt(2.0)  # UCB1's constant c in c * sqrt(ln N / n)

    @classmethod
    def create(cls, arms: list[str], method: Method = "ucb", exploration: float = math.sqrt(2.0)) -> Bandit:
        """A fresh bandit over distinct arm names."""
        if not arms:
            raise ValueError("a bandit needs at least one arm")
        if len(set(arms)) != len(arms):
            raise ValueError(f"arm names must be distinct: {arms}")
        if method not in METHODS:
            raise ValueError(f"unknown bandit method {method!r}; use one of {', '.join(METHODS)}")
        return cls({a: ArmStats() for a in arms}, method, exploration)

    def _relative_cost(self, stats: ArmStats) -> float:
        pulls = sum(s.pulls for s in self.arms.values())
        total_cost = sum(s.cost for s in self.arms.values())
        if stats.pulls == 0 or total_cost <= 0:
            return 1.0
        return max((stats.cost / stats.pulls) / (total_cost / pulls), MIN_RELATIVE_COST)

    def _ucb(self, stats: ArmStats, total_pulls: int) -> float:
        bonus = self.exploration * math.sqrt(math.log(total_pulls) / stats.pulls)
        return stats.mean_reward / self._relative_cost(stats) + bonus

    def _thompson(self, stats: ArmStats, rng: random.Random) -> float:
        if stats.pulls >= 2:
            variance = max(stats.reward_sq / stats.pulls - stats.mean_reward**2, 0.0)
            # Shrink the sample variance towards the prior so two equal rewards do not mean certainty.
            variance = (variance * stats.pulls + PRIOR_STD**2) / (stats.pulls + 1)
        else:
            variance = PRIOR_STD**2
        sampled = rng.gauss(stats.mean_reward, math.sqrt(variance / stats.pulls))
        return sampled / self._relative_cost(stats)

    def choose(self, rng: random.Random) -> str:
        """The arm to pull next: an unplayed arm first, then the best by UCB or a Thompson draw."""
        unplayed = [a for a, s in self.arms.items() if s.pulls == 0]
        if unplayed:
            return rng.choice(unplayed)
        total = sum(s.pulls for s in self.arms.values())
        if self.method == "ucb":
            values = {a: self._ucb(s, total) for a, s in self.arms.items()}
        else:
            values = {a: self._thompson(s, rng) for a, s in self.arms.items()}
        top = max(values.values())
        return rng.choice([a for a, v in values.items() if v == top])

    def update(self, arm: str, reward: float, cost: float) -> None:
        """Record one pull: reward in [0, 1] (see improvement_reward), cost >= 0 in any fixed unit."""
        if arm not in self.arms:
            raise KeyError(f"unknown arm {arm!r}; arms are {', '.join(self.arms)}")
        if not math.isfinite(reward) or not math.isfinite(cost) or cost < 0:
            raise ValueError(f"bad pull for {arm}: reward={reward}, cost={cost}")
        stats = self.arms[arm]
        stats.pulls += 1
        stats.reward += reward
        stats.reward_sq += reward * reward
        stats.cost += cost

    def stats(self) -> list[dict[str, Any]]:
        """One row per arm for display: arm, pulls, mean reward, total cost."""
        return [
            {"arm": a, "pulls": s.pulls, "mean_reward": s.mean_reward, "total_cost": s.cost}
            for a, s in self.arms.items()
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state, e.g. for the archive's meta table."""
        return {
            "method": self.method,
            "exploration": self.exploration,
            "arms": {a: dataclasses.asdict(s) for a, s in self.arms.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], arms: list[str] | None = None) -> Bandit:
        """Restore a bandit; arms listed but not in data start fresh, arms not listed are dropped."""
        stored = {a: ArmStats(**s) for a, s in data["arms"].items()}
        names = list(stored) if arms is None else arms
        bandit = cls.create(names, data.get("method", "ucb"), data.get("exploration", math.sqrt(2.0)))
        for name in names:
            if name in stored:
                bandit.arms[name] = stored[name]
        return bandit
