"""MAP-Elites grid over program length and evaluator metrics."""

from __future__ import annotations

import random

import pytest

from discovery.domain import Candidate
from discovery.errors import UserError
from discovery.search.strategies.map_elites import (
    FeatureSpec,
    cell,
    elites,
    parse_specs,
    program_length,
    resolve,
    sample_parent,
)
from tests.factories import make_candidate


def cand(i: int, fitness: float | None, code: str = "x = 1", status: str = "ok", **metrics) -> Candidate:
    return make_candidate(i, fitness, code=code, status=status, metrics=metrics)


def test_program_length_counts_the_block_without_layout_or_comments():
    code = "import os\n# EVOLVE-BLOCK-START\n# a comment\ndef f():\n    return 1\n\n# EVOLVE-BLOCK-END\nprint(f())\n"
    assert program_length(code) == len("deff():") + len("return1")
    assert program_length("a = 1") == 3


def test_metric_bins_and_clipping():
    spec = FeatureSpec("t", "metric", "runtime", bins=4, lo=0.0, hi=8.0)
    assert cell(cand(1, 1.0, runtime=0.0), [spec]) == (0,)
    assert cell(cand(1, 1.0, runtime=2.0), [spec]) == (1,)
    assert cell(cand(1, 1.0, runtime=7.99), [spec]) == (3,)
    assert cell(cand(1, 1.0, runtime=8.0), [spec]) == (3,)
    assert cell(cand(1, 1.0, runtime=-5.0), [spec]) == (0,)
    assert cell(cand(1, 1.0, runtime=50.0), [spec]) == (3,)
    assert cell(cand(1, 1.0), [spec]) is None
    assert cell(cand(1, 1.0, runtime="fast"), [spec]) is None
    assert cell(cand(1, 1.0, runtime=True), [spec]) is None


def test_cell_needs_a_range():
    with pytest.raises(ValueError):
        cell(cand(1, 1.0), [FeatureSpec("length", "length")])


def test_ranges_come_from_the_data_when_not_given():
    pool = [cand(1, 1.0, "a = 1"), cand(2, 2.0, "abcdefghij = 1"), cand(3, None, "x" * 500, status="failed")]
    (spec,) = resolve([FeatureSpec("length", "length", bins=2)], pool)
    assert (spec.lo, spec.hi) == (3.0, 12.0)  # the failed candidate does not stretch the range


def test_elites_keep_the_fittest_per_cell():
    spec = FeatureSpec("acc", "metric", "acc", bins=2, lo=0.0, hi=1.0)
    pool = [
        cand(1, 1.0, acc=0.1),
        cand(2, 3.0, acc=0.2),
        cand(3, 3.0, acc=0.3),  # ties with 2: the earlier one stays
        cand(4, 2.0, acc=0.9),
        cand(5, 9.0, acc=0.9, status="failed"),
        cand(6, 9.0),  # no metric: not on the grid
    ]
    grid = elites(pool, [spec])
    assert {k: c.id for k, c in grid.items()} == {(0,): 2, (1,): 4}


def test_two_dimensional_grid():
    specs = [FeatureSpec("length", "length", bins=2, lo=0, hi=20), FeatureSpec("m", "metric", "m", 2, 0, 1)]
    grid = elites([cand(1, 1.0, "a = 1", m=0.9), cand(2, 1.0, "b" * 30, m=0.1)], specs)
    assert set(grid) == {(0, 1), (1, 0)}


def test_sample_parent_is_uniform_over_cells():
    spec = FeatureSpec("m", "metric", "m", bins=2, lo=0.0, hi=1.0)
    # Cell 0 holds many candidates, cell 1 one: each cell should still be drawn half the time.
    pool = [cand(i, float(i), m=0.1) for i in range(1, 20)] + [cand(50, 0.0, m=0.9)]
    grid = elites(pool, [spec])
    rng = random.Random(0)
    picks = [sample_parent(grid, rng).id for _ in range(2000)]
    assert 900 < picks.count(50) < 1100
    assert sample_parent({}, rng) is None


def test_parse_specs():
    assert parse_specs("length:8,metric:runtime_s:4:0:10") == [
        FeatureSpec("length", "length", None, 8, None, None),
        FeatureSpec("runtime_s", "metric", "runtime_s", 4, 0.0, 10.0),
    ]
    assert parse_specs("length") == [FeatureSpec("length", "length")]
    assert parse_specs("metric:acc") == [FeatureSpec("acc", "metric", "acc")]
    for bad in ("", "width:3", "metric", "length:x", "length:4:1", "metric:m:4:5:1", "length:0"):
        with pytest.raises(UserError):
            parse_specs(bad)
