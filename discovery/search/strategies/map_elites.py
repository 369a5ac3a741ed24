"""MAP-Elites: a grid over task-declared features that keeps the fittest candidate of each cell.

A feature is the program's length (non-blank, non-comment characters of its EVOLVE block) or a
numeric metric the evaluator returns. Each axis has a number of equal-width bins over [lo, hi];
values outside are clipped into the end bins. When lo or hi is not given, it is taken from the
candidates being binned, so the grid follows the archive as it grows (the grid is recomputed from
the archive each time, so nothing has to be stored). Fitness is higher-is-better.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterable
from typing import Literal

from discovery.domain import Candidate, Status
from discovery.errors import UserError
from discovery.program.blocks import evolvable

Source = Literal["length", "metric"]
Cell = tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """One axis of the grid."""

    name: str
    source: Source
    metric: str | None = None  # the metrics key when source is "metric"
    bins: int = 8
    lo: float | None = None  # None: the lowest value among the candidates
    hi: float | None = None  # None: the highest value among the candidates


def program_length(code: str) -> int:
    """Characters of the EVOLVE block that are not whitespace or full-line comments."""
    lines = (line for line in evolvable(code).splitlines() if not line.lstrip().startswith("#"))
    return sum(len("".join(line.split())) for line in lines)


def feature_value(candidate: Candidate, spec: FeatureSpec) -> float | None:
    """A candidate's value on one axis, or None when it has no usable value."""
    if spec.source == "length":
        return float(program_length(candidate.code))
    value = candidate.metrics.get(spec.metric or spec.name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _bin(value: float, spec: FeatureSpec) -> int:
    assert spec.lo is not None and spec.hi is not None
    if spec.hi <= spec.lo:
        return 0
    index = int((value - spec.lo) / (spec.hi - spec.lo) * spec.bins)
    return min(max(index, 0), spec.bins - 1)


def cell(candidate: Candidate, specs: list[FeatureSpec]) -> Cell | None:
    """The grid cell of a candidate; None when a feature is missing. Every spec needs lo and hi (see resolve)."""
    indices = []
    for spec in specs:
        if spec.lo is None or spec.hi is None:
            raise ValueError(f"feature {spec.name} has no range yet; call resolve() first")
        value = feature_value(candidate, spec)
        if value is None:
            return None
        indices.append(_bin(value, spec))
    return tuple(indices)


def _eligible(candidates: Iterable[Candidate]) -> list[Candidate]:
    return [c for c in candidates if c.status == Status.OK and c.fitness is not None]


def resolve(specs: list[FeatureSpec], candidates: Iterable[Candidate]) -> list[FeatureSpec]:
    """Specs with every missing lo/hi filled from the evaluated candidates' values (0..1 when none)."""
    pool = _eligible(candidates)
    resolved = []
    for spec in specs:
        values = [v for v in (feature_value(c, spec) for c in pool) if v is not None]
        lo = spec.lo if spec.lo is not None else (min(values) if values else 0.0)
        hi = spec.hi if spec.hi is not None else (max(values) if values else 1.0)
        resolved.append(dataclasses.replace(spec, lo=lo, hi=hi))
    return resolved


def elites(candidates: Iterable[Candidate], specs: list[FeatureSpec]) -> dict[Cell, Candidate]:
    """The fittest evaluated candidate of each occupied cell (earliest wins ties)."""
    pool = _eligible(candidates)
    resolved = resolve(specs, pool)
    grid: dict[Cell, Candidate] = {}
    for candidate in pool:
        where = cell(candidate, resolved)
        if where is None:
            continue
        held = grid.get(where)
        if (
            held is None
            or candidate.fitness > held.fitness
            or (candidate.fitness == held.fitness and candidate.id < held.id)
        ):
            grid[where] = candidate
    return grid


def sample_parent(grid: dict[Cell, Candidate], rng: random.Random) -> Candidate | None:
    """A parent drawn uniformly over occupied cells (None for an empty grid)."""
    if not grid:
        return None
    return grid[rng.choice(sorted(grid))]


def parse_specs(text: str) -> list[FeatureSpec]:
    """Parse the --map-elites option: comma-separated `length[:BINS[:LO:HI]]` or `metric:NAME[:BINS[:LO:HI]]`."""
    specs = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        fields = part.split(":")
        try:
            if fields[0] == "length" and len(fields) in (1, 2, 4):
                rest, name, metric, source = fields[1:], "length", None, "length"
            elif fields[0] == "metric" and len(fields) in (2, 3, 5) and fields[1]:
                rest, name, metric, source = fields[2:], fields[1], fields[1], "metric"
            else:
                raise ValueError
            bins = int(rest[0]) if rest else 8
            lo, hi = (float(rest[1]), float(rest[2])) if len(rest) == 3 else (None, None)
        except ValueError:
            raise UserError(
                f"bad --map-elites feature {part!r}; use length[:BINS[:LO:HI]] or metric:NAME[:BINS[:LO:HI]],"
                " e.g. length:8,metric:runtime_s:8:0:10"
            ) from None
        if bins < 1 or (lo is not None and hi is not None and not hi > lo):
            raise UserError(f"bad --map-elites feature {part!r}: need BINS >= 1 and HI > LO")
        specs.append(FeatureSpec(name, source, metric, bins, lo, hi))
    if not specs:
        raise UserError("--map-elites needs at least one feature, e.g. length:8")
    return specs
