"""Islands: membership, ring migration, stagnation and FunSearch-style resets."""

from __future__ import annotations

import json
import random

import pytest

from discovery.domain import Candidate
from discovery.search.strategies import islands as isl
from tests.factories import make_candidate


def cand(i: int, fitness: float | None, status: str = "ok") -> Candidate:
    return make_candidate(i, fitness, status=status)


def test_seed_starts_on_every_island():
    state = isl.create(3, seed_id=1, seed_fitness=0.0)
    assert state.n == 3
    assert isl.islands_of(state, 1) == [0, 1, 2]
    assert [len(isl.members(state, i, [cand(1, 0.0)])) for i in range(3)] == [1, 1, 1]


def test_children_join_their_parents_island():
    state = isl.create(2, 1, 0.0)
    state = isl.record(state, 2, 1, 5.0)
    state = isl.record(state, 3, 0, None)  # a failed child
    pool = [cand(1, 0.0), cand(2, 5.0), cand(3, None, "failed")]
    assert [c.id for c in isl.members(state, 1, pool)] == [1, 2]
    assert [c.id for c in isl.members(state, 0, pool)] == [1]
    assert state.best == (0.0, 5.0)
    assert state.since_improvement == (1, 0)
    assert state.generation == 2
    with pytest.raises(ValueError):
        isl.record(state, 4, 2, 1.0)  # no island 2


def test_functions_do_not_mutate_the_state():
    state = isl.create(2, 1, 0.0)
    before = state.to_dict()
    isl.record(state, 2, 0, 1.0)
    assert state.to_dict() == before


def test_sample_island_is_uniform():
    state = isl.create(4, 1, 0.0)
    rng = random.Random(0)
    picks = [isl.sample_island(state, rng) for _ in range(4000)]
    assert all(900 < picks.count(i) < 1100 for i in range(4))


def test_ring_migration_copies_each_best_to_the_next_island():
    state = isl.create(3, 1, 0.0)
    state = isl.record(state, 2, 0, 5.0)
    state = isl.record(state, 3, 1, 7.0)
    state = isl.record(state, 4, 2, -1.0)
    pool = [cand(1, 0.0), cand(2, 5.0), cand(3, 7.0), cand(4, -1.0)]
    assert isl.migrate(state, pool, every_n=10) == []  # not due yet
    moves = isl.migrate(state, pool, every_n=3)
    # Island 2's best is the seed, which already lives on island 0.
    assert moves == [(2, 1), (3, 2)]
    state = isl.apply_migration(state, moves, pool)
    assert isl.islands_of(state, 3) == [1, 2]
    assert isl.islands_of(state, 2) == [0, 1]
    assert state.best == (5.0, 7.0, 7.0)
    assert state.last_migration == 3
    assert isl.migrate(state, pool, every_n=3) == []  # the clock restarted


def test_single_island_never_migrates():
    state = isl.record(isl.create(1, 1, 0.0), 2, 0, 1.0)
    assert isl.migrate(state, [cand(1, 0.0), cand(2, 1.0)], every_n=1) == []


def test_stagnation_and_weaker_half():
    state = isl.create(4, 1, 0.0)
    state = isl.record(state, 2, 0, 9.0)
    state = isl.record(state, 3, 1, 4.0)
    for k in range(3):
        for island in range(4):
            state = isl.record(state, 100 + 10 * k + island, island, None)
    assert isl.stagnant_islands(state, patience=3) == [0, 1, 2, 3]
    assert isl.weaker_half(state) == [2, 3]
    assert isl.islands_to_reset(state, patience=3) == [2, 3]
    assert isl.islands_to_reset(state, patience=4) == []


def test_reset_refounds_weak_islands_from_survivors():
    state = isl.create(4, 1, 0.0)
    state = isl.record(state, 2, 0, 9.0)
    state = isl.record(state, 3, 1, 4.0)
    state = isl.record(state, 4, 3, 1.0)
    pool = [cand(1, 0.0), cand(2, 9.0), cand(3, 4.0), cand(4, 1.0)]
    new, founded = isl.reset(state, [2, 3], pool)
    assert founded == [(2, 2), (3, 3)]  # best survivor first, then the next
    assert new.members[2] == (2,) and new.members[3] == (3,)
    assert new.best == (9.0, 4.0, 9.0, 4.0)
    assert new.since_improvement[2:] == (0, 0)
    assert isl.islands_of(new, 4) == []  # the old population is gone
    randomised, _ = isl.reset(state, [2, 3], pool, rng=random.Random(0))
    assert all(m[0] in (2, 3) for m in randomised.members[2:])
    with pytest.raises(ValueError):
        isl.reset(state, [0, 1, 2, 3], pool)


def test_json_round_trip():
    state = isl.create(3, 1, 0.5)
    state = isl.record(state, 2, 1, 2.5)
    state, _ = isl.reset(state, [0], [cand(1, 0.5), cand(2, 2.5)])
    restored = isl.IslandState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored == state
