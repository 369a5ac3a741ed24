"""Where evaluations run: here (local) or as tasks on a Ray cluster (ray); the loop sees one interface."""

from __future__ import annotations

from typing import Protocol

from discovery.evaluation import AgentSessions, Outcome
from discovery.task import Task


class Executor(Protocol):
    """Runs evaluations of candidates somewhere and returns their outcomes (sandbox and node filled in)."""

    name: str  # for messages: "docker", "bwrap", "process" (local) or "ray"

    async def evaluate(
        self,
        task: Task,
        code: str,
        split: str | None = None,
        labels: dict[str, str] | None = None,
        agent: AgentSessions | None = None,
    ) -> Outcome:
        """Evaluate with the task's repeats, as discovery.evaluation.evaluate does."""
        ...

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
        """Evaluate once on a split with a seed, as discovery.evaluation.evaluate_once does."""
        ...

    def close(self) -> None:
        """Release what the executor holds (a sandbox backend, a cluster connection)."""
        ...
