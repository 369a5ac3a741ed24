"""Evaluating one candidate: write it out, run the trusted runner in a sandbox, and read back its verdict."""

from __future__ import annotations

import dataclasses
import json
import secrets
import shutil
import statistics
import tempfile
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from discovery.program.tree import write_tree
from discovery.sandbox.base import (
    CANDIDATE_MOUNT,
    PYTHON,
    RUNNER_MOUNT,
    TASK_MOUNT,
    Attachment,
    Limits,
    Mount,
    Sandbox,
    SandboxJob,
    SandboxResult,
)
from discovery.sandbox.hostpaths import sandboxes_dir
from discovery.task import Task

RESULT_MARK = "@@discovery-result@@"

# For agent tasks: opens the LLM gateway for one evaluation, given (split, seed); see discovery/llm/gateway.py.
AgentSessions = Callable[[str, int], AbstractAsyncContextManager[Attachment]]
TAIL_CHARS = 4000


class SandboxError(RuntimeError):
    """The sandbox backend itself failed (engine gone, image missing); the candidate is not to blame."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The verdict on one candidate: status (ok or a failure kind), score and what explains it."""

    status: str
    score: float | None
    metrics: dict[str, Any]
    feedback: str | None
    failure: str | None
    output_tail: str
    wall_s: float
    _: (
        dataclasses.KW_ONLY
    )  # the optional fields by name only: a positional one once landed in the wrong field
    sandbox: str | None = None  # the backend that ran it, filled in by the executor
    node: str | None = None  # the cluster node that ran it (Ray executor); None when run here
    files: dict[str, str] | None = None  # a tree the evaluator returned (a mutator agent's edit)


def task_limits(task: Task) -> Limits:
    """Sandbox limits from the task's declared resources."""
    r = task.spec.resources
    return Limits(
        timeout_s=r.timeout_s,
        cpus=r.cpus,
        memory_mb=r.memory_mb,
        pids=r.pids,
        output_bytes=r.output_kb * 1024,
        gpus=r.gpus,
    )


def _tail(data: bytes) -> str:
    return data.decode(errors="replace")[-TAIL_CHARS:]


def parse_result(result: SandboxResult, nonce: str) -> Outcome:
    """Interpret a sandbox run of the runner: limits first, then the runner's own result line.

    The line must be the only one and carry this evaluation's nonce (sent on the runner's stdin): a
    candidate running inside the evaluator's process can print a line, but it does not know the nonce.
    """
    tail = _tail(result.stderr)
    if result.error:
        # The backend failed, not the candidate: nothing is recorded, so a resume evaluates it again.
        raise SandboxError(result.error)
    reason = result.killed_reason
    if reason == "timeout":
        return Outcome(
            "timeout",
            None,
            {},
            None,
            f"killed at the time limit (wall clock or CPU time) after {result.wall_s:.1f} s",
            tail,
            result.wall_s,
        )
    if reason == "output_limit":
        return Outcome(
            "output_limit",
            None,
            {},
            None,
            "killed for printing more than the output limit",
            tail,
            result.wall_s,
        )
    if reason == "memory_limit":
        return Outcome(
            "memory_limit", None, {}, None, "killed for exceeding the memory limit", tail, result.wall_s
        )
    lines = [ln for ln in result.stdout.decode(errors="replace").splitlines() if ln.startswith(RESULT_MARK)]
    if not lines:
        why = f"the evaluation ended with exit code {result.exit_code} and no result"
        return Outcome("failed", None, {}, None, why, tail, result.wall_s)
    if len(lines) > 1:
        return Outcome(
            "failed", None, {}, None, f"{len(lines)} result lines: a forged result", tail, result.wall_s
        )
    try:
        payload = json.loads(lines[0][len(RESULT_MARK) :])
    except json.JSONDecodeError:
        return Outcome(
            "failed", None, {}, None, "the runner's result line was not valid JSON", tail, result.wall_s
        )
    if not isinstance(payload, dict) or payload.get("nonce") != nonce:
        why = "a result line without this evaluation's nonce: a forged result"
        return Outcome("failed", None, {}, None, why, tail, result.wall_s)
    if payload.get("status") == "ok" and result.exit_code != 0:
        why = f"the runner reported a score but exited with code {result.exit_code}"
        return Outcome("failed", None, {}, None, why, tail, result.wall_s)
    if payload.get("status") != "ok":
        failure = payload.get("error", "unknown error")
        if payload.get("kind") == "evaluator":
            # The evaluator's own bug (not CandidateError): recorded apart, never charged to the candidate.
            failure += "\n" + (payload.get("traceback") or "")[-1500:]
            return Outcome("evaluator_failed", None, {}, None, failure.strip(), tail, result.wall_s)
        return Outcome("failed", None, {}, None, failure, tail, result.wall_s)
    metrics = payload.get("metrics") or {}
    timed = metrics.get("timed_wall_s")
    if isinstance(timed, float) and timed > result.wall_s:
        # Timing tasks report how long their timed region ran; it cannot exceed what the host saw.
        why = f"the evaluator claims {timed:.3f} s of timed work in a {result.wall_s:.3f} s run: timer tampering"
        return Outcome("failed", None, metrics, None, why, tail, result.wall_s)
    files = payload.get("files") if isinstance(payload.get("files"), dict) else None
    return Outcome(
        "ok",
        float(payload["score"]),
        metrics,
        payload.get("feedback"),
        None,
        tail,
        result.wall_s,
        files=files,
    )


