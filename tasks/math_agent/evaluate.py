"""Trusted evaluator: an agent's forward(question) -> answer on generated arithmetic word problems.

The agent runs in a child process (discovery_harness.CandidateProcess) and reaches the run's model
only through the LLM gateway (`from discovery_harness import llm`), under the task's [agent]
budget. Each question is one call to forward(); its index is sent with every LLM call it makes,
so `discovery archive candidate RUN ID` groups the calls by question. An answer is right when the
last number in it equals the exact integer answer. A question whose forward() raises (e.g. over
budget) or returns no number counts as wrong.

Score: accuracy (maximised). Metrics: correct, errors and a 95 % percentile-bootstrap interval of
the accuracy (2000 resamples, seeded), so a gain can be read against its noise. Running out of
time (a slow model) scores the questions answered so far; an agent that raises on every question
is a failure, with its traceback.
"""

from __future__ import annotations

import random
import re
import time
import tomllib
from pathlib import Path

from discovery_harness import CandidateError, CandidateProcess, CandidateTimeout
from problems import make_problems

NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
BOOTSTRAP_RESAMPLES = 2000


def parse_answer(value: object) -> float | None:
    """The agent's numeric answer: a number, or the last number in a string (commas and $ allowed)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        return None
    found = NUMBER.findall(value.replace("$", ""))
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def bootstrap_interval(correct: list[int], seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of 0/1 outcomes."""
    if not correct:
        return 0.0, 0.0
    r = random.Random(f"bootstrap:{seed}")
    n = len(correct)
    means = sorted(sum(r.choices(correct, k=n)) / n for _ in range(BOOTSTRAP_RESAMPLES))
    tail = (1 - level) / 2
    return means[int(tail * BOOTSTRAP_RESAMPLES)], means[int((1 - tail) * BOOTSTRAP_RESAMPLES) - 1]


def _time_budget_s() -> float:
    """Seconds the agent may use in all: the task's timeout, less a margin to report before a kill."""
    spec = tomllib.loads((Path(__file__).parent / "task.toml").read_text())
    return max(1.0, 0.85 * float(spec.get("resources", {}).get("timeout_s", 60.0)) - 2.0)


def evaluate(candidate_path, split="train", seed=0, stage=None):
    problems = make_problems(split, seed, stage)
    deadline = time.monotonic() + _time_budget_s()
    correct, errors, crashes, first_error, shown = [], 0, 0, None, []
    with CandidateProcess(candidate_path, timeout_s=30, import_harness=True) as proc:
        for index, problem in enumerate(problems):
            proc.call_env = {"DISCOVERY_LLM_SAMPLE": str(index)}
            left = deadline - time.monotonic()
            answer, error = None, None
            if left <= 0:
                error = "no time left"
            else:
                try:
                    answer = proc.call("forward", problem.question, timeout_s=left)
                except CandidateTimeout as exc:
                    error = str(exc)  # out of time: this and the remaining questions count as wrong
                except CandidateError as exc:
                    error = str(exc)
                    crashes += 1
            if error is not None:
                errors += 1
                first_error = first_error or error
            value = parse_answer(answer)
            correct.append(int(value is not None and value == problem.answer))
            if len(shown) < 3 and not correct[-1]:
                shown.append(f"Q: {problem.question}\n  expected {problem.answer}, got {str(answer)[:200]!r}")
    if crashes == len(problems):
        # A broken agent (not a slow one): a failure with its traceback, so a repair can see it.
        raise CandidateError(f"forward() raised on every question; the first failure: {first_error}")
    low, high = bootstrap_interval(correct, seed)
    accuracy = sum(correct) / len(correct)
    feedback = (
        f"accuracy {accuracy:.3f} (95% CI {low:.3f}-{high:.3f}) on {len(correct)} questions, {errors} errors."
    )
    if first_error:
        feedback += f"\nFirst error: {first_error[:800]}"
    if shown:
        feedback += "\nWrong answers:\n" + "\n".join(shown)
    return {
        "score": accuracy,
        "accuracy": accuracy,
        "accuracy_ci_low": low,
        "accuracy_ci_high": high,
        "correct": sum(correct),
        "questions": len(correct),
        "errors": errors,
        "feedback": feedback,
    }
