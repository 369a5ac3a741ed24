"""A stand-in for openevolve.evaluation_result: the result type an OpenEvolve evaluator may return."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class EvaluationResult:
    """Metrics (numbers the fitness is computed from) and artifacts (text fed back to the next prompt)."""

    metrics: dict[str, Any]
    artifacts: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, metrics: dict[str, Any]) -> EvaluationResult:
        """A result holding only metrics."""
        return cls(metrics=metrics)

    def to_dict(self) -> dict[str, Any]:
        """The metrics alone, as older evaluators returned them."""
        return self.metrics

    def has_artifacts(self) -> bool:
        """Whether any artifact was attached."""
        return bool(self.artifacts)

    def get_artifact_keys(self) -> list[str]:
        """The artifact names."""
        return list(self.artifacts)

    def get_artifact_size(self, key: str) -> int:
        """The size in bytes of one artifact (0 when absent)."""
        value = self.artifacts.get(key)
        if value is None:
            return 0
        return len(value) if isinstance(value, bytes) else len(str(value).encode())

    def get_total_artifact_size(self) -> int:
        """The size in bytes of all artifacts."""
        return sum(self.get_artifact_size(key) for key in self.artifacts)
