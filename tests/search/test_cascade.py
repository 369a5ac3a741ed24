"""Cascade gate: quantile thresholds over first-stage fitness."""

from __future__ import annotations

import math

import pytest

from discovery.search.strategies.cascade import passes, threshold


def test_no_bar_until_enough_samples():
    assert threshold([1.0, 2.0], 0.5, min_samples=5) is None
    assert passes(-100.0, threshold([1.0, 2.0], 0.5))


def test_quantiles_interpolate():
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert threshold(values, 0.0) == 1.0
    assert threshold(values, 1.0) == 5.0
    assert threshold(values, 0.5) == 3.0
    assert threshold(values, 0.25) == 2.0
    assert threshold(values, 0.1) == pytest.approx(1.4)


def test_failed_and_non_finite_values_are_ignored():
    assert threshold([1.0, math.nan, math.inf, 2.0, 3.0, 4.0], 0.5, min_samples=5) is None
    assert threshold([1.0, math.nan, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0


def test_passes():
    assert passes(3.0, 3.0)
    assert not passes(2.9, 3.0)
    assert not passes(None, None)
    assert not passes(math.nan, 1.0)


def test_bad_quantile():
    with pytest.raises(ValueError):
        threshold([1.0] * 10, 1.5)
