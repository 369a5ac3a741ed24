"""The discovery loop: LLM proposers and sandbox evaluators running concurrently over one archive."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Callable

from discovery import evaluation
from discovery.archive import Archive
from discovery.config import RunConfig
from discovery.domain import EVALUATED_FAILURES, Candidate, Operator, Status, code_hash
from discovery.evaluation.executors import Executor
from discovery.evaluation.executors.local import LocalExecutor
from discovery.llm import LLMClient, LLMFailure, Reply
from discovery.llm.gateway import Gateway
from discovery.program import agent_prompts, reflection
from discovery.program.blocks import normalise
from discovery.program.multifile import child_from_reply, code_hash_of
from discovery.program.patch import Rejection
from discovery.program.prompts import render
from discovery.sandbox.base import Sandbox
from discovery.search import gate, mutator, repairs
from discovery.search.planner import Plan, Planner
from discovery.search.state import Population
from discovery.search.strategies import cascade
from discovery.search.strategies.novelty import too_similar
from discovery.task import Task

log = logging.getLogger(__name__)

# After this many provider failures in a row (each already retried), the run stops and can be resumed.
MAX_CONSECUTIVE_LLM_ERRORS = 5
# After this many evaluator failures in a row (the task's own bug, not the candidates'), the run stops.
MAX_CONSECUTIVE_EVALUATOR_FAILURES = 3
# With --reflection, one short-term reflection per this many evaluated children.
REFLECT_EVERY_CHILDREN = 4


def agent_sessions(
    gateway: Gateway | None, task: Task, candidate_id: int | None, purpose: str
) -> evaluation.AgentSessions | None:
    """Gateway sessions for a candidate's evaluations (purpose: search, stage, gate, replay); None for algorithms."""
    if gateway is None or task.spec.agent is None:
        return None
    return gateway.sessions(task.spec.agent, candidate_id, purpose)


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
class Search:
    """The shared state of one running search; `run()` drives it to a stop reason."""

    archive: Archive
    task: Task
    config: RunConfig
    client: LLMClient
    sandbox: Sandbox | None  # evaluations run here unless an executor is given
    run_id: str
    on_change: Callable[[Stats], None] = lambda stats: None
    max_time: float | None = None
    executor: Executor | None = None  # default: LocalExecutor(sandbox)
    gateway: Gateway | None = None  # agent tasks: candidates call the agent model through it
    # --mutator: names the coding agent that makes the next child (None: the LLM writes children)
    maker: Callable[[], mutator.Maker] | None = None
    stats: Stats = dataclasses.field(default_factory=Stats)
    stop_reason: str | None = None
    # Why the run stopped, for the exit code: done, seed_failed, provider, sandbox or evaluator.
    stop_kind: str = "done"
    _queue: asyncio.Queue | None = None
    _room: asyncio.Condition | None = None
    _gate: asyncio.Lock | None = None
    _consecutive_errors: int = 0
    _evaluator_failures: int = 0
    _similar_streak: int = 0
    _evaluations_halted: bool = False
    _rng: random.Random | None = None
    _population: Population | None = None
    _planner: Planner | None = None
    _children_evaluated: int = 0

    # ----- shared helpers --------------------------------------------------------------------

    def _refresh_stats(self) -> None:
        counts = self.archive.status_counts()
        best = self.archive.best()
        rejected = sum(n for s, n in counts.items() if s.startswith("rejected"))
        self.stats = Stats(
            calls=self.archive.calls_made(),
            budget=self.config.budget,
            evaluated=sum(counts.values()) - rejected - counts.get(Status.PENDING, 0),
            ok=counts.get(Status.OK, 0),
            failed=sum(counts.get(s, 0) for s in EVALUATED_FAILURES),
            rejected=rejected,
            pending=counts.get(Status.PENDING, 0),
            best=best.score if best else None,
            cost_usd=self.archive.total_cost(),
        )
        self.on_change(self.stats)

    def _seed(self) -> Candidate:
        return self.archive.seed()

    async def _stop(self, reason: str, kind: str = "done") -> None:
        """Stop proposing (first reason wins) and wake every slot that waits, so the run winds down."""
        if not self.stop_reason:
            self.stop_reason, self.stop_kind = reason, kind
        assert self._room is not None
        async with self._room:
            self._room.notify_all()

    # ----- evaluation ------------------------------------------------------------------------

    def _agent(self, candidate_id: int, purpose: str) -> evaluation.AgentSessions | None:
        """Gateway sessions for one candidate's evaluations, when the task is an agent task."""
        return agent_sessions(self.gateway, self.task, candidate_id, purpose)

    async def _score(self, candidate: Candidate) -> tuple[evaluation.Outcome, float | None]:
        """Cascade: a quick stage first when enabled, and the full evaluation only if it clears the bar."""
        labels = {"discovery.run": self.run_id, "discovery.candidate": str(candidate.id)}
        stage = self.task.spec.evaluation.cascade_stage
        agent = self._agent(candidate.id, "search")
        if self.config.cascade is None or not stage:
            return await self.executor.evaluate(self.task, candidate.code, labels=labels, agent=agent), None
        quick = await self.executor.evaluate_once(
            self.task,
            candidate.code,
            self.task.spec.evaluation.train_split,
            self.task.spec.evaluation.seed,
            labels,
            stage=stage,
            agent=self._agent(candidate.id, "stage"),
        )
        if quick.status != Status.OK:
            return quick, None
        stage_fitness = self.task.fitness(quick.score)
        earlier = [c.stage_fitness for c in self.archive.candidates() if c.stage_fitness is not None]
        bar = cascade.threshold(earlier, self.config.cascade)
        if candidate.operator != "seed" and not cascade.passes(stage_fitness, bar):
            why = f"quick stage {stage!r} fitness {stage_fitness:.6g} below the bar {bar:.6g}"
            return evaluation.Outcome(
                Status.CASCADE_STOPPED,
                None,
                quick.metrics,
                quick.feedback,
                why,
                quick.output_tail,
                quick.wall_s,
            ), stage_fitness
        full = await self.executor.evaluate(self.task, candidate.code, labels=labels, agent=agent)
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
                f"the {self.executor.name} sandbox failed ({exc}); candidate {candidate_id} is still pending: "
                "fix the backend (`discovery sandbox check`) and `discovery resume` the run",
                "sandbox",
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
            outcome.sandbox or self.executor.name,
            self.task.spec.evaluation.train_split,
            outcome.wall_s,
            stage_fitness=stage_fitness,
            meta=meta,
            events=events,
            node=outcome.node,
        )
        self._refresh_stats()
        self._evaluator_failures = (
            self._evaluator_failures + 1 if outcome.status == Status.EVALUATOR_FAILED else 0
        )
        if self._evaluator_failures >= MAX_CONSECUTIVE_EVALUATOR_FAILURES:
            first = (outcome.failure or "").splitlines()[0] if outcome.failure else "?"
            await self._stop(
                f"the task's evaluator failed on {self._evaluator_failures} candidates in a row ({first}); "
                f"fix {self.task.path}/evaluate.py (`discovery archive candidate {self.run_id} {candidate_id}` "
                "shows its traceback) and `discovery resume` the run",
                "evaluator",
            )
        if candidate.operator == "seed":
            return
        self._children_evaluated += 1
        self._queue_follow_ups(candidate, outcome.status, fitness, parent)
        if outcome.status == Status.OK and best is not None and fitness > best.fitness:
            await self._promote(candidate_id)

    def _queue_follow_ups(
        self, child: Candidate, status: str, fitness: float | None, parent: Candidate | None
    ) -> None:
        """Repairs for failures (chains of a bounded length), and short-term reflections on a better/worse pair."""
        if self.config.repair and repairs.wants_repair(self.archive, child, status, self._repair_limit()):
            self._planner.repairs.append(child.id)
        if (
            self.config.reflection
            and parent is not None
            and self._children_evaluated % REFLECT_EVERY_CHILDREN == 0
        ):
            child_better = fitness is not None and parent.fitness is not None and fitness > parent.fitness
            self._planner.reflect.append((child.id, parent.id) if child_better else (parent.id, child.id))

    def _repair_limit(self) -> int:
        """Repairs in a row one failure gets in this run."""
        return self.config.repairs_in_a_row(self.task.is_agent)

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
        """Run the promotion gate on a challenger, one gate at a time."""
        assert self._gate is not None
        async with self._gate:
            await gate.challenge(
                self.archive, self.task, self.config, self.executor, self.run_id, challenger_id, self.gateway
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

    async def _propose_one(self) -> None:
        """One LLM call: plan, prompt, reply, then a candidate (queued or rejected) or a reflection."""
        assert self._rng is not None and self._queue is not None and self._population is not None
        assert self._planner is not None
        plan = self._planner.next()
        seed = self._rng.randrange(2**31)
        if self.maker is not None and plan.parent is not None and not plan.operator.startswith("reflect"):
            await self._propose_by_agent(plan, seed)
            return
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
                    self.stop_reason, self.stop_kind = f"{plan.model.name}: {failure}", "provider"
                elif self._consecutive_errors >= MAX_CONSECUTIVE_LLM_ERRORS:
                    self.stop_kind = "provider"
                    self.stop_reason = (
                        f"{plan.model.name} failed {self._consecutive_errors} times in a row: {failure}"
                    )
            self._refresh_stats()
            return
        self._consecutive_errors = 0
        if plan.operator.startswith("reflect"):
            self._record_reflection(plan, call_id, reply)
            return
        design = agent_prompts.parse_design(reply.text)
        for _turn in range(plan.turns):
            call_id, reply = await self._reflexion_turn(plan, call_id, reply, seed)
            design = agent_prompts.parse_design(reply.text) or design
        candidate_id, status = self._record_child(plan, call_id, reply, design)
        self._refresh_stats()
        if status == Status.PENDING:
            await self._queue.put(candidate_id)

    async def _reflexion_turn(self, plan: Plan, call_id: int, reply: Reply, seed: int) -> tuple[int, Reply]:
        """One more call: the model checks its proposed agent and replies with the final one.

        Returns the call and reply the candidate comes from: the new ones, or the draft's when the
        budget allows no more calls or the turn fails (the draft is then still evaluated).
        """
        if self._should_stop_proposing():
            return call_id, reply
        messages = agent_prompts.with_draft(plan.messages, reply.text, plan.operator)
        turn_id = self.archive.start_call(
            plan.model.name, Operator.REFLEXION, plan.parent.id, seed, render(messages)
        )
        try:
            checked = await self.client.complete(plan.model, messages, seed)
        except LLMFailure as failure:
            self.archive.fail_call(turn_id, failure.status, str(failure), usage=failure.usage)
            return call_id, reply
        self.archive.finish_call(call_id, reply.text, reply.usage())  # the draft: no candidate of its own
        plan.messages = messages
        return turn_id, checked

    async def _propose_by_agent(self, plan: Plan, seed: int) -> None:
        """A child made by the --mutator coding agent: recorded as one call of model `agent:RUN:ID`."""
        assert self.maker is not None and self.gateway is not None and plan.parent is not None
        maker = self.maker()
        problem = mutator.problem_statement(self.task, plan.parent)
        call_id = self.archive.start_call(maker.label, Operator.AGENT, plan.parent.id, seed, problem)
        self._refresh_stats()
        labels = {"discovery.run": self.run_id, "discovery.mutation": str(call_id)}
        try:
            reply = await mutator.mutate(
                self.sandbox, self.gateway, self.task, maker, plan.parent, call_id, labels
            )
        except evaluation.SandboxError as exc:
            self.archive.fail_call(call_id, "error", f"the {self.sandbox.name} sandbox failed: {exc}")
            await self._stop(
                f"the {self.sandbox.name} sandbox failed running the mutator agent ({exc})", "sandbox"
            )
            return
        plan = dataclasses.replace(plan, operator=Operator.AGENT, second_parent=None)
        candidate_id, status = self._record_child(plan, call_id, reply)
        self._refresh_stats()
        if status == Status.PENDING:
            await self._queue.put(candidate_id)

    def _record_reflection(self, plan: Plan, call_id: int, reply) -> None:
        kind = "short" if plan.operator == "reflect_short" else "long"
        limit = reflection.SHORT_TERM_WORDS if kind == "short" else reflection.LONG_TERM_WORDS
        text = reflection.clean_reflection(reply.text, limit)
        better, worse = plan.pair or (None, None)
        self.archive.record_reflection(kind, call_id, reply.text, reply.usage(), text, better, worse)
        self._planner.learn(kind, text)

    def _record_child(
        self, plan: Plan, call_id: int, reply, design: agent_prompts.AgentDesign | None = None
    ) -> tuple[int, str]:
        """Parse, dedup and novelty-check a reply; store the child with its search state in one transaction."""
        assert self._population is not None and plan.parent is not None
        pop = self._population
        proposal = child_from_reply(self.task, reply.text, plan.parent.code)
        if isinstance(proposal, Rejection):
            code, status, failure = reply.text, proposal.status, proposal.reason
            digest, files = code_hash(normalise(code)), None
        else:
            code, status, failure = proposal.code, Status.PENDING, None
            digest = code_hash_of(self.task, code)
            files = self.task.tree_of(code) if self.task.folder else None
        if status == Status.PENDING and self.archive.has_hash(digest):
            status, failure = "rejected_duplicate", "an equivalent program is already in the archive"
        extra: dict = {
            "island": plan.island,
            "arm": plan.arm,
            "second_parent_id": plan.second_parent.id if plan.second_parent else None,
        }
        if status == Status.PENDING and pop.novelty is not None:
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
        meta = pop.after_rejection(plan.arm, reply.cost_usd or 0.0) if status != Status.PENDING else None
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
            files=files,
            design=self._design_of(plan, design),
        )
        if status == Status.PENDING and pop.novelty is not None:
            pop.novelty.add(candidate_id, code)
        return candidate_id, status

    def _design_of(self, plan: Plan, design: agent_prompts.AgentDesign | None) -> dict[str, str] | None:
        """An agent's name and rationale to store: the reply's, else (a repair) the repaired agent's name."""
        if not self.task.is_agent:
            return None
        if design is not None:
            return design._asdict()
        inherited = self.archive.designs().get(plan.parent.id) if plan.operator == Operator.REPAIR else None
        return {"name": inherited["name"], "rationale": "a repair"} if inherited else None

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
            files = self.task.tree_of(seed_code) if self.task.folder else None
            self.archive.add_seed(seed_code, code_hash_of(self.task, seed_code), files)
        interrupted = self.archive.interrupt_unfinished_calls()
        if interrupted:
            log.info(
                "%d LLM call(s) were in flight when the run stopped; they count against the budget",
                interrupted,
            )
        for stale in self.archive.candidates_with_status(Status.EVALUATOR_FAILED):
            # The run stopped on the task's evaluator; the user fixed it and resumed: score them now.
            self.archive.requeue(stale, "the evaluator failed; evaluated again on resume")
        if self.config.repair:  # repairs queued before a stop are found again
            self._planner.repairs.extend(repairs.owed(self.archive, self._repair_limit()))
        long_term = self.archive.reflections("long")
        self._planner.lessons = long_term[-1]["text"] if long_term else ""
        seed = self._seed()
        if seed.status == Status.PENDING:
            await self._evaluate(seed.id)
            seed = self._seed()
        if self.stop_reason:
            return
        if seed.status == Status.INFRA_FAILED:
            # The cluster lost it, not the task's fault: evaluate it again on resume.
            self.archive.requeue(seed.id, seed.failure or "infra_failed")
            await self._stop(
                f"the seed program's evaluation was lost ({(seed.failure or '').splitlines()[0]}); "
                "check the cluster and `discovery resume` the run",
                "sandbox",
            )
            return
        if seed.status != Status.OK:
            self.stop_kind = "seed_failed"
            self.stop_reason = (
                f"the seed program failed its own evaluation ({seed.status}: {(seed.failure or '').splitlines()[0]}); "
                f"`discovery archive candidate {self.run_id} {seed.id}` shows why; fix the program or the "
                f"evaluator in {self.task.path} and start a new run"
            )
            return
        meta = self._population.start_islands(seed)
        if meta:
            with self.archive.transaction():
                self.archive.set_meta_items(meta)

    async def run(self) -> str:
        """Run until the budget, a limit or an error stops it; returns why it stopped."""
        self.executor = self.executor or LocalExecutor(self.sandbox)
        self._rng = random.Random(f"{self.config.seed}:{self.archive.calls_made()}")
        self._population = Population.restore(self.archive, self.config, self.client.models)
        self._planner = Planner(
            self.archive, self.task, self.config, self.client, self._population, self._rng
        )
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
