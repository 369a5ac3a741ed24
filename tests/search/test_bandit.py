"""Bandit over proposal arms: reward per unit cost, UCB and Thompson, persistence."""

from __future__ import annotations

import json
import random

import pytest

from discovery.search.strategies.bandit import Bandit, arm_name, improvement_reward, split_arm


def play(bandit: Bandit, rates: dict[str, float], costs: dict[str, float], pulls: int, seed: int = 0) -> dict:
    """Simulate pulls where arm a improves with probability rates[a] and costs costs[a]."""
    rng = random.Random(seed)
    counts = dict.fromkeys(bandit.arms, 0)
    for _ in range(pulls):
        arm = bandit.choose(rng)
        counts[arm] += 1
        bandit.update(arm, 1.0 if rng.random() < rates[arm] else 0.0, costs[arm])
    return counts


def test_improvement_reward():
    assert improvement_reward(1.0, 5.0, best_fitness_before=4.0) == 1.0
    assert improvement_reward(1.0, 3.0, best_fitness_before=5.0) == pytest.approx(0.25)
    assert improvement_reward(1.0, 5.0, best_fitness_before=5.0) == 0.5
    assert improvement_reward(1.0, 1.0, best_fitness_before=5.0) == 0.0
    assert improvement_reward(1.0, 0.5, best_fitness_before=5.0) == 0.0
    assert improvement_reward(1.0, None, best_fitness_before=5.0) == 0.0
    assert improvement_reward(1.0, float("nan"), best_fitness_before=5.0) == 0.0
    assert improvement_reward(None, 2.0, best_fitness_before=5.0) == 0.0


def test_arm_names_round_trip():
    assert split_arm(arm_name("diff", "openai/gpt-4o|mini")) == ("diff", "openai/gpt-4o|mini")


@pytest.mark.parametrize("method", ["ucb", "thompson"])
def test_plays_every_arm_first(method):
    bandit = Bandit.create(["a", "b", "c"], method)
    counts = play(bandit, dict.fromkeys("abc", 0.0), dict.fromkeys("abc", 1.0), 3)
    assert counts == {"a": 1, "b": 1, "c": 1}


@pytest.mark.parametrize("method", ["ucb", "thompson"])
def test_prefers_the_arm_that_improves_more(method):
    bandit = Bandit.create(["good", "bad"], method)
    counts = play(bandit, {"good": 0.6, "bad": 0.1}, {"good": 1.0, "bad": 1.0}, 400)
    assert counts["good"] > 3 * counts["bad"]
    assert counts["bad"] > 0  # it still explores


@pytest.mark.parametrize("method", ["ucb", "thompson"])
def test_prefers_improvement_per_unit_cost(method):
    # Same improvement rate, but "pricey" costs ten times as much per call.
    bandit = Bandit.create(["cheap", "pricey"], method)
    counts = play(bandit, {"cheap": 0.4, "pricey": 0.5}, {"cheap": 0.001, "pricey": 0.01}, 400)
    assert counts["cheap"] > 3 * counts["pricey"]


def test_free_arms_do_not_divide_by_zero():
    bandit = Bandit.create(["free", "paid"], "ucb")
    counts = play(bandit, {"free": 0.3, "paid": 0.3}, {"free": 0.0, "paid": 0.5}, 200)
    assert counts["free"] > counts["paid"]
    all_free = Bandit.create(["a", "b"], "thompson")
    play(all_free, {"a": 0.3, "b": 0.3}, {"a": 0.0, "b": 0.0}, 50)


def test_persistence_round_trip():
    bandit = Bandit.create(["x", "y"], "thompson", exploration=1.0)
    play(bandit, {"x": 0.5, "y": 0.2}, {"x": 1.0, "y": 2.0}, 30)
    restored = Bandit.from_dict(json.loads(json.dumps(bandit.to_dict())))
    assert restored == bandit
    assert restored.choose(random.Random(5)) == bandit.choose(random.Random(5))


def test_restore_with_a_changed_arm_set():
    bandit = Bandit.create(["x", "y"])
    bandit.update("x", 1.0, 1.0)
    restored = Bandit.from_dict(bandit.to_dict(), arms=["x", "z"])
    assert list(restored.arms) == ["x", "z"]
    assert restored.arms["x"].pulls == 1 and restored.arms["z"].pulls == 0


def test_stats_rows():
    bandit = Bandit.create(["x", "y"])
    bandit.update("x", 1.0, 0.5)
    bandit.update("x", 0.0, 0.25)
    assert bandit.stats() == [
        {"arm": "x", "pulls": 2, "mean_reward": 0.5, "total_cost": 0.75},
        {"arm": "y", "pulls": 0, "mean_reward": 0.0, "total_cost": 0.0},
    ]


def test_bad_input():
    with pytest.raises(ValueError):
        Bandit.create([])
    with pytest.raises(ValueError):
        Bandit.create(["a", "a"])
    with pytest.raises(ValueError):
        Bandit.create(["a"], "greedy")  # type: ignore[arg-type]
    bandit = Bandit.create(["a"])
    with pytest.raises(KeyError):
        bandit.update("b", 1.0, 1.0)
    with pytest.raises(ValueError):
        bandit.update("a", 1.0, -1.0)
