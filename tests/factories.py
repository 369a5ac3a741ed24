"""Test data builders shared across the suite: candidates with defaults for every field."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from discovery.config import ModelConfig, RunConfig
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


def agent_run_config(task: Path, mutation: Any, agent: Any, **options: Any) -> RunConfig:
    """A run on an agent task against two fake servers: `mutation` for the search, `agent` for the agents."""
    settings: dict[str, Any] = {"budget": 1, "reply_format": "block", "sandbox": "process", **options}
    return RunConfig(
        task=str(task),
        models=[ModelConfig(name="openai/fake", api_base=mutation.api_base)],
        agent_model="openai/fake",
        agent_api_base=agent.api_base,
        **settings,
    )
