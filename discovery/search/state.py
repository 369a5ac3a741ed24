"""What parents are drawn from: islands, the MAP-Elites grid, and the operator/model bandit, restored from the archive."""

from __future__ import annotations

import dataclasses
import random

from discovery.archive import Archive
from discovery.config import RunConfig
from discovery.domain import Candidate, Status
from discovery.llm import ModelSpec
from discovery.search.strategies import islands as isl
from discovery.search.strategies import map_elites
from discovery.search.strategies.bandit import Bandit, arm_name, improvement_reward, split_arm
from discovery.search.strategies.novelty import NoveltyIndex
from discovery.search.strategies.selection import select_parent


@dataclasses.dataclass
class Choice:
    """A parent, where it lives, and the programs from other niches shown beside it."""

    parent: Candidate
    island: int | None
    inspirations: list[Candidate]
    recent_failures: list[Candidate]


@dataclasses.dataclass
class Population:
    """Search state beyond the archive's rows: islands and bandit (persisted in meta), novelty index (rebuilt)."""

    config: RunConfig
    islands: isl.IslandState | None = None
    bandit: Bandit | None = None
    novelty: NoveltyIndex | None = None
    features: list[map_elites.FeatureSpec] | None = None

    @classmethod
    def restore(cls, archive: Archive, config: RunConfig, models: list[ModelSpec]) -> Population:
        """Rebuild from the archive: islands and bandit from meta, the novelty index from the programs."""
        meta = archive.meta()
        pop = cls(config)
        if config.islands > 1 and "islands" in meta:
            pop.islands = isl.IslandState.from_dict(meta["islands"])
        if config.bandit != "off":
            arms = [arm_name(op, m.name) for op in operators(config) for m in models]
            stored = meta.get("bandit")
            pop.bandit = Bandit.from_dict(stored, arms) if stored else Bandit.create(arms, config.bandit)
        if config.novelty_threshold is not None:
            pop.novelty = NoveltyIndex.build(
                [(c.id, c.code) for c in archive.candidates() if not c.status.startswith("rejected")]
            )
        if config.map_elites:
            pop.features = map_elites.parse_specs(config.map_elites)
        return pop

    def start_islands(self, seed: Candidate) -> dict | None:
        """Create the islands once the seed is scored; returns the meta to store, if any."""
        if self.config.islands > 1 and self.islands is None:
            self.islands = isl.create(self.config.islands, seed.id, seed.fitness)
            return {"islands": self.islands.to_dict()}
        return None

    def choose(self, archive: Archive, seed: Candidate, rng: random.Random) -> Choice:
        """A parent by the run's strategy, within an island or a niche, with inspirations from elsewhere."""
        if self.config.strategy == "best-of-n":
            return Choice(seed, None, [], [])
        ok = archive.candidates(Status.OK)
        island = isl.sample_island(self.islands, rng) if self.islands else None
        pool = isl.members(self.islands, island, ok) if self.islands else ok
        pool = pool or [seed]
        parent = None
        if self.features:
            grid = map_elites.elites(pool, map_elites.resolve(self.features, pool))
            parent = map_elites.sample_parent(grid, rng)
        if parent is None:
            parent = select_parent(self.config.strategy, pool, archive.children_counts(), seed, rng)
        in_pool = {c.id for c in pool}
        others = sorted(
            (c for c in ok if c.id != parent.id and c.id not in in_pool), key=lambda c: -c.fitness
        )
        others += sorted((c for c in pool if c.id != parent.id), key=lambda c: -c.fitness)
        inspirations = others[: self.config.inspirations]
        return Choice(parent, island, inspirations, archive.failed_children(parent.id, 3))

    def second_parent(self, archive: Archive, first: Candidate, rng: random.Random) -> Candidate | None:
        """A crossover partner: the best of another island, else a DGM draw among the others."""
        ok = [c for c in archive.candidates(Status.OK) if c.id != first.id]
        if not ok:
            return None
        if self.islands:
            elsewhere = [c for c in ok if first.island is None or c.island != first.island]
            if elsewhere:
                return max(elsewhere, key=lambda c: c.fitness)
        return select_parent("dgm", ok, archive.children_counts(), ok[0], rng)

    def after_evaluation(
        self,
        candidate: Candidate,
        fitness: float | None,
        parent_fitness: float | None,
        best_before: float | None,
        cost: float,
        rng: random.Random,
        archive: Archive,
    ) -> tuple[dict, list[tuple[str, dict]]]:
        """Account for an evaluated child: islands (migration, resets) and bandit; returns meta and events."""
        meta: dict = {}
        events: list[tuple[str, dict]] = []
        if self.islands is not None and candidate.island is not None:
            state = isl.record(self.islands, candidate.id, candidate.island, fitness)
            ok = archive.candidates(Status.OK) + (
                [dataclasses.replace(candidate, fitness=fitness)] if fitness is not None else []
            )
            moves = isl.migrate(state, ok, self.config.migration_every)
            if moves:
                state = isl.apply_migration(state, moves, ok)
                events.append(("migrated", {"moves": moves}))
            stale = isl.islands_to_reset(state, self.config.island_patience)
            if stale:
                state, founded = isl.reset(state, stale, ok, rng)
                events.append(("island_reset", {"islands": stale, "founders": founded}))
            self.islands = state
            meta["islands"] = state.to_dict()
        if self.bandit is not None and candidate.arm in self.bandit.arms:
            reward = improvement_reward(
                parent_fitness, fitness, best_before if best_before is not None else -1e300
            )
            self.bandit.update(candidate.arm, reward, cost)
            meta["bandit"] = self.bandit.to_dict()
        return meta, events

    def after_rejection(self, arm: str | None, cost: float) -> dict:
        """A rejected proposal is a bandit pull with no reward."""
        if self.bandit is None or arm not in self.bandit.arms:
            return {}
        self.bandit.update(arm, 0.0, cost)
        return {"bandit": self.bandit.to_dict()}

    def choose_arm(self, rng: random.Random) -> tuple[str, str] | None:
        """(operator, model name) from the bandit, when it is on."""
        return split_arm(self.bandit.choose(rng)) if self.bandit else None


def operators(config: RunConfig) -> list[str]:
    """The operators a bandit chooses among."""
    ops = ["diff", "full"] if config.reply_format != "block" else ["block"]
    return ops + (["crossover"] if config.crossover_rate > 0 else [])
