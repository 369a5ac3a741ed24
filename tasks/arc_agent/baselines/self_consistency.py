"""ADAS baseline: self-consistency. Sample several programs, keep those right on the examples, vote on the test output."""

import collections
import json

from discovery_harness import CandidateError, llm, programs

# EVOLVE-BLOCK-START
# A code fence, never written out literally: three backticks here would end the code block of a
# reply that carries this program.
FENCE = "`" * 3


def show_grid(grid: list[list[int]]) -> str:
    """A grid as rows of digits, one row a line."""
    return "\n".join(" ".join(str(c) for c in row) for row in grid)


def show_task(task: dict) -> str:
    """The demonstration pairs and the test inputs as text."""
    parts = []
    for k, pair in enumerate(task["train"]):
        parts.append(
            f"Example {k + 1} input:\n{show_grid(pair['input'])}\nOutput:\n{show_grid(pair['output'])}"
        )
    for k, test in enumerate(task["test"]):
        parts.append(f"Test {k + 1} input:\n{show_grid(test['input'])}")
    return "\n\n".join(parts)


def forward(task: dict) -> str:
    """Five programs at temperature 0.8 (one request, n=5); the most common test output among those
    that reproduce every example wins (all programs vote when none does)."""
    replies = llm.chat(
        [
            {
                "role": "user",
                "content": show_task(task) + "\n\nThink step by step about the rule that maps each input "
                "to its output, then write `transform(grid)` (list of rows of ints 0-9 in and out) in one "
                f"{FENCE}python block.",
            }
        ],
        temperature=0.8,
        max_tokens=1024,
        n=5,
    )
    inputs = [(p["input"],) for p in task["train"]] + [(t["input"],) for t in task["test"]]
    fitting, votes = [], collections.Counter()
    for reply in replies:
        code = programs.extract_python(reply)
        try:
            outputs = programs.run_function(code, "transform", inputs, timeout_s=3)
        except CandidateError:
            continue  # a program that fails or hangs gets no vote
        fits = outputs[: len(task["train"])] == [p["output"] for p in task["train"]]
        fitting.append((fits, code, json.dumps(outputs[len(task["train"]) :])))
    if not fitting:
        return programs.extract_python(replies[0])
    pool = [f for f in fitting if f[0]] or fitting
    votes.update(answer for _, _, answer in pool)
    winner = votes.most_common(1)[0][0]
    return next(code for _, code, answer in pool if answer == winner)


# EVOLVE-BLOCK-END
