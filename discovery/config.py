"""A run's configuration: validated once, stored in the archive, and reused as-is on resume."""

from __future__ import annotations

import math
from typing import Any, Literal

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


# Model names with a meaning of their own: models discovery serves itself on 127.0.0.1.
LOCAL_MODEL = "local"  # the embedded default local model
LOCAL_PREFIX = "local:"  # local:NAME (a pinned model) or local:PATH (a .gguf file)

# Defaults for runs on a small local model (2 CPU cores, 135M-1.5B parameters): they cannot write
# reliable diffs and rewrite whole programs when shown them, so they see and rewrite only the EVOLVE
# block; a reply cap keeps one rambling reply from taking many minutes (2-13 tokens/s on 2 shared
# cores); no inspirations keeps the prompt short (prefill is a third to a half of a call here); a
# hotter temperature makes them copy the parent back less often; a call may take minutes, and a
# timeout would throw the work away, so the limit is long (the token cap bounds a call anyway).
LOCAL_DEFAULTS: dict[str, object] = {
    "reply_format": "block",
    "max_tokens": 1024,
    "inspirations": 0,
    "temperature": 1.0,
    "llm_timeout_s": 1200,
}


def is_local_model(name: str) -> bool:
    """True for `local`, `local:NAME` and `local:PATH`: models discovery serves itself."""
    return name == LOCAL_MODEL or name.startswith(LOCAL_PREFIX)


def model_defaults(model_names: list[str]) -> dict[str, object]:
    """Run options whose default depends on the models: LOCAL_DEFAULTS for a local model, else none."""
    return dict(LOCAL_DEFAULTS) if any(is_local_model(n) for n in model_names) else {}


# Search features best-of-n switches off, and the value that means "off" for each.
SEARCH_FEATURES_OFF = {
    "islands": 1,
    "map_elites": None,
    "crossover_rate": 0.0,
    "reflection": False,
    "novelty_threshold": None,
    "bandit": "off",
    "repair": False,
    "cascade": None,
    "agent_archive": 1,
}
# Repairs in a row of one failure when --repair-turns is unset: agents get ADAS's three debug turns.
REPAIR_TURNS_DEFAULT = 1
REPAIR_TURNS_AGENTS = 3


