"""Replay: re-evaluate an archived candidate fresh in a sandbox and check that its score holds."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from pathlib import Path

from discovery import evaluation
from discovery.archive import Archive
from discovery.domain import Candidate
from discovery.errors import UserError
from discovery.llm import LLMClient, ModelSpec
from discovery.llm.gateway import Gateway, RecordedReplies
from discovery.sandbox.base import Sandbox
from discovery.task import Task, load_task


@dataclasses.dataclass(frozen=True)
class ReplayResult:
    """Archived against replayed score, and whether they agree within the tolerance."""

    candidate_id: int
    archived: float | None
    replayed: float | None
    status: str
    failure: str | None
    tolerance: float
    holds: bool
    # Agent tasks: replayed on the archived replies; any call that differs is listed here.
    mode: str = "fresh"
    divergences: list[str] = dataclasses.field(default_factory=list)


def pick_candidate(archive: Archive, candidate_id: int | None) -> Candidate:
    """The candidate to replay: the one named, else the best."""
    if candidate_id is not None:
        return archive.candidate(candidate_id)
    best = archive.best()
    if best is None:
        raise UserError("this run has no successfully evaluated candidate to replay")
    return best


def scores_agree(archived: float | None, replayed: float | None, tolerance: float) -> bool:
    """Whether two scores agree within an absolute tolerance (plus float rounding)."""
    if archived is None or replayed is None:
        return False
    return math.isclose(archived, replayed, abs_tol=tolerance, rel_tol=1e-12)


def replay(
    run_dir: Path, candidate_id: int | None, sandbox: Sandbox, tolerance: float | None = None
) -> ReplayResult:
    """Re-run one candidate on the split it was scored on, record the replay, and compare."""
    archive = Archive.open(run_dir)
    try:
        meta = archive.meta()
        task: Task = load_task(meta["task_path"])
        candidate = pick_candidate(archive, candidate_id)
        if candidate.status != "ok":
            raise UserError(
                f"candidate {candidate.id} was not evaluated successfully ({candidate.status}); nothing to compare"
            )
        tol = task.spec.objective.tolerance if tolerance is None else tolerance
        labels = {"discovery.run": run_dir.name, "discovery.app.replay": str(candidate.id)}
        divergences: list[str] = []
        if task.spec.agent is None:
            outcome = asyncio.run(evaluation.evaluate(sandbox, task, candidate.code, labels=labels))
        else:
            outcome, divergences = recorded_replay(archive, task, candidate, sandbox, labels)
        holds = (
            outcome.status == "ok" and scores_agree(candidate.score, outcome.score, tol) and not divergences
        )
        archive.record_replay(
            candidate.id,
            task.spec.evaluation.train_split,
            candidate.score,
            outcome.score,
            outcome.status,
            holds,
            sandbox.name,
            outcome.failure,
        )
        return ReplayResult(
            candidate.id,
            candidate.score,
            outcome.score,
            outcome.status,
            outcome.failure,
            tol,
            holds,
            "fresh" if task.spec.agent is None else "recorded",
            divergences,
        )
    finally:
        archive.close()


def recorded_replay(
    archive: Archive, task: Task, candidate: Candidate, sandbox: Sandbox, labels: dict[str, str]
) -> tuple[evaluation.Outcome, list[str]]:
    """Re-run an agent with a gateway that answers from its archived calls (offline, free, exact).

    The calls it makes now go to memory, not to the archive; a call that differs from the
    recorded one, an extra call or a recorded call not made again is a divergence.
    """
    calls = archive.agent_calls(candidate.id)
    replies = RecordedReplies.from_calls([c for c in calls if c["evaluation"].startswith("search:")])
    model_name = next((c["model"] for c in calls), "recorded")
    made: list[dict] = []
    model = ModelSpec(model_name)
    gateway = Gateway(LLMClient([model]), model, made.append, replies=replies)
    try:
        agent = gateway.sessions(task.spec.agent, candidate.id, "search")
        outcome = asyncio.run(evaluation.evaluate(sandbox, task, candidate.code, labels=labels, agent=agent))
    finally:
        gateway.close()
    return outcome, replies.divergences + replies.unused()
