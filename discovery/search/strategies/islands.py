"""Islands: separate sub-populations that evolve apart, exchange their best, and restart when stuck.

The state is an immutable value (every function returns a new one) holding, per island, the ids of
its members, its best fitness, and how many of its children were evaluated since that best last
rose. A candidate may sit on several islands: the seed starts on all of
them, and a migrant is copied to the next island of the ring (OpenEvolve, CodeEvolve), keeping its
place on its own. Resets follow FunSearch: a stagnant island in the weaker half is emptied and
re-founded with the best program of a surviving island. Fitness is higher-is-better.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable
from typing import Any

from discovery.domain import Candidate, Status


@dataclasses.dataclass(frozen=True)
class IslandState:
    """Which candidates live on which island, and how each island has been doing."""

    members: tuple[tuple[int, ...], ...]
    best: tuple[float | None, ...]
    since_improvement: tuple[int, ...]  # evaluated children of the island since its best last rose
    history: tuple[tuple[tuple[int, float], ...], ...]  # (generation, new best) per island
    generation: int = 0  # evaluated children over all islands: the clock for migration
    last_migration: int = 0

    @property
    def n(self) -> int:
        return len(self.members)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, e.g. for the archive's meta table."""
        return {
            "members": [list(m) for m in self.members],
            "best": list(self.best),
            "since_improvement": list(self.since_improvement),
            "history": [[list(h) for h in hs] for hs in self.history],
            "generation": self.generation,
            "last_migration": self.last_migration,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IslandState:
        return cls(
            members=tuple(tuple(m) for m in data["members"]),
            best=tuple(data["best"]),
            since_improvement=tuple(data["since_improvement"]),
            history=tuple(tuple((int(g), float(b)) for g, b in hs) for hs in data["history"]),
            generation=data["generation"],
            last_migration=data["last_migration"],
        )


def _set(values: tuple, index: int, value: Any) -> tuple:
    return values[:index] + (value,) + values[index + 1 :]


def _check(state: IslandState, island: int) -> None:
    if not 0 <= island < state.n:
        raise ValueError(f"island {island} does not exist; there are {state.n}")


def create(n: int, seed_id: int, seed_fitness: float) -> IslandState:
    """n islands, each holding the evaluated seed."""
    if n < 1:
        raise ValueError("need at least one island")
    return IslandState(
        members=((seed_id,),) * n,
        best=(seed_fitness,) * n,
        since_improvement=(0,) * n,
        history=(((0, seed_fitness),),) * n,
    )


def sample_island(state: IslandState, rng: random.Random) -> int:
    """The island the next parent comes from, uniformly (as FunSearch)."""
    return rng.randrange(state.n)


def islands_of(state: IslandState, candidate_id: int) -> list[int]:
    """The islands a candidate lives on (none once every island holding it was reset)."""
    return [i for i, m in enumerate(state.members) if candidate_id in m]


def members(state: IslandState, island: int, candidates: Iterable[Candidate]) -> list[Candidate]:
    """The successfully evaluated candidates living on an island: its possible parents."""
    _check(state, island)
    ids = set(state.members[island])
    return [c for c in candidates if c.id in ids and c.status == Status.OK and c.fitness is not None]


def record(state: IslandState, candidate_id: int, island: int, fitness: float | None) -> IslandState:
    """Account for one evaluated child of island; failures (fitness None) only count towards stagnation."""
    _check(state, island)
    state = dataclasses.replace(state, generation=state.generation + 1)
    if fitness is not None:
        state = dataclasses.replace(
            state, members=_set(state.members, island, state.members[island] + (candidate_id,))
        )
    return _account(state, island, fitness)


def _account(state: IslandState, island: int, fitness: float | None) -> IslandState:
    """Raise an island's best when fitness beats it (restarting its stagnation count), else count one more miss."""
    best = state.best[island]
    if fitness is None or (best is not None and fitness <= best):
        return dataclasses.replace(
            state,
            since_improvement=_set(state.since_improvement, island, state.since_improvement[island] + 1),
        )
    return dataclasses.replace(
        state,
        best=_set(state.best, island, fitness),
        since_improvement=_set(state.since_improvement, island, 0),
        history=_set(state.history, island, state.history[island] + ((state.generation, fitness),)),
    )


def _best_member(state: IslandState, island: int, by_id: dict[int, Candidate]) -> Candidate | None:
    pool = [by_id[i] for i in state.members[island] if i in by_id]
    pool = [c for c in pool if c.status == Status.OK and c.fitness is not None]
    return max(pool, key=lambda c: (c.fitness, -c.id), default=None)


def migrate(state: IslandState, candidates: Iterable[Candidate], every_n: int) -> list[tuple[int, int]]:
    """(candidate id, destination) moves when a migration is due: each island's best to the next on the ring.

    Due once every_n children were evaluated since the last migration; apply with apply_migration.
    """
    if state.n < 2 or every_n < 1 or state.generation - state.last_migration < every_n:
        return []
    by_id = {c.id: c for c in candidates}
    moves = []
    for island in range(state.n):
        best = _best_member(state, island, by_id)
        destination = (island + 1) % state.n
        if best is not None and best.id not in state.members[destination]:
            moves.append((best.id, destination))
    return moves


def apply_migration(
    state: IslandState, moves: list[tuple[int, int]], candidates: Iterable[Candidate]
) -> IslandState:
    """Copy migrants to their destinations and restart the migration clock."""
    fitness = {c.id: c.fitness for c in candidates}
    for candidate_id, island in moves:
        _check(state, island)
        if candidate_id in state.members[island]:
            continue
        value = fitness.get(candidate_id)
        state = dataclasses.replace(
            state, members=_set(state.members, island, state.members[island] + (candidate_id,))
        )
        # A migrant that raises the island's best counts as its improvement; one that does not is no miss.
        if value is not None and (state.best[island] is None or value > state.best[island]):
            state = _account(state, island, value)
    return dataclasses.replace(state, last_migration=state.generation)


def stagnant_islands(state: IslandState, patience: int) -> list[int]:
    """Islands whose last `patience` evaluated children did not raise their best."""
    return [i for i, n in enumerate(state.since_improvement) if n >= patience]


def weaker_half(state: IslandState) -> list[int]:
    """The floor(n/2) islands with the lowest best fitness (empty islands lowest; ties: higher index weaker)."""
    order = sorted(range(state.n), key=lambda i: (state.best[i] is not None, state.best[i] or 0.0, -i))
    return sorted(order[: state.n // 2])


def islands_to_reset(state: IslandState, patience: int) -> list[int]:
    """Stagnant islands among the weaker half: what a FunSearch-style reset should restart now."""
    weak = set(weaker_half(state))
    return [i for i in stagnant_islands(state, patience) if i in weak]


def reset(
    state: IslandState,
    islands: list[int],
    candidates: Iterable[Candidate],
    rng: random.Random | None = None,
) -> tuple[IslandState, list[tuple[int, int]]]:
    """Empty the given islands and found each anew with the best of a surviving island.

    The founder's island is chosen at random with rng (FunSearch), or in turn from the best
    survivor down without it. Returns the new state and the (founder id, island) pairs.
    """
    for island in islands:
        _check(state, island)
    by_id = {c.id: c for c in candidates}
    survivors = [i for i in range(state.n) if i not in set(islands)]
    founders_pool = [c for c in (_best_member(state, i, by_id) for i in survivors) if c is not None]
    if not founders_pool:
        raise ValueError("a reset needs at least one surviving island with an evaluated member")
    founders_pool.sort(key=lambda c: (-c.fitness, c.id))
    founded = []
    for turn, island in enumerate(sorted(set(islands))):
        founder = rng.choice(founders_pool) if rng is not None else founders_pool[turn % len(founders_pool)]
        state = dataclasses.replace(
            state,
            members=_set(state.members, island, (founder.id,)),
            best=_set(state.best, island, founder.fitness),
            since_improvement=_set(state.since_improvement, island, 0),
            history=_set(
                state.history, island, state.history[island] + ((state.generation, founder.fitness),)
            ),
        )
        founded.append((founder.id, island))
    return state, founded