class RunConfig(BaseModel):
    """Everything that defines a discovery run: every option's type, default, bounds and help live here."""

    model_config = ConfigDict(extra="forbid")
    task: str
    models: list[ModelConfig] = Field(min_length=1)
    budget: int = Field(
        default=20, ge=1, description="LLM calls; failed, empty and interrupted calls count too"
    )
    max_cost: float | None = Field(
        default=None, gt=0, description="stop proposing once this many USD are spent"
    )
    max_time: float | None = Field(
        default=None, gt=0, description="stop after this many seconds (the run stays resumable)"
    )
    strategy: Literal["dgm", "best-of-n"] = Field(
        default="dgm",
        description="parent selection; best-of-n draws every child from the seed and turns every search feature off",
    )
    reply_format: Literal["diff", "full", "block"] = Field(
        default="diff",
        description="what the LLM replies with",
    )
    sandbox: Literal["auto", "docker", "bwrap", "process"] = Field(
        default="auto", description="isolation backend (auto: docker, else bubblewrap)"
    )
    executor: Literal["local", "ray"] = Field(
        default="local",
        description="where evaluations run: here, or as tasks on a Ray cluster (see README, Scaling out)",
    )
    ray_address: str = Field(
        default="auto",
        min_length=1,
        description="Ray cluster to join with --executor ray (auto: the running one)",
    )
    llm_concurrency: int = Field(default=2, ge=1, le=256, description="LLM calls in flight")
    eval_slots: int = Field(default=2, ge=1, le=256, description="evaluations in flight")
    temperature: float = Field(default=0.8, ge=0, le=2, description="sampling temperature")
    max_tokens: int = Field(
        default=4096,
        ge=64,
        description="reply length cap in tokens",
    )
    llm_timeout_s: float = Field(
        default=300, gt=0, description="seconds one LLM call may take before it is retried"
    )
    seed: int = Field(default=0, description="seed of the run's own random choices")
    inspirations: int = Field(default=1, ge=0, le=8, description="other programs shown beside the parent")
    # --- search options (see README, "Search options") ---
    islands: int = Field(default=1, ge=1, le=64, description="populations evolving apart (1: none)")
    migration_every: int = Field(default=20, ge=1, description="evaluated children between migrations")
    island_patience: int = Field(
        default=30, ge=1, description="children without improvement before a weak island resets"
    )
    map_elites: str | None = Field(
        default=None, description="MAP-Elites grid, e.g. 'length:8' or 'length:8,metric:NAME:8:LO:HI'"
    )
    crossover_rate: float = Field(
        default=0.1, ge=0, le=1, description="share of proposals that combine two parents"
    )
    reflection: bool = Field(default=False, description="ReEvo short- and long-term reflection")
    reflection_every: int = Field(default=5, ge=1, description="short-term reflections per long-term one")
    # Off by default: the budget counts LLM calls, and a rejected proposal spends one and yields
    # nothing. Token similarity cannot tell a changed constant (which changes the score) from a
    # copy, so at 0.95 the check rejected most constant-tuning edits (README, "Benchmarks").
    # Exact duplicates are rejected for free by hash whatever this is.
    novelty_threshold: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="reject proposals at least this similar to an archived one, e.g. 0.95",
    )
    novelty_resamples: int = Field(
        default=3, ge=0, description="novelty rejections in a row before a proposal is evaluated anyway"
    )
    bandit: Literal["off", "ucb", "thompson"] = Field(
        default="off", description="choose operator and model by a bandit"
    )
    repair: bool = Field(default=True, description="feed a failure back to fix it")
    repair_turns: int | None = Field(
        default=None,
        ge=1,
        le=10,
        description="repairs in a row of one failure (a repair that fails again is repaired again)",
        json_schema_extra={"default_text": f"{REPAIR_TURNS_DEFAULT} ({REPAIR_TURNS_AGENTS} for agent tasks)"},
    )
    cascade: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="run the task's quick stage first; pass when above this quantile",
    )
    promotion_repeats: int = Field(
        default=6, ge=1, le=100, description="held-out repeats in the promotion gate"
    )
    promotion_alpha: float = Field(
        default=0.05, gt=0, lt=1, description="significance level of the promotion gate"
    )
    # --- agent tasks (tasks with an [agent] table; see README, "Agent tasks") ---
    agent_model: str = Field(
        default="local",
        min_length=1,
        description="litellm model the candidates' agents call through the gateway ('local': the embedded model)",
    )
    agent_api_base: str | None = Field(default=None, description="base URL of the agent model's server")
    agent_archive: int = Field(
        default=8,
        ge=1,
        le=50,
        description="agent tasks: agents in a mutation prompt (the parent and the best others), with scores and 95 % intervals",
    )
    agent_reflexion: int = Field(
        default=1,
        ge=0,
        le=3,
        description="agent tasks: turns in which the model checks and fixes a proposed agent before it runs",
    )
    mutator: str | None = Field(
        default=None,
        min_length=1,
        description="a coding agent makes the children: RUN[:ID] (default: that run's champion) or 'self'",
    )

    def repairs_in_a_row(self, agent_task: bool) -> int:
        """How many repairs in a row one failure gets: the option, else the default for the task's kind."""
        if self.repair_turns is not None:
            return self.repair_turns
        return REPAIR_TURNS_AGENTS if agent_task else REPAIR_TURNS_DEFAULT

    @model_validator(mode="before")
    @classmethod
    def _defaults_for_models(cls, data: Any) -> Any:
        """Fill options the caller left out with the defaults of the run's models (see model_defaults)."""
        if not isinstance(data, dict):
            return data
        names = [_model_name(m) or "" for m in data.get("models") or []]
        return {
            **model_defaults(names),
            **{k: v for k, v in data.items() if v is not None or k not in LOCAL_DEFAULTS},
        }

    @model_validator(mode="after")
    def _baseline_turns_search_off(self) -> RunConfig:
        if self.strategy == "best-of-n":
            for name, off in SEARCH_FEATURES_OFF.items():
                object.__setattr__(self, name, off)
        return self

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
        if any(is_local_model(m.name) for m in self.models) and len(self.models) > 1:
            raise ValueError(
                "a local model (local, local:NAME, local:PATH) cannot be mixed with other models in one run"
            )
        return self


def _model_name(model: Any) -> str | None:
    """The name of a model entry given as a ModelConfig or a plain dict."""
    return (
        model.name
        if isinstance(model, ModelConfig)
        else model.get("name")
        if isinstance(model, dict)
        else None
    )
