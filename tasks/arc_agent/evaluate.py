"""Trusted evaluator: an agent's forward(task) -> code of `transform(grid)`, scored on ARC-AGI-1 tasks.

The agent runs in a child process and reaches the run's model only through the LLM gateway
(`from discovery_harness import llm`), under the task's [agent] budget; discovery_harness.agent_eval
runs it over the tasks (time limits, errors, the per-task call record). forward() gets a task's
demonstration pairs and test inputs, never the test outputs, and returns Python source that
defines transform(grid) -> grid. That source is as untrusted as the agent: it runs in a fresh child
process of its own (discovery_harness.programs), with no gateway access, killed after
TRANSFORM_TIMEOUT_S (import and every test input together). A task is solved when transform()
returns exactly the expected grid (a list of rows of ints 0-9) for every test input.

Score: accuracy over the tasks (maximised), with its 95 % bootstrap interval.
"""

from __future__ import annotations

from pathlib import Path

from arc_data import ArcTask, make_tasks
from discovery_harness import CandidateError, programs
from discovery_harness.agent_eval import Verdict, score_agent

TRANSFORM_TIMEOUT_S = 3.0
MAX_SOURCE_CHARS = 100_000


def as_grid(value: object) -> list[list[int]] | None:
    """The value as a grid when it is one (non-empty rectangular rows of ints 0-9), else None."""
    if not isinstance(value, list) or not value or not all(isinstance(r, list) and r for r in value):
        return None
    if len({len(r) for r in value}) != 1:
        return None
    if not all(type(c) is int and 0 <= c <= 9 for r in value for c in r):
        return None
    return value


def judge(task: ArcTask, answer: object, seconds_left: float) -> Verdict:
    """Run the agent's transform on the test inputs, bounded in time; solved when every output is exact."""
    if not isinstance(answer, str) or not answer.strip():
        return Verdict(
            False, f"{task.id}: forward() returned {type(answer).__name__}, not transform() source"
        )
    if len(answer) > MAX_SOURCE_CHARS:
        return Verdict(False, f"{task.id}: the transform source is longer than {MAX_SOURCE_CHARS} characters")
    timeout_s = min(TRANSFORM_TIMEOUT_S, seconds_left)
    if timeout_s <= 0:
        return Verdict(False, f"{task.id}: no time left to run transform()")
    try:
        outputs = programs.run_function(
            programs.extract_python(answer), "transform", [(g,) for g in task.test_inputs], timeout_s
        )
    except CandidateError as exc:  # also CandidateTimeout
        return Verdict(False, f"{task.id}: transform() failed: {str(exc)[:300]}")
    for k, (got, expected) in enumerate(zip(outputs, task.test_outputs, strict=True)):
        grid = as_grid(got)
        if grid is None:
            return Verdict(False, f"{task.id}: test {k}: transform() returned no grid: {str(got)[:120]}")
        if grid != expected:
            return Verdict(False, f"{task.id}: test {k}: wrong grid ({len(grid)}x{len(grid[0])})")
    return Verdict(True, "")


def evaluate(candidate_path, split="train", seed=0, stage=None):
    tasks = make_tasks(split, seed, stage)
    return score_agent(
        candidate_path, tasks, lambda t: (t.shown(),), judge, seed, Path(__file__).parent, "tasks"
    )
