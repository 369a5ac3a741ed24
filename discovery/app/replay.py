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
    mode: str = "fresh"  # fresh (algorithms), recorded or live (agents)
    divergences: list[str] = dataclasses.field(default_factory=list)
    interval: tuple[float, float] | None = None  # live: the replayed score's 95 % interval


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
    run_dir: Path,
    candidate_id: int | None,
    sandbox: Sandbox,
    tolerance: float | None = None,
    live: ModelSpec | None = None,
) -> ReplayResult:
    """Re-run one candidate on the split it was scored on, record the replay, and compare.

    Agents replay on their recorded replies, or with `live` against that model: then the archived
    score holds when it lies in the new score's 95 % interval (metrics score_ci_low/high or
    <name>_ci_low/high), or within the tolerance when the task reports none.
    """
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
        interval = None
        if task.spec.agent is None:
            mode = "fresh"
            outcome = asyncio.run(evaluation.evaluate(sandbox, task, candidate.code, labels=labels))
        elif live is not None:
            mode = "live"
            outcome = live_replay(archive, task, candidate, sandbox, labels, live)
            interval = score_interval(outcome.metrics)
        else:
            mode = "recorded"
            outcome, divergences = recorded_replay(archive, task, candidate, sandbox, labels)
        if interval is not None and candidate.score is not None:
            agree = interval[0] - tol <= candidate.score <= interval[1] + tol
        else:
            agree = scores_agree(candidate.score, outcome.score, tol)
        holds = outcome.status == "ok" and agree and not divergences
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
            mode,
            divergences,
            interval,
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


def score_interval(metrics: dict) -> tuple[float, float] | None:
    """The 95 % interval of the score an evaluator reported, if any (score_ci_* or one other *_ci_* pair)."""
    for low_key in ["score_ci_low"] + sorted(k for k in metrics if k.endswith("_ci_low")):
        high_key = low_key[: -len("_low")] + "_high"
        if isinstance(metrics.get(low_key), float) and isinstance(metrics.get(high_key), float):
            return metrics[low_key], metrics[high_key]
    return None


def live_replay(
    archive: Archive,
    task: Task,
    candidate: Candidate,
    sandbox: Sandbox,
    labels: dict[str, str],
    model: ModelSpec,
) -> evaluation.Outcome:
    """Re-run an agent against a model now; its calls are recorded (evaluation `replay:...`) and cost counts."""
    gateway = Gateway(LLMClient([model]), model, archive.record_agent_call, run_spent=archive.total_cost)
    try:
        agent = gateway.sessions(task.spec.agent, candidate.id, "replay")
        return asyncio.run(evaluation.evaluate(sandbox, task, candidate.code, labels=labels, agent=agent))
    finally:
        gateway.close()
