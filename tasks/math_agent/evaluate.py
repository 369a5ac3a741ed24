"""Trusted evaluator: an agent's forward(question) -> answer on generated arithmetic word problems.

The agent runs in a child process and reaches the run's model only through the LLM gateway
(`from discovery_harness import llm`), under the task's [agent] budget; discovery_harness.agent_eval
runs it over the questions (see there for time limits, errors and the per-question call record).
An answer is right when the last number in it equals the exact integer answer. A question whose
forward() raises (e.g. over budget) or returns no number counts as wrong.

Score: accuracy (maximised). Metrics: correct, errors and a 95 % percentile-bootstrap interval of
the accuracy (2000 resamples, seeded), so a gain can be read against its noise.
"""

from __future__ import annotations

import re
from pathlib import Path

from discovery_harness.agent_eval import Verdict, score_agent
from problems import Problem, make_problems

NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


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


def judge(problem: Problem, answer: object, _seconds_left: float) -> Verdict:
    """Right when the answer's number equals the exact integer answer."""
    value = parse_answer(answer)
    note = f"Q: {problem.question}\n  expected {problem.answer}, got {str(answer)[:200]!r}"
    return Verdict(value is not None and value == problem.answer, note)


def evaluate(candidate_path, split="train", seed=0, stage=None):
    problems = make_problems(split, seed, stage)
    return score_agent(
        candidate_path, problems, lambda p: (p.question,), judge, seed, Path(__file__).parent, "questions"
    )