def runner_job(
    task: Task,
    candidate_dir: Path,
    split: str,
    seed: int,
    labels: dict[str, str],
    stage: str | None = None,
    nonce: str = "",
    runner: Path | None = None,
    attachment: Attachment | None = None,
) -> SandboxJob:
    """The sandbox job that runs the trusted runner on one candidate file or folder (at a cheap stage, if named)."""
    extra: tuple[str, ...] = ()
    scoring = task.spec.openevolve
    if scoring is not None:
        # OpenEvolve's contract: evaluator.py's evaluate(program_path), fitness as OpenEvolve computes it.
        options = {"cascade": scoring.cascade, "thresholds": scoring.thresholds, "features": scoring.features}
        extra = ("--openevolve", json.dumps(options))
    return runner_sandbox_job(
        task.path,
        task.spec.candidate,
        candidate_dir,
        split,
        seed,
        task_limits(task),
        labels,
        stage,
        nonce,
        attachment,
        runner=runner,
        extra_args=extra,
    )


def runner_sandbox_job(
    evaluator_dir: Path,
    candidate: str,
    candidate_dir: Path,
    split: str,
    seed: int,
    limits: Limits,
    labels: dict[str, str],
    stage: str | None = None,
    nonce: str = "",
    attachment: Attachment | None = None,
    runner: Path | None = None,
    extra_args: tuple[str, ...] = (),
) -> SandboxJob:
    """The runner on `candidate` in candidate_dir, with the evaluate.py of evaluator_dir (a task, or the mutation's).

    runner: the runner folder to mount (default: this install's; a Ray node's shipped copy).
    """
    argv = (
        (
            PYTHON,
            "-I",
            "-B",
            f"{RUNNER_MOUNT}/runner.py",
            "--task",
            TASK_MOUNT,
            "--candidate",
            f"{CANDIDATE_MOUNT}/{candidate}",
            "--split",
            split,
            "--seed",
            str(seed),
        )
        + (("--stage", stage) if stage else ())
        + extra_args
    )
    mounts = (
        Mount(evaluator_dir, TASK_MOUNT),
        Mount(runner or sandboxes_dir(), RUNNER_MOUNT),
        Mount(candidate_dir, CANDIDATE_MOUNT),
    )
    env: dict[str, str] = {}
    if attachment is not None:
        mounts += (attachment.mount,)
        env = dict(attachment.env)
    return SandboxJob(
        argv=argv,
        mounts=mounts,
        limits=limits,
        labels=labels,
        stdin=f"{nonce}\n".encode(),
        env=env,
    )


async def evaluate_once(
    sandbox: Sandbox,
    task: Task,
    code: str,
    split: str,
    seed: int,
    labels: dict[str, str] | None = None,
    stage: str | None = None,
    runner: Path | None = None,
    agent: AgentSessions | None = None,
) -> Outcome:
    """Evaluate a program once on a split with a seed, in a fresh sandbox.

    runner: the shipped runner folder (default: this install's); agent: gateway sessions for agent tasks.
    """
    candidate_dir = Path(tempfile.mkdtemp(prefix="discovery-cand-"))
    try:
        # World-readable: the sandbox runs as an unprivileged user.
        candidate_dir.chmod(0o755)
        # A folder candidate's tree goes under its folder name; a single file's one-entry tree is that file.
        root = candidate_dir / task.spec.candidate if task.folder else candidate_dir
        root.mkdir(mode=0o755, exist_ok=True)
        write_tree(root, task.tree_of(code), mode=0o444)
        nonce = secrets.token_hex(16)
        if agent is None:
            result = await sandbox.run(
                runner_job(task, candidate_dir, split, seed, labels or {}, stage, nonce, runner)
            )
            usage: dict[str, float] = {}
        else:
            async with agent(split, seed) as attachment:
                job = runner_job(
                    task, candidate_dir, split, seed, labels or {}, stage, nonce, runner, attachment
                )
                result = await sandbox.run(job)
            usage = attachment.usage
    finally:
        shutil.rmtree(candidate_dir, ignore_errors=True)
    outcome = parse_result(result, nonce)
    if usage:
        # What the agent spent through the gateway, beside its score.
        outcome = dataclasses.replace(outcome, metrics={**outcome.metrics, **usage})
    return outcome


async def evaluate(
    sandbox: Sandbox,
    task: Task,
    code: str,
    split: str | None = None,
    labels: dict[str, str] | None = None,
    runner: Path | None = None,
    agent: AgentSessions | None = None,
) -> Outcome:
    """Evaluate with the task's repeats (seeds seed, seed+1, ...); the score is their mean."""
    split = split or task.spec.evaluation.train_split
    first_seed = task.spec.evaluation.seed
    outcomes = []
    for repeat in range(task.spec.evaluation.repeats):
        outcome = await evaluate_once(
            sandbox, task, code, split, first_seed + repeat, labels, runner=runner, agent=agent
        )
        if outcome.status != "ok":
            return outcome
        outcomes.append(outcome)
    if len(outcomes) == 1:
        return outcomes[0]
    scores = [o.score for o in outcomes]
    metrics = dict(outcomes[0].metrics)
    metrics.update(score=statistics.fmean(scores), score_stdev=statistics.stdev(scores), repeats=len(scores))
    return Outcome(
        "ok",
        statistics.fmean(scores),
        metrics,
        outcomes[0].feedback,
        None,
        outcomes[-1].output_tail,
        sum(o.wall_s for o in outcomes),
    )
