"""Parent selection: the DGM weights and the best-of-N baseline."""

from __future__ import annotations

import random

from discovery.domain import Candidate
from discovery.search.strategies.selection import dgm_weights, rank_scale, select_parent
from tests.factories import make_candidate


def cand(i: int, fitness: float) -> Candidate:
    return make_candidate(i, fitness, code="")


def test_better_candidates_weigh_more():
    w = dgm_weights([0.0, 0.5, 1.0], [0, 0, 0])
    assert w[0] < w[1] < w[2]


def test_children_reduce_weight():
    w = dgm_weights([1.0, 1.0], [0, 3])
    assert w[0] == 4 * w[1]


def test_equal_scores_do_not_divide_by_zero():
    assert len(set(dgm_weights([2.0, 2.0, 2.0], [0, 0, 0]))) == 1


def test_best_of_n_always_picks_the_seed():
    seed = cand(1, 0.0)
    parents = [seed, cand(2, 5.0), cand(3, 9.0)]
    rng = random.Random(0)
    assert {select_parent("best-of-n", parents, {}, seed, rng).id for _ in range(50)} == {1}


def test_dgm_explores_but_prefers_the_best():
    seed = cand(1, 0.0)
    parents = [seed, cand(2, 5.0), cand(3, 9.0)]
    rng = random.Random(0)
    picks = [select_parent("dgm", parents, {}, seed, rng).id for _ in range(2000)]
    assert picks.count(3) > picks.count(2) > picks.count(1) > 0


def test_one_outlier_does_not_flatten_the_selection():
    # An invalid program scored 0 among scores near 0.5: under a min-max rescale the others all sat
    # near 1 and weighed almost alike; ranks keep the best well ahead of the middle.
    w = dgm_weights([0.0, 0.50, 0.51, 0.52, 0.53, 0.54], [0] * 6)
    assert w[5] > 5 * w[2]
    assert rank_scale([3.0, 1.0, 3.0, 2.0]) == [5 / 6, 0.0, 5 / 6, 1 / 3]
