"""The search's vocabulary: a candidate, its status and the operator that made it. No I/O."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from typing import Any


class Status(enum.StrEnum):
    """Where a candidate stands. Only OK candidates are ever used as parents."""

    PENDING = "pending"
    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"
    OUTPUT_LIMIT = "output_limit"
    MEMORY_LIMIT = "memory_limit"
    CASCADE_STOPPED = "cascade_stopped"  # scored on the quick stage only, below the bar: never a parent
    INFRA_FAILED = "infra_failed"  # the cluster lost its evaluation too often: not the candidate's fault
    # The task's evaluator raised its own error (not CandidateError): not the candidate's fault, never repaired.
    EVALUATOR_FAILED = "evaluator_failed"
    REJECTED_DUPLICATE = "rejected_duplicate"
    REJECTED_SIMILAR = "rejected_similar"
    REJECTED_OUTSIDE_BLOCK = "rejected_outside_block"
    REJECTED_UNPARSEABLE = "rejected_unparseable"
    REJECTED_SYNTAX = "rejected_syntax"
    REJECTED_PATCH = "rejected_patch"
    # A multi-file reply touched a fixed file or a path outside the candidate's folder.
    REJECTED_FORBIDDEN = "rejected_forbidden"

    @property
    def rejected(self) -> bool:
        """Turned down before evaluation (never run)."""
        return self.value.startswith("rejected")


EVALUATED_FAILURES = (Status.FAILED, Status.TIMEOUT, Status.OUTPUT_LIMIT, Status.MEMORY_LIMIT)
REJECTIONS = tuple(s for s in Status if s.rejected)


class Operator(enum.StrEnum):
    """What an LLM call is for; the reply formats double as mutation operators."""

    SEED = "seed"
    DIFF = "diff"
    FULL = "full"
    BLOCK = "block"
    CROSSOVER = "crossover"
    REPAIR = "repair"
    AGENT = "agent"  # a coding agent (--mutator) edited the parent into the child
    REFLECT_SHORT = "reflect_short"
    REFLECT_LONG = "reflect_long"
    REFLEXION = "reflexion"  # agent tasks: a turn in which the model checks and fixes its proposed agent


REPLY_FORMATS = (Operator.DIFF, Operator.FULL, Operator.BLOCK)


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One archived program and what its evaluation found."""

    id: int
    parent_id: int | None
    call_id: int | None
    operator: str
    code: str
    status: str
    score: float | None
    fitness: float | None
    metrics: dict[str, Any]
    feedback: str | None
    failure: str | None
    output_tail: str | None
    sandbox: str | None
    created_at: float
    eval_wall_s: float | None
    island: int | None = None
    second_parent_id: int | None = None
    arm: str | None = None
    similarity: float | None = None
    stage_fitness: float | None = None
    node: str | None = None  # the cluster node that evaluated it (Ray executor)


def code_hash(normalised_code: str) -> str:
    """Content hash used to reject duplicates before evaluation."""
    return hashlib.sha256(normalised_code.encode()).hexdigest()
