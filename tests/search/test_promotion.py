"""Promotion gate: the paired permutation test and the promote/keep decision."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from discovery.search.strategies.promotion import (
    DEFAULT_REPEATS,
    EXACT_MAX_N,
    decide,
    gains,
    min_repeats,
    paired_permutation_test,
)


def test_smallest_exact_p_is_two_to_the_minus_n():
    champion = [1.0] * 6
    challenger = [2.0, 2.5, 1.5, 3.0, 2.0, 1.2]
    assert paired_permutation_test(champion, challenger, maximize=True) == pytest.approx(1 / 64)
    assert paired_permutation_test(challenger, champion, maximize=True) == 1.0


def test_direction():
    low, high = [1.0] * 6, [2.0] * 6
    assert paired_permutation_test(high, low, maximize=False) == pytest.approx(1 / 64)
    assert gains(high, low, maximize=False) == [1.0] * 6


def test_exact_value_for_a_mixed_sample():
    # Gains 3, 2, -1, 1: sign patterns with sum >= 5 are (+,+,+,+) 7, (+,+,-,+) 5, (+,+,+,-) 5 -> 3/16.
    p = paired_permutation_test([0, 0, 0, 0], [3, 2, -1, 1], maximize=True)
    assert p == pytest.approx(3 / 16)


def test_margin_raises_the_bar():
    champion = [1.0] * 8
    challenger = [1.5] * 8
    assert paired_permutation_test(champion, challenger, True, margin=0.0) < 0.01
    assert paired_permutation_test(champion, challenger, True, margin=0.5) == 1.0
    assert paired_permutation_test(champion, challenger, True, margin=1.0) == 1.0


def test_degenerate_cases():
    assert paired_permutation_test([1.0, 2.0], [1.0, 2.0], True) == 1.0
    assert paired_permutation_test([], [], True) == 1.0
    assert paired_permutation_test([1.0], [float("nan")], True) == 1.0
    with pytest.raises(ValueError):
        paired_permutation_test([1.0], [1.0, 2.0], True)


def test_monte_carlo_agrees_with_exact():
    rng = random.Random(1)
    n = EXACT_MAX_N + 1  # just past the exact limit, so the Monte Carlo path runs
    champion = [rng.gauss(0, 1) for _ in range(n)]
    challenger = [
        c + g for c, g in zip(champion, [0.9, -0.8, 0.7, 0.2, -0.5, 0.4, 0.3, -0.6, 0.1] * 2, strict=False)
    ]
    p = paired_permutation_test(champion, challenger, True, rounds=20000, rng=random.Random(2))
    d = np.array(gains(champion, challenger, True))
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    exact = float(np.mean(signs @ d >= d.sum() - 1e-9))
    assert 0.01 < exact < 0.5  # a p-value where the approximation error is visible
    assert p == pytest.approx(exact, abs=0.01)


def test_min_repeats():
    assert min_repeats(0.05) == 5
    assert min_repeats(0.01) == 7
    assert min_repeats(0.5) == 2
    assert DEFAULT_REPEATS >= min_repeats(0.05)


def test_too_few_repeats_never_promote():
    decision = decide([1.0] * 4, [9.0] * 4, maximize=True)
    assert not decision.promote and "need at least 5" in decision.reason


def test_identical_distributions_rarely_promote():
    rng = random.Random(0)
    promoted = 0
    for _ in range(200):
        # Shared per-seed difficulty plus independent noise, as paired held-out runs would show.
        base = [rng.gauss(0, 3) for _ in range(DEFAULT_REPEATS)]
        champion = [b + rng.gauss(0, 1) for b in base]
        challenger = [b + rng.gauss(0, 1) for b in base]
        promoted += decide(champion, challenger, maximize=True).promote
    assert promoted / 200 <= 0.1


def test_clear_improvement_promotes():
    rng = random.Random(0)
    base = [rng.gauss(0, 3) for _ in range(DEFAULT_REPEATS)]
    champion = [b + rng.gauss(0, 0.1) for b in base]
    challenger = [b + 1.0 + rng.gauss(0, 0.1) for b in base]
    decision = decide(champion, challenger, maximize=True)
    assert decision.promote
    assert decision.p_value == pytest.approx(1 / 64)
    assert decision.mean_gain == pytest.approx(1.0, abs=0.2)
    assert decision.n == DEFAULT_REPEATS
    assert not decide(champion, challenger, maximize=True, margin=2.0).promote


def test_failed_repeats():
    assert not decide([1.0] * 6, [2.0, 2.0, None, 2.0, 2.0, 2.0], True).promote
    # A champion failure drops that pair; five pairs left are still enough.
    decision = decide([1.0, None, 1.0, 1.0, 1.0, 1.0], [2.0] * 6, True)
    assert decision.promote and decision.n == 5
    with pytest.raises(ValueError):
        decide([1.0] * 6, [2.0] * 5, True)


def test_exact_comparison_of_deterministic_scores():
    from discovery.search.gate import looks_deterministic
    from discovery.search.strategies.promotion import decide_exact

    assert looks_deterministic(False, [1.0, 1.0], [2.0, 2.0])
    assert not looks_deterministic(False, [1.0], [2.0])  # one pair shows nothing
    assert not looks_deterministic(False, [1.0, 1.1], [2.0, 2.0])
    assert not looks_deterministic(True, [None], [2.0])
    assert looks_deterministic(True, [1.0], [2.0])
    won = decide_exact(1.0, 2.0, maximize=True, margin=0.5)
    assert won.promote and won.p_value is None and won.test == "exact"
    assert not decide_exact(1.0, 1.2, maximize=True, margin=0.5).promote
    assert decide_exact(3.0, 1.0, maximize=False).promote
    assert not decide_exact(1.0, None, maximize=True).promote
