"""The discovery loop: LLM proposers and sandbox evaluators running concurrently over one archive."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import random
from collections.abc import Callable

from discovery import cascade, evaluation, promotion, reflection
from discovery.archive import CASCADE_STOPPED, EVALUATED_FAILURES, OK, PENDING, Archive, Candidate, code_hash
from discovery.config import RunConfig
from discovery.llm import LLMClient, LLMFailure, ModelSpec
from discovery.novelty import too_similar
from discovery.patch import Rejection, build_program, normalise
from discovery.population import Population
from discovery.prompts import mutation_prompt, render
from discovery.sandbox.base import Sandbox
from discovery.task import Task

log = logging.getLogger(__name__)

# After this many provider failures in a row (each already retried), the run stops and can be resumed.
MAX_CONSECUTIVE_LLM_ERRORS = 5
# With --reflection, one short-term reflection per this many evaluated children.
REFLECT_EVERY_CHILDREN = 4


@dataclasses.dataclass
class Stats:
    """Live figures for the progress display."""

    calls: int = 0
    budget: int = 0
    evaluated: int = 0
    ok: int = 0
    failed: int = 0
    rejected: int = 0
    pending: int = 0
    best: float | None = None
    cost_usd: float = 0.0


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


@dataclasses.dataclass
class Search:
    """The shared state of one running search; `run()` drives it to a stop reason."""

    archive: Archive
    task: Task
    config: RunConfig
    client: LLMClient
    sandbox: Sandbox
    run_id: str
    on_change: Callable[[Stats], None] = lambda stats: None
    max_time: float | None = None
    stats: Stats = dataclasses.field(default_factory=Stats)
    stop_reason: str | None = None
    _queue: asyncio.Queue | None = None
    _room: asyncio.Condition | None = None
    _gate: asyncio.Lock | None = None
    _consecutive_errors: int = 0
    _similar_streak: int = 0
    _evaluations_halted: bool = False
    _rng: random.Random | None = None
    _population: Population | None = None
    _repairs: collections.deque = dataclasses.field(default_factory=collections.deque)
    _reflect: collections.deque = dataclasses.field(default_factory=collections.deque)
    _hints: list[str] = dataclasses.field(default_factory=list)
    _lessons: str = ""
    _children_evaluated: int = 0

    # ----- shared helpers --------------------------------------------------------------------

    def _refresh_stats(self) -> None:
        counts = self.archive.status_counts()
        best = self.archive.best()
        rejected = sum(n for s, n in counts.items() if s.startswith("rejected"))
        self.stats = Stats(
            calls=self.archive.calls_made(),
            budget=self.config.budget,
            evaluated=sum(counts.values()) - rejected - counts.get(PENDING, 0),
            ok=counts.get(OK, 0),
            failed=sum(counts.get(s, 0) for s in EVALUATED_FAILURES),
            rejected=rejected,
            pending=counts.get(PENDING, 0),
            best=best.score if best else None,
            cost_usd=self.archive.total_cost(),
        )
        self.on_change(self.stats)

    def _seed(self) -> Candidate:
        return self.archive.seed()

    @property
    def _baseline(self) -> bool:
        return self.config.strategy == "best-of-n"

    async def _stop(self, reason: str) -> None:
        """Stop proposing (first reason wins) and wake every slot that waits, so the run winds down."""
        self.stop_reason = self.stop_reason or reason
        assert self._room is not None
        async with self._room:
            self._room.notify_all()

    # ----- evaluation ------------------------------------------------------------------------

    async def _score(self, candidate: Candidate) -> tuple[evaluation.Outcome, float | None]:
        """Cascade: a quick stage first when enabled, and the full evaluation only if it clears the bar."""
        labels = {"discovery.run": self.run_id, "discovery.candidate": str(candidate.id)}
        stage = self.task.spec.evaluation.cascade_stage
        if self.config.cascade is None or not stage or self._baseline:
            return await evaluation.evaluate(self.sandbox, self.task, candidate.code, labels=labels), None
        quick = await evaluation.evaluate_once(
            self.sandbox,
            self.task,
            candidate.code,
            self.task.spec.evaluation.train_split,
            self.task.spec.evaluation.seed,
            labels,
            stage=stage,
        )
        if quick.status != OK:
            return quick, None
        stage_fitness = self.task.fitness(quick.score)
        earlier = [c.stage_fitness for c in self.archive.candidates() if c.stage_fitness is not None]
        bar = cascade.threshold(earlier, self.config.cascade)
        if candidate.operator != "seed" and not cascade.passes(stage_fitness, bar):
            why = f"quick stage {stage!r} fitness {stage_fitness:.6g} below the bar {bar:.6g}"
            return evaluation.Outcome(
                CASCADE_STOPPED, None, quick.metrics, quick.feedback, why, quick.output_tail, quick.wall_s
            ), stage_fitness
        full = await evaluation.evaluate(self.sandbox, self.task, candidate.code, labels=labels)
        return full, stage_fitness

    async def _evaluate(self, candidate_id: int) -> None:
        """Evaluate one pending candidate, record it with the search state it changes, and act on it."""
        assert self._population is not None and self._rng is not None
        candidate = self.archive.candidate(candidate_id)
        try:
            outcome, stage_fitness = await self._score(candidate)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a backend failure stops the run; the candidate stays pending
            log.debug("sandbox failure on candidate %s", candidate_id, exc_info=True)
            self._evaluations_halted = True
            await self._stop(
                f"the {self.sandbox.name} sandbox failed ({exc}); candidate {candidate_id} is still pending: "
                "fix the backend (`discovery sandbox check`) and `discovery resume` the run"
            )
            return
        fitness = self.task.fitness(outcome.score) if outcome.score is not None else None
        best = self.archive.best()
        parent = self.archive.candidate(candidate.parent_id) if candidate.parent_id else None
        call = self.archive.call(candidate.call_id) if candidate.call_id else {}
        cost = call.get("cost_usd") or (call.get("prompt_tokens", 0) + call.get("completion_tokens", 0)) / 1e6
        meta, events = self._population.after_evaluation(
            candidate,
            fitness,
            parent.fitness if parent else None,
            best.fitness if best else None,
            cost,
            self._rng,
            self.archive,
        )
        self.archive.record_evaluation(
            candidate_id,
            outcome.status,
            outcome.score,
            fitness,
            outcome.metrics,
            outcome.feedback,
            outcome.failure,
            outcome.output_tail,
            self.sandbox.name,
            self.task.spec.evaluation.train_split,
            outcome.wall_s,
            stage_fitness=stage_fitness,
            meta=meta,
            events=events,
        )
        self._refresh_stats()
        if candidate.operator == "seed":
            return
        self._children_evaluated += 1
        self._queue_follow_ups(candidate, outcome.status, fitness, parent)
        if outcome.status == OK and best is not None and fitness > best.fitness:
            await self._promote(candidate_id)

    def _queue_follow_ups(
        self, child: Candidate, status: str, fitness: float | None, parent: Candidate | None
    ) -> None:
        """Repairs for failures, and short-term reflections on a better/worse pair."""
        if self._baseline:
            return
        if self.config.repair and status in EVALUATED_FAILURES and child.operator != "repair":
            self._repairs.append(child.id)
        if (
            self.config.reflection
            and parent is not None
            and self._children_evaluated % REFLECT_EVERY_CHILDREN == 0
        ):
            child_better = fitness is not None and parent.fitness is not None and fitness > parent.fitness
            self._reflect.append((child.id, parent.id) if child_better else (parent.id, child.id))

    async def _evaluator(self) -> None:
        """An evaluation slot: takes pending candidates off the queue until it gets None or the run stops."""
        assert self._queue is not None and self._room is not None
        while True:
            candidate_id = await self._queue.get()
            async with self._room:
                self._room.notify_all()
            if candidate_id is None or self._evaluations_halted:
                return
            await self._evaluate(candidate_id)

    # ----- promotion -------------------------------------------------------------------------

    async def _promote(self, challenger_id: int) -> None:
        """The promotion gate: paired held-out repeats of champion and challenger, and a one-sided test."""
        assert self._gate is not None
        async with self._gate:
            champion = self.archive.candidate(self.archive.champion_id())
            challenger = self.archive.candidate(challenger_id)
            if challenger.id == champion.id or self.archive.gated(challenger.id) or champion.status != OK:
                return
            if challenger.fitness <= champion.fitness:
                return
            spec = self.task.spec.evaluation
            split = spec.heldout_split or spec.train_split
            # Seeds apart from the search's, so a train-seed overfit cannot pass on the same draws.
            seeds = [spec.seed + 1000 + k for k in range(self.config.promotion_repeats)]
            labels = {"discovery.run": self.run_id, "discovery.gate": str(challenger.id)}
            champion_scores: list[float | None] = []
            challenger_scores: list[float | None] = []
            for seed in seeds:
                for program, scores in ((champion, champion_scores), (challenger, challenger_scores)):
                    outcome = await evaluation.evaluate_once(
                        self.sandbox, self.task, program.code, split, seed, labels
                    )
                    scores.append(outcome.score if outcome.status == OK else None)
            if challenger.metrics.get("flagged") == 1.0:
                decision = promotion.Decision(
                    False,
                    1.0,
                    float("nan"),
                    len(seeds),
                    "flagged: speedup beyond the task's plausibility bound",
                )
            else:
                decision = promotion.decide(
                    champion_scores,
                    challenger_scores,
                    self.task.maximize,
                    self.config.promotion_alpha,
                    self.task.spec.objective.tolerance,
                )
            self.archive.record_promotion(
                champion.id,
                challenger.id,
                split,
                seeds,
                champion_scores,
                challenger_scores,
                decision.p_value,
                decision.mean_gain,
                self.task.spec.objective.tolerance,
                self.config.promotion_alpha,
                decision.promote,
                decision.reason,
            )

    # ----- proposals -------------------------------------------------------------------------

    def _should_stop_proposing(self) -> bool:
        if self.stop_reason:
            return True
        if self.archive.calls_made() >= self.config.budget:
            return True
        if self.config.max_cost is not None and self.archive.total_cost() >= self.config.max_cost:
            self.stop_reason = f"cost limit of ${self.config.max_cost:.2f} reached"
            return True
        return False

    def _plan(self) -> Plan:
        """Decide what the next call is for: a reflection, a repair, a crossover or a mutation."""
        assert self._rng is not None and self._population is not None
        rng, pop, fmt = self._rng, self._population, self.config.reply_format
        brief = self.task.spec.brief
        if self.config.reflection and len(self._hints) >= self.config.reflection_every:
            messages = reflection.long_term_reflection(brief, self._lessons, self._hints)
            return Plan("reflect_long", self.client.choose(rng), messages)
        if self._reflect:
            better, worse = (self.archive.candidate(i) for i in self._reflect.popleft())
            messages = reflection.short_term_reflection(brief, better, worse)
            return Plan("reflect_short", self.client.choose(rng), messages, pair=(better.id, worse.id))
        if self._repairs:
            failed = self.archive.candidate(self._repairs.popleft())
            messages = reflection.repair_prompt(self.task, failed, fmt)
            return Plan(
                "repair",
                self.client.choose(rng),
                self._with_lessons(messages),
                parent=failed,
                island=failed.island,
            )
        arm = pop.choose_arm(rng)
        operator, model = arm if arm else (fmt, None)
        spec = next((m for m in self.client.models if m.name == model), None) or self.client.choose(rng)
        choice = pop.choose(self.archive, self._seed(), rng)
        wants_crossover = operator == "crossover" or (
            arm is None and rng.random() < self.config.crossover_rate
        )
        if wants_crossover and not self._baseline:
            partner = pop.second_parent(self.archive, choice.parent, rng)
            if partner is not None:
                messages = reflection.crossover_prompt(self.task, choice.parent, partner, fmt)
                return Plan(
                    "crossover",
                    spec,
                    self._with_lessons(messages),
                    choice.parent,
                    partner,
                    choice.island,
                    "|".join(arm) if arm else None,
                )
            operator = fmt
        reply_format = operator if operator in ("diff", "full", "block") else fmt
        messages = mutation_prompt(
            self.task, choice.parent, reply_format, choice.inspirations, choice.recent_failures
        )
        return Plan(
            reply_format,
            spec,
            self._with_lessons(messages),
            choice.parent,
            None,
            choice.island,
            "|".join(arm) if arm else None,
        )

    def _with_lessons(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        return reflection.with_lessons(messages, self._lessons) if self._lessons else messages

    async def _propose_one(self) -> None:
        """One LLM call: plan, prompt, reply, then a candidate (queued or rejected) or a reflection."""
        assert self._rng is not None and self._queue is not None and self._population is not None
        plan = self._plan()
        seed = self._rng.randrange(2**31)
        parent_id = plan.parent.id if plan.parent else None
        call_id = self.archive.start_call(
            plan.model.name, plan.operator, parent_id, seed, render(plan.messages)
        )
        self._refresh_stats()
        try:
            reply = await self.client.complete(plan.model, plan.messages, seed)
        except LLMFailure as failure:
            self.archive.fail_call(call_id, failure.status, str(failure), usage=failure.usage)
            if failure.status == "error":
                self._consecutive_errors += 1
                if failure.fatal:
                    self.stop_reason = f"{plan.model.name}: {failure}"
                elif self._consecutive_errors >= MAX_CONSECUTIVE_LLM_ERRORS:
                    self.stop_reason = (
                        f"{plan.model.name} failed {self._consecutive_errors} times in a row: {failure}"
                    )
            self._refresh_stats()
            return
        self._consecutive_errors = 0
        if plan.operator.startswith("reflect"):
            self._record_reflection(plan, call_id, reply)
            return
        candidate_id, status = self._record_child(plan, call_id, reply)
        self._refresh_stats()
        if status == PENDING:
            await self._queue.put(candidate_id)

    def _record_reflection(self, plan: Plan, call_id: int, reply) -> None:
        kind = "short" if plan.operator == "reflect_short" else "long"
        limit = reflection.SHORT_TERM_WORDS if kind == "short" else reflection.LONG_TERM_WORDS
        text = reflection.clean_reflection(reply.text, limit)
        better, worse = plan.pair or (None, None)
        self.archive.record_reflection(kind, call_id, reply.text, reply.usage(), text, better, worse)
        if kind == "short":
            self._hints.append(text)
        else:
            self._lessons, self._hints = text, []

    def _record_child(self, plan: Plan, call_id: int, reply) -> tuple[int, str]:
        """Parse, dedup and novelty-check a reply; store the child with its search state in one transaction."""
        assert self._population is not None and plan.parent is not None
        pop = self._population
        proposal = build_program(reply.text, plan.parent.code)
        if isinstance(proposal, Rejection):
            code, status, failure = reply.text, proposal.status, proposal.reason
        else:
            code, status, failure = proposal.code, PENDING, None
        digest = code_hash(normalise(code))
        if status == PENDING and self.archive.has_hash(digest):
            status, failure = "rejected_duplicate", "an equivalent program is already in the archive"
        extra: dict = {
            "island": plan.island,
            "arm": plan.arm,
            "second_parent_id": plan.second_parent.id if plan.second_parent else None,
        }
        if status == PENDING and pop.novelty is not None:
            nearest_id, similarity = pop.novelty.nearest(code)
            extra.update(nearest_id=nearest_id, similarity=similarity)
            # After novelty_resamples rejections in a row the next proposal is evaluated anyway.
            if too_similar(similarity, self.config.novelty_threshold) and (
                self._similar_streak < self.config.novelty_resamples
            ):
                self._similar_streak += 1
                status = "rejected_similar"
                failure = f"{similarity:.0%} similar to candidate {nearest_id} (threshold {self.config.novelty_threshold:.0%})"
            else:
                self._similar_streak = 0
        meta = pop.after_rejection(plan.arm, reply.cost_usd or 0.0) if status != PENDING else None
        candidate_id = self.archive.finish_call_with_candidate(
            call_id,
            reply.text,
            reply.usage(),
            plan.parent.id,
            plan.operator,
            code,
            digest,
            status,
            failure,
            extra=extra,
            meta=meta,
        )
        if status == PENDING and pop.novelty is not None:
            pop.novelty.add(candidate_id, code)
        return candidate_id, status

    async def _proposer(self) -> None:
        """An LLM slot: keeps proposing while budget remains, waiting only when evaluations fall behind."""
        assert self._queue is not None and self._room is not None
        while not self._should_stop_proposing():
            async with self._room:
                # Keep at most one waiting candidate per evaluation slot, so parents stay fresh.
                await self._room.wait_for(
                    lambda: self.stop_reason or self._queue.qsize() < self.config.eval_slots
                )
            if self._should_stop_proposing():
                return
            await self._propose_one()

    # ----- driver ----------------------------------------------------------------------------

    async def _start(self) -> None:
        """First start: record and evaluate the seed. Resume: close calls that died in flight."""
        if not self.archive.candidates():
            seed_code = self.task.seed_code
            self.archive.add_seed(seed_code, code_hash(normalise(seed_code)))
        interrupted = self.archive.interrupt_unfinished_calls()
        if interrupted:
            log.info(
                "%d LLM call(s) were in flight when the run stopped; they count against the budget",
                interrupted,
            )
        long_term = self.archive.reflections("long")
        self._lessons = long_term[-1]["text"] if long_term else ""
        seed = self._seed()
        if seed.status == PENDING:
            await self._evaluate(seed.id)
            seed = self._seed()
        if self.stop_reason:
            return
        if seed.status != OK:
            self.stop_reason = (
                f"the seed program failed its own evaluation ({seed.status}: {(seed.failure or '').splitlines()[0]}); "
                f"fix the task (`discovery tasks validate {self.task.path}`)"
            )
            return
        meta = self._population.start_islands(seed)
        if meta:
            with self.archive.transaction():
                self.archive._set_meta_items(meta)

    async def run(self) -> str:
        """Run until the budget, a limit or an error stops it; returns why it stopped."""
        self._rng = random.Random(f"{self.config.seed}:{self.archive.calls_made()}")
        self._population = Population.restore(self.archive, self.config, self.client.models)
        self._queue = asyncio.Queue()
        self._room = asyncio.Condition()
        self._gate = asyncio.Lock()
        self._refresh_stats()
        try:
            async with asyncio.timeout(self.max_time):
                await self._start()
                if self.stop_reason:
                    return self.stop_reason
                for candidate_id in self.archive.pending_ids():
                    self._queue.put_nowait(candidate_id)
                evaluators = [asyncio.create_task(self._evaluator()) for _ in range(self.config.eval_slots)]
                proposers = [
                    asyncio.create_task(self._proposer()) for _ in range(self.config.llm_concurrency)
                ]
                try:
                    await asyncio.gather(*proposers)
                    for _ in evaluators:
                        self._queue.put_nowait(None)
                    await asyncio.gather(*evaluators)
                finally:
                    for task in proposers + evaluators:
                        task.cancel()
                    await asyncio.gather(*proposers, *evaluators, return_exceptions=True)
                best = self.archive.best()
                if best is not None and not self._evaluations_halted:
                    await self._promote(best.id)  # a gate interrupted earlier (kill, resume) runs now
        except TimeoutError:
            self.stop_reason = f"time limit of {self.max_time:.0f} s reached"
        self._refresh_stats()
        return self.stop_reason or "budget spent"
