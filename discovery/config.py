"""A run's configuration: validated once, stored in the archive, and reused as-is on resume."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from discovery.llm import ModelSpec


class ModelConfig(BaseModel):
    """One model of the ensemble (stored form of ModelSpec; no API keys are ever stored)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0)
    api_base: str | None = None

    def spec(self) -> ModelSpec:
        return ModelSpec(self.name, self.weight, self.api_base)


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

    @model_validator(mode="after")
    def _local_alone(self) -> RunConfig:
        if any(m.name == "local" for m in self.models) and len(self.models) > 1:
            raise ValueError("the embedded 'local' model cannot be mixed with other models in one run")
        return self
