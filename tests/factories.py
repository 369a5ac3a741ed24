"""Test data builders shared across the suite: candidates with defaults for every field."""

from __future__ import annotations

import dataclasses
from typing import Any

from discovery.domain import Candidate


def make_candidate(
    id: int, fitness: float | None = None, *, code: str | None = None, status: str = "ok", **fields: Any
) -> Candidate:
    """A candidate with plain defaults (operator diff, score = fitness); any field can be overridden."""
    base = Candidate(
        id=id,
        parent_id=None,
        call_id=None,
        operator="diff",
        code=code if code is not None else f"x = {id}",
        status=status,
        score=fitness,
        fitness=fitness,
        metrics={},
        feedback=None,
        failure=None,
        output_tail=None,
        sandbox=None,
        created_at=0.0,
        eval_wall_s=None,
    )
    return dataclasses.replace(base, **fields)
