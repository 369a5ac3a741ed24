"""A run's configuration: validated once, stored in the archive, and reused as-is on resume."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


def min_repeats(alpha: float) -> int:
    """The fewest paired repeats for which the exact sign-flip test can reach p < alpha."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    # 2^-n < alpha  <=>  n > log2(1/alpha).
    return math.floor(math.log2(1 / alpha)) + 1


class ModelConfig(BaseModel):
    """One model of the ensemble (stored form of ModelSpec; no API keys are ever stored)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0)
    api_base: str | None = None


class RunConfig(BaseModel):
    """Everything that defines a discovery run."""

    model_config = ConfigDict(extra="forbid")
    task: str
    models: list[ModelConfig] = Field(min_length=1)
    budget: int = Field(default=20, ge=1, description="LLM calls")
    max_cost: float | None = Field(default=None, gt=0, description="USD")
    max_time: float | None = Field(default=None, gt=0, description="seconds")
    strategy: Literal["dgm", "best-of-n"] = "dgm"
    reply_format: Literal["diff", "full", "block"] = "diff"
    sandbox: Literal["auto", "docker", "bwrap", "process"] = "auto"
    llm_concurrency: int = Field(default=2, ge=1, le=256)
    eval_slots: int = Field(default=2, ge=1, le=256)
    temperature: float = Field(default=0.8, ge=0, le=2)
    max_tokens: int = Field(default=4096, ge=64)
    llm_timeout_s: float = Field(default=300, gt=0)
    seed: int = 0
    inspirations: int = Field(default=1, ge=0, le=8)
    # --- search options (see README, "Search options") ---
    islands: int = Field(default=1, ge=1, le=64)
    migration_every: int = Field(default=20, ge=1, description="evaluated children between migrations")
    island_patience: int = Field(default=30, ge=1, description="children without improvement before a reset")
    map_elites: str | None = Field(
        default=None, description="feature grid, e.g. 'length:8,metric:NAME:8:LO:HI'"
    )
    crossover_rate: float = Field(default=0.1, ge=0, le=1)
    reflection: bool = False
    reflection_every: int = Field(default=5, ge=1, description="short-term reflections per long-term one")
    # Off by default: the budget counts LLM calls, and a rejected proposal spends one and yields
    # nothing. Token similarity cannot tell a changed constant (which changes the score) from a
    # copy, so at 0.95 the check rejected most constant-tuning edits (README, "Benchmarks").
    # Exact duplicates are rejected for free by hash whatever this is.
    novelty_threshold: float | None = Field(
        default=None, gt=0, le=1, description="reject proposals this similar to an archived one (off)"
    )
    novelty_resamples: int = Field(default=3, ge=0)
    bandit: Literal["off", "ucb", "thompson"] = "off"
    repair: bool = True
    cascade: float | None = Field(default=None, ge=0, le=1, description="quantile of the quick stage to pass")
    promotion_repeats: int = Field(default=6, ge=1, le=100)
    promotion_alpha: float = Field(default=0.05, gt=0, lt=1)

    @model_validator(mode="after")
    def _promotion_can_pass(self) -> RunConfig:
        needed = min_repeats(self.promotion_alpha)
        if self.promotion_repeats < needed:
            raise ValueError(
                f"promotion_repeats {self.promotion_repeats} can never reach p < {self.promotion_alpha}; "
                f"use at least {needed}"
            )
        return self

    @model_validator(mode="after")
    def _local_alone(self) -> RunConfig:
        if any(m.name == "local" for m in self.models) and len(self.models) > 1:
            raise ValueError("the embedded 'local' model cannot be mixed with other models in one run")
        return self
