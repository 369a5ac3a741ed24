"""The discovery loop: LLM proposers and sandbox evaluators running concurrently over one archive."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import Callable

from discovery import evaluation
from discovery.archive import OK, PENDING, Archive, Candidate, code_hash
from discovery.config import RunConfig
from discovery.llm import LLMClient, LLMFailure
from discovery.patch import Rejection, build_program, normalise
from discovery.prompts import mutation_prompt, render
from discovery.sandbox.base import Sandbox
from discovery.selection import select_parent
from discovery.task import Task

log = logging.getLogger(__name__)

# After this many provider failures in a row (each already retried), the run stops and can be resumed.
MAX_CONSECUTIVE_LLM_ERRORS = 5


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
    sandbox: Sandbox
    run_id: str
    on_change: Callable[[Stats], None] = lambda stats: None
    max_time: float | None = None
    stats: Stats = dataclasses.field(default_factory=Stats)
    stop_reason: str | None = None
    _queue: asyncio.Queue | None = None
    _room: asyncio.Condition | None = None
    _consecutive_errors: int = 0
    _rng: random.Random | None = None

    # ----- set-up ----------------------------------------------------------------------------

    def _refresh_stats(self) -> None:
        counts = self.archive.status_counts()
        best = self.archive.best()
        self.stats = Stats(
            calls=self.archive.calls_made(),
            budget=self.config.budget,
            evaluated=sum(n for s, n in counts.items() if s != PENDING and not s.startswith("rejected")),
            ok=counts.get(OK, 0),
            failed=sum(
                n for s, n in counts.items() if s not in (OK, PENDING) and not s.startswith("rejected")
            ),
            rejected=sum(n for s, n in counts.items() if s.startswith("rejected")),
            pending=counts.get(PENDING, 0),
            best=best.score if best else None,
            cost_usd=self.archive.total_cost(),
        )
        self.on_change(self.stats)

    def _seed(self) -> Candidate:
        return self.archive.candidates()[0]

    # ----- evaluation ------------------------------------------------------------------------

    async def _evaluate(self, candidate_id: int) -> None:
        """Evaluate one pending candidate and record the outcome; never raises for the candidate's failures."""
        code = self.archive.candidate(candidate_id).code
        labels = {"discovery.run": self.run_id, "discovery.candidate": str(candidate_id)}
        try:
            outcome = await evaluation.evaluate(self.sandbox, self.task, code, labels=labels)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a backend bug must not lose the run; record it
            log.exception("sandbox failure on candidate %s", candidate_id)
            outcome = evaluation.Outcome("failed", None, {}, None, f"sandbox failure: {exc}", "", 0.0)
        fitness = self.task.fitness(outcome.score) if outcome.score is not None else None
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
        )
        self._refresh_stats()

    async def _evaluator(self) -> None:
        """An evaluation slot: takes pending candidates off the queue until it gets None."""
        assert self._queue is not None and self._room is not None
        while True:
            candidate_id = await self._queue.get()
            async with self._room:
                self._room.notify_all()
            if candidate_id is None:
                return
            await self._evaluate(candidate_id)

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

    def _choose_parent(self) -> tuple[Candidate, list[Candidate], list[Candidate]]:
        """Parent, inspirations and the parent's recent failed children, per the run's strategy."""
        assert self._rng is not None
        parents = self.archive.candidates(OK)
        parent = select_parent(
            self.config.strategy, parents, self.archive.children_counts(), self._seed(), self._rng
        )
        if self.config.strategy == "best-of-n":
            return parent, [], []
        others = sorted((c for c in parents if c.id != parent.id), key=lambda c: -c.fitness)
        inspirations = others[: self.config.inspirations]
        failures = [
            c
            for c in self.archive.candidates()
            if c.parent_id == parent.id and c.status not in (OK, PENDING) and c.failure
        ][-3:]
        return parent, inspirations, failures

    async def _propose_one(self) -> None:
        """One LLM call: prompt, reply, parse, dedup, and queue the child (or record why not)."""
        assert self._rng is not None and self._queue is not None
        parent, inspirations, failures = self._choose_parent()
        messages = mutation_prompt(self.task, parent, self.config.reply_format, inspirations, failures)
        model = self.client.choose(self._rng)
        seed = self._rng.randrange(2**31)
        call_id = self.archive.start_call(
            model.name, self.config.reply_format, parent.id, seed, render(messages)
        )
        self._refresh_stats()
        try:
            reply = await self.client.complete(model, messages, seed)
        except LLMFailure as failure:
            self.archive.fail_call(call_id, failure.status, str(failure), usage=failure.usage)
            if failure.status == "error":
                self._consecutive_errors += 1
                if failure.fatal:
                    self.stop_reason = f"{model.name}: {failure}"
                elif self._consecutive_errors >= MAX_CONSECUTIVE_LLM_ERRORS:
                    self.stop_reason = (
                        f"{model.name} failed {self._consecutive_errors} times in a row: {failure}"
                    )
            self._refresh_stats()
            return
        self._consecutive_errors = 0
        proposal = build_program(reply.text, parent.code)
        if isinstance(proposal, Rejection):
            code, status, failure = reply.text, proposal.status, proposal.reason
        else:
            code, status, failure = proposal.code, PENDING, None
        digest = code_hash(normalise(code))
        if status == PENDING and self.archive.has_hash(digest):
            status, failure = "rejected_duplicate", "an equivalent program is already in the archive"
        candidate_id = self.archive.finish_call_with_candidate(
            call_id,
            reply.text,
            reply.usage(),
            parent.id,
            self.config.reply_format,
            code,
            digest,
            status,
            failure,
        )
        self._refresh_stats()
        if status == PENDING:
            await self._queue.put(candidate_id)

    async def _proposer(self) -> None:
        """An LLM slot: keeps proposing while budget remains, waiting only when evaluations fall behind."""
        assert self._queue is not None and self._room is not None
        while not self._should_stop_proposing():
            async with self._room:
                # Keep at most one waiting candidate per evaluation slot, so parents stay fresh.
                await self._room.wait_for(lambda: self._queue.qsize() < self.config.eval_slots)
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
        seed = self._seed()
        if seed.status == PENDING:
            await self._evaluate(seed.id)
            seed = self._seed()
        if seed.status != OK:
            self.stop_reason = (
                f"the seed program failed its own evaluation ({seed.status}: {(seed.failure or '').splitlines()[0]}); "
                f"fix the task (`discovery tasks validate {self.task.path}`)"
            )

    async def run(self) -> str:
        """Run until the budget, a limit or an error stops it; returns why it stopped."""
        self._rng = random.Random(f"{self.config.seed}:{self.archive.calls_made()}")
        self._queue = asyncio.Queue()
        self._room = asyncio.Condition()
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
        except TimeoutError:
            self.stop_reason = f"time limit of {self.max_time:.0f} s reached"
        self._refresh_stats()
        return self.stop_reason or "budget spent"
