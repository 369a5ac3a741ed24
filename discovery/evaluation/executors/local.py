"""The local executor: every evaluation runs in this machine's sandbox, as it always has."""

from __future__ import annotations

import dataclasses

from discovery import evaluation
from discovery.evaluation import AgentSessions, Outcome
from discovery.sandbox.base import Sandbox
from discovery.task import Task


@dataclasses.dataclass
class LocalExecutor:
    """Evaluations in one local sandbox backend; the outcome records that backend's name."""

    sandbox: Sandbox

    @property
    def name(self) -> str:
        """The sandbox backend's name."""
        return self.sandbox.name

    async def evaluate(
        self,
        task: Task,
        code: str,
        split: str | None = None,
        labels: dict[str, str] | None = None,
        agent: AgentSessions | None = None,
    ) -> Outcome:
        """Evaluate with the task's repeats in the local sandbox."""
        outcome = await evaluation.evaluate(self.sandbox, task, code, split, labels, agent=agent)
        return dataclasses.replace(outcome, sandbox=self.sandbox.name)

    async def evaluate_once(
        self,
        task: Task,
        code: str,
        split: str,
        seed: int,
        labels: dict[str, str] | None = None,
        stage: str | None = None,
        agent: AgentSessions | None = None,
    ) -> Outcome:
        """Evaluate once in the local sandbox."""
        outcome = await evaluation.evaluate_once(
            self.sandbox, task, code, split, seed, labels, stage, agent=agent
        )
        return dataclasses.replace(outcome, sandbox=self.sandbox.name)

    def close(self) -> None:
        """The sandbox belongs to whoever made it: nothing to release here."""
