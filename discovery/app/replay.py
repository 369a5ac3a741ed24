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
        outcome = asyncio.run(evaluation.evaluate(sandbox, task, candidate.code, labels=labels))
        holds = outcome.status == "ok" and scores_agree(candidate.score, outcome.score, tol)
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
            candidate.id, candidate.score, outcome.score, outcome.status, outcome.failure, tol, holds
        )
    finally:
        archive.close()
