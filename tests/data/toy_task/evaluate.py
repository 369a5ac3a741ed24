"""Toy evaluator: imports the candidate in-process (fine for a toy) and scores solve()."""

import importlib.util
import math

from discovery_harness import CandidateError


def evaluate(candidate_path, split, seed):
    spec = importlib.util.spec_from_file_location("candidate", candidate_path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        x = module.solve()
    except Exception as exc:  # the candidate's own error, reported as the candidate's
        raise CandidateError(f"solve() raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(x, (int, float)) or not math.isfinite(x):
        raise CandidateError(f"solve() must return a finite number, got {x!r}")
    return {"score": -((x - 3.0) ** 2), "x": x, "feedback": f"solve() returned {x}"}
