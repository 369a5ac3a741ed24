"""The promotion gate: a challenger replaces the champion only if it wins on held-out data, significantly.

Both programs are re-evaluated on the held-out split with the same n seeds, giving n paired scores.
The test is a one-sided paired permutation (sign-flip) test of the mean gain over a margin: exact
over all 2^n sign patterns when n <= 16, Monte Carlo otherwise. Its smallest possible p-value is
2^-n, so p < 0.05 needs n >= 5; the default is 6 repeats (smallest p = 1/64).

A deterministic evaluator gives the same score on every repeat, so the sign-flip test would only
report 2^-n from n identical pairs, a number that tests nothing: such a comparison is made once,
exactly (`decide_exact`), and recorded without a p-value.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random

import numpy as np

from discovery.config import min_repeats

DEFAULT_REPEATS = 6
DEFAULT_ALPHA = 0.05
EXACT_MAX_N = 16  # 2^16 sign patterns is still instant with numpy
EXACT = "exact"
PERMUTATION = "paired permutation"


def gains(champion: list[float], challenger: list[float], maximize: bool) -> list[float]:
    """Per-pair improvement of the challenger, positive when it is better whatever the direction."""
    if len(champion) != len(challenger):
        raise ValueError(f"paired scores differ in length: {len(champion)} vs {len(challenger)}")
    return [(b - a) if maximize else (a - b) for a, b in zip(champion, challenger, strict=True)]


def paired_permutation_test(
    champion: list[float],
    challenger: list[float],
    maximize: bool,
    margin: float = 0.0,
    rounds: int = 10000,
    rng: random.Random | None = None,
) -> float:
    """One-sided p-value that the challenger beats the champion by more than margin on average.

    Under the null, each pair's excess gain (gain - margin) is symmetric around zero, so its sign is
    a coin flip; p is the share of sign patterns whose mean is at least the observed one.
    """
    excess = np.array(gains(champion, challenger, maximize), dtype=float) - margin
    n = len(excess)
    if n == 0 or not np.all(np.isfinite(excess)):
        return 1.0
    if np.allclose(excess, 0.0, rtol=0.0, atol=1e-12):
        return 1.0
    observed = excess.mean()
    # Tolerance so that patterns equal to the observed one in exact arithmetic count as "at least".
    tolerance = 1e-9 * max(1.0, float(np.abs(excess).max()))
    if n <= EXACT_MAX_N:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        means = signs @ excess / n
        return float(np.mean(means >= observed - tolerance))
    generator = np.random.default_rng((rng or random.Random(0)).randrange(2**63))
    signs = generator.choice((1.0, -1.0), size=(rounds, n))
    means = signs @ excess / n
    # Count the observed pattern itself, so a Monte Carlo p is never 0.
    return float((1 + np.sum(means >= observed - tolerance)) / (rounds + 1))


@dataclasses.dataclass(frozen=True)
class Decision:
    """The gate's verdict on one challenger."""

    promote: bool
    p_value: float | None  # None for an exact comparison
    mean_gain: float  # mean per-pair improvement, positive when the challenger is better
    n: int
    reason: str
    test: str | None = PERMUTATION  # which test decided; None when none ran (flagged, failed)


def decide_exact(
    champion: float | None, challenger: float | None, maximize: bool, margin: float = 0.0
) -> Decision:
    """One comparison of deterministic scores: promote when the challenger's gain exceeds margin."""
    if challenger is None or not math.isfinite(challenger):
        return Decision(False, None, math.nan, 1, "the challenger failed its held-out evaluation", None)
    if champion is None:
        return Decision(False, None, math.nan, 1, "the champion failed its held-out evaluation", None)
    gain = gains([champion], [challenger], maximize)[0]
    if gain > margin:
        return Decision(
            True, None, gain, 1, f"gain {gain:.6g} > margin {margin:g} (deterministic: exact)", EXACT
        )
    return Decision(
        False, None, gain, 1, f"gain {gain:.6g} not above margin {margin:g} (deterministic: exact)", EXACT
    )


def decide(
    champion_scores: list[float | None],
    challenger_scores: list[float | None],
    maximize: bool,
    alpha: float = DEFAULT_ALPHA,
    margin: float = 0.0,
    rng: random.Random | None = None,
) -> Decision:
    """Promote when the challenger's mean gain exceeds margin with one-sided p < alpha.

    A None score is a failed held-out run: a challenger that fails any repeat is not promoted, and
    pairs where only the champion failed are dropped (the champion cannot win them by failing).
    """
    n = len(challenger_scores)
    if len(champion_scores) != n:
        raise ValueError(f"paired scores differ in length: {len(champion_scores)} vs {n}")
    if any(s is None or not math.isfinite(s) for s in challenger_scores):
        return Decision(False, None, math.nan, n, "the challenger failed a held-out repeat", None)
    pairs = [(a, b) for a, b in zip(champion_scores, challenger_scores, strict=True) if a is not None]
    champion = [a for a, _ in pairs]
    challenger = [b for _, b in pairs]
    n = len(pairs)
    if n < min_repeats(alpha):
        mean = float(np.mean(gains(champion, challenger, maximize))) if pairs else math.nan
        return Decision(
            False,
            1.0,
            mean,
            n,
            f"{n} paired repeats cannot reach p < {alpha}; need at least {min_repeats(alpha)}",
            None,
        )
    p = paired_permutation_test(champion, challenger, maximize, margin, rng=rng)
    mean = float(np.mean(gains(champion, challenger, maximize)))
    if p < alpha and mean > margin:
        return Decision(
            True, p, mean, n, f"mean gain {mean:.6g} > margin {margin:g} with p = {p:.4g} < {alpha}"
        )
    return Decision(
        False, p, mean, n, f"mean gain {mean:.6g} over margin {margin:g} not significant (p = {p:.4g})"
    )
