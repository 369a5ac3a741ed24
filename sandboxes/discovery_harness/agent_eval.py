"""Score an agent task's candidate: call its forward() on each sample in one child, judge, sum up with an interval.

Shared by the agent tasks' evaluators (tasks/math_agent, tasks/arc_agent). The agent runs in a
child process (CandidateProcess with the harness importable, so it reaches the LLM gateway); each
sample's index is sent with every LLM call it makes (DISCOVERY_LLM_SAMPLE), so
`discovery archive candidate RUN ID` groups the calls by sample. A sample whose forward() raises
or times out counts as wrong. The whole evaluation keeps to the task's time limit, less a margin
to report before the sandbox is killed: running out of time scores the samples answered so far.
An agent that raises on every sample is a failure (CandidateError with its traceback, for repair).

    def judge(sample, answer, seconds_left) -> Verdict: ...
    metrics = score_agent(candidate_path, samples, lambda s: (s.question,), judge, seed, task_dir)
"""

from __future__ import annotations

import random
import time
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from discovery_harness.candidate import CandidateProcess, CandidateTimeout
from discovery_harness.errors import CandidateError

BOOTSTRAP_RESAMPLES = 2000
IMPORT_TIMEOUT_S = 30.0
SHOWN_WRONG = 3
Sample = TypeVar("Sample")


class Verdict(NamedTuple):
    """The judge's word on one answer: right or not, and a line for the feedback when it is wrong."""

    correct: bool
    note: str


def bootstrap_interval(correct: Sequence[int], seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of 0/1 outcomes (seeded, 2000 resamples)."""
    if not correct:
        return 0.0, 0.0
    r = random.Random(f"bootstrap:{seed}")
    n = len(correct)
    means = sorted(sum(r.choices(correct, k=n)) / n for _ in range(BOOTSTRAP_RESAMPLES))
    tail = (1 - level) / 2
    return means[int(tail * BOOTSTRAP_RESAMPLES)], means[int((1 - tail) * BOOTSTRAP_RESAMPLES) - 1]


def time_budget_s(task_dir: Path) -> float:
    """Seconds the agent may use in all: the task's timeout, less a margin to report before a kill."""
    spec = tomllib.loads((task_dir / "task.toml").read_text())
    return max(1.0, 0.85 * float(spec.get("resources", {}).get("timeout_s", 60.0)) - 2.0)


def score_agent(
    candidate_path: str,
    samples: Sequence[Sample],
    ask: Callable[[Sample], tuple[Any, ...]],
    judge: Callable[[Sample, Any, float], Verdict],
    seed: int,
    task_dir: Path,
    noun: str = "questions",
) -> dict[str, Any]:
    """Run forward(*ask(sample)) on every sample, judge each answer, and return the task's metrics."""
    deadline = time.monotonic() + time_budget_s(task_dir)
    correct: list[int] = []
    errors, crashes, first_error, wrong = 0, 0, None, []
    with CandidateProcess(candidate_path, timeout_s=IMPORT_TIMEOUT_S, import_harness=True) as proc:
        for index, sample in enumerate(samples):
            proc.call_env = {"DISCOVERY_LLM_SAMPLE": str(index)}
            answer, error, crashed = _ask(proc, ask(sample), deadline - time.monotonic())
            errors += error is not None
            crashes += crashed
            first_error = first_error or error
            verdict = (
                judge(sample, answer, deadline - time.monotonic())
                if error is None
                else Verdict(False, error[:200])
            )
            correct.append(int(verdict.correct))
            if not verdict.correct and len(wrong) < SHOWN_WRONG:
                wrong.append(verdict.note)
    if samples and crashes == len(samples):
        raise CandidateError(f"forward() raised on every one of the {noun}; the first failure: {first_error}")
    return accuracy_metrics(correct, errors, first_error, wrong, seed, noun)


def _ask(proc: CandidateProcess, args: tuple[Any, ...], left_s: float) -> tuple[Any, str | None, bool]:
    """One forward() call: (answer, error or None, whether the agent itself raised)."""
    if left_s <= 0:
        return None, "no time left", False
    try:
        return proc.call("forward", *args, timeout_s=left_s), None, False
    except CandidateTimeout as exc:
        return None, str(exc), False  # out of time: this and the remaining samples count as wrong
    except CandidateError as exc:
        return None, str(exc), True


def accuracy_metrics(
    correct: list[int], errors: int, first_error: str | None, wrong: list[str], seed: int, noun: str
) -> dict[str, Any]:
    """Accuracy with its 95 % bootstrap interval, counts, and feedback text for the mutation prompt."""
    low, high = bootstrap_interval(correct, seed)
    accuracy = sum(correct) / len(correct) if correct else 0.0
    feedback = (
        f"accuracy {accuracy:.3f} (95% CI {low:.3f}-{high:.3f}) on {len(correct)} {noun}, {errors} errors."
    )
    if first_error:
        feedback += f"\nFirst error: {first_error[:800]}"
    if wrong:
        feedback += "\nWrong answers:\n" + "\n".join(wrong)
    return {
        "score": accuracy,
        "accuracy": accuracy,
        "accuracy_ci_low": low,
        "accuracy_ci_high": high,
        "correct": sum(correct),
        noun: len(correct),
        "errors": errors,
        "feedback": feedback,
    }
