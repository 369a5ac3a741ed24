"""Evaluations a cluster loses (infra_failed) are never held against a program: the seed and the gate."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from discovery.archive import Archive
from discovery.config import ModelConfig, RunConfig
from discovery.domain import Status
from discovery.evaluation import Outcome
from discovery.evaluation.executors.local import LocalExecutor
from discovery.llm import LLMClient, ModelSpec
from discovery.sandbox.process import ProcessSandbox
from discovery.search.loop import Search
from discovery.task import load_task
from tests.search.test_search_options import solve

LOST = Outcome(
    Status.INFRA_FAILED, None, {}, None, "infrastructure failure: the cluster lost it 3 times", "", 0.0
)


@dataclasses.dataclass
class LosingCluster:
    """A real local sandbox whose evaluations are lost while `lose(kind)` says so, as a Ray cluster's can be."""

    inner: LocalExecutor
    lose_full: int = 0  # this many full evaluations (search) are lost
    lose_repeats: tuple[int, ...] = ()  # these held-out repeats (0: the first evaluate_once) are lost
    repeats: int = 0
    name: str = "ray"

    async def evaluate(self, task, code, split=None, labels=None, agent=None) -> Outcome:
        if self.lose_full > 0:
            self.lose_full -= 1
            return LOST
        return await self.inner.evaluate(task, code, split, labels, agent=agent)

    async def evaluate_once(self, task, code, split, seed, labels=None, stage=None, agent=None) -> Outcome:
        self.repeats += 1
        if self.repeats - 1 in self.lose_repeats:
            return LOST
        return await self.inner.evaluate_once(task, code, split, seed, labels, stage, agent=agent)

    def close(self) -> None:
        """Nothing held."""


def search(archive: Archive, task_dir: Path, server, budget: int, executor) -> Search:
    config = RunConfig(
        task=str(task_dir),
        models=[ModelConfig(name="openai/fake", api_base=server.api_base)],
        budget=budget,
        reply_format="block",
        llm_concurrency=1,
        eval_slots=1,
        crossover_rate=0,
    )
    client = LLMClient(
        [ModelSpec("openai/fake", 1.0, server.api_base, "sk-fake")], attempts=2, max_wait_s=0.1
    )
    return Search(archive, load_task(task_dir), config, client, None, "t", executor=executor)


def test_a_seed_lost_by_the_cluster_stops_the_run_as_a_sandbox_failure_and_resume_evaluates_it(
    toy_task, tmp_path, fake_llm
):
    server = fake_llm(default=solve(0.5))
    archive = Archive.create(tmp_path / "run", {"task_path": str(toy_task), "task": "toy"})
    first = search(archive, toy_task, server, 2, LosingCluster(LocalExecutor(ProcessSandbox()), lose_full=1))
    reason = asyncio.run(first.run())
    assert first.stop_kind == "sandbox" and "lost" in reason and "resume" in reason
    assert archive.seed().status == Status.PENDING and archive.calls_made() == 0
    again = search(archive, toy_task, server, 2, LosingCluster(LocalExecutor(ProcessSandbox())))
    asyncio.run(again.run())
    assert archive.seed().status == Status.OK and again.stop_kind == "done"


def test_a_lost_held_out_repeat_leaves_the_gate_undecided_and_it_is_tried_again(toy_task, tmp_path, fake_llm):
    server = fake_llm([solve(2.0)], default=solve(0.1))
    archive = Archive.create(tmp_path / "run", {"task_path": str(toy_task), "task": "toy"})
    # The gate evaluates the champion, then the challenger, per repeat: lose the challenger's first.
    cluster = LosingCluster(LocalExecutor(ProcessSandbox()), lose_repeats=(1,))
    asyncio.run(search(archive, toy_task, server, 1, cluster).run())
    # The lost repeat decided nothing (it was not "the challenger failed a held-out repeat"); the
    # next try, on repeats that came back, promoted it.
    [gate] = archive.promotions()
    assert cluster.repeats > 2 and gate["challenger_id"] == 2 and gate["promoted"] == 1, gate["reason"]
