"""The planner: what the next LLM call is for (a reflection, a repair, a crossover or a mutation)."""

from __future__ import annotations

import collections
import dataclasses
import random

from discovery.archive import Archive
from discovery.config import RunConfig
from discovery.domain import Candidate, Status
from discovery.llm import LLMClient, ModelSpec
from discovery.program import agent_prompts, reflection
from discovery.program.prompts import ReplyFormat, mutation_prompt
from discovery.search.state import Choice, Population
from discovery.task import Task


@dataclasses.dataclass
class Plan:
    """What the next LLM call is for, and what its reply becomes."""

    operator: str  # diff | full | block | crossover | repair | reflect_short | reflect_long
    model: ModelSpec
    messages: list[dict[str, str]]
    parent: Candidate | None = None
    second_parent: Candidate | None = None
    island: int | None = None
    arm: str | None = None
    pair: tuple[int, int] | None = None  # (better, worse) for a short-term reflection
    turns: int = 0  # agent tasks: reflection turns that check and fix the reply before it is a candidate


@dataclasses.dataclass
class Planner:
    """Turns the search state into the next call: queued repairs and reflections first, then mutations."""

    archive: Archive
    task: Task
    config: RunConfig
    client: LLMClient
    population: Population
    rng: random.Random
    repairs: collections.deque = dataclasses.field(default_factory=collections.deque)
    reflect: collections.deque = dataclasses.field(default_factory=collections.deque)
    hints: list[str] = dataclasses.field(default_factory=list)
    lessons: str = ""

    def learn(self, kind: str, text: str) -> None:
        """Keep a reflection: short-term ones as hints, a long-term one as the lessons that replace them."""
        if kind == "short":
            self.hints.append(text)
        else:
            self.lessons, self.hints = text, []

    def next(self) -> Plan:
        """Decide what the next call is for: a reflection, a repair, a crossover or a mutation."""
        rng, pop, fmt = self.rng, self.population, self.config.reply_format
        brief = self.task.spec.brief
        if self.config.reflection and len(self.hints) >= self.config.reflection_every:
            messages = reflection.long_term_reflection(brief, self.lessons, self.hints)
            return Plan("reflect_long", self.client.choose(rng), messages)
        if self.reflect:
            better, worse = (self.archive.candidate(i) for i in self.reflect.popleft())
            messages = reflection.short_term_reflection(brief, better, worse)
            return Plan("reflect_short", self.client.choose(rng), messages, pair=(better.id, worse.id))
        if self.repairs:
            failed = self.archive.candidate(self.repairs.popleft())
            messages = reflection.repair_prompt(self.task, failed, fmt)
            return Plan(
                "repair",
                self.client.choose(rng),
                self.with_lessons(messages),
                parent=failed,
                island=failed.island,
            )
        arm = pop.choose_arm(rng)
        operator, model = arm if arm else (fmt, None)
        spec = next((m for m in self.client.models if m.name == model), None) or self.client.choose(rng)
        choice = pop.choose(self.archive, self.archive.seed(), rng)
        wants_crossover = operator == "crossover" or (
            arm is None and rng.random() < self.config.crossover_rate
        )
        if wants_crossover:
            partner = pop.second_parent(self.archive, choice.parent, rng)
            if partner is not None:
                messages = reflection.crossover_prompt(self.task, choice.parent, partner, fmt)
                return Plan(
                    "crossover",
                    spec,
                    self.with_lessons(messages),
                    choice.parent,
                    partner,
                    choice.island,
                    "|".join(arm) if arm else None,
                )
            operator = fmt
        reply_format = operator if operator in ("diff", "full", "block") else fmt
        return Plan(
            reply_format,
            spec,
            self.with_lessons(self.mutation_messages(choice, reply_format)),
            choice.parent,
            None,
            choice.island,
            "|".join(arm) if arm else None,
            turns=self.config.agent_reflexion if self.task.is_agent else 0,
        )

    def mutation_messages(self, choice: Choice, reply_format: ReplyFormat) -> list[dict[str, str]]:
        """A mutation prompt: for agent tasks, ADAS's archive of named agents with intervals; else the parent's."""
        if not self.task.is_agent:
            return mutation_prompt(
                self.task, choice.parent, reply_format, choice.inspirations, choice.recent_failures
            )
        designs = {
            i: agent_prompts.AgentDesign(d.get("name", ""), d.get("rationale", ""))
            for i, d in self.archive.designs().items()
        }
        others = [c for c in self.archive.candidates(Status.OK) if c.id != choice.parent.id]
        best = sorted(others, key=lambda c: -c.fitness)[: self.config.agent_archive - 1]
        shown = [(c, designs.get(c.id)) for c in [*best, choice.parent]]
        return agent_prompts.agent_mutation_prompt(
            self.task, choice.parent, shown, reply_format, choice.recent_failures
        )

    def with_lessons(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        return reflection.with_lessons(messages, self.lessons) if self.lessons else messages
