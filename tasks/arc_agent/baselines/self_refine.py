"""ADAS baseline: self-refine. Write a program, run it on the examples, and fix it from the mismatches."""

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


def check(code: str, task: dict) -> str:
    """'' when the program reproduces every example; else what went wrong, to show the model."""
    try:
        outputs = programs.run_function(
            code, "transform", [(p["input"],) for p in task["train"]], timeout_s=3
        )
    except CandidateError as exc:
        return f"Running transform() failed: {str(exc)[-600:]}"
    for k, (got, pair) in enumerate(zip(outputs, task["train"], strict=True)):
        if got != pair["output"]:
            grid = isinstance(got, list) and all(isinstance(row, list) for row in got)
            shown = show_grid(got) if grid else repr(got)[:300]
            return (
                f"On example {k + 1} transform() returned:\n{shown}\nExpected:\n{show_grid(pair['output'])}"
            )
    return ""


def forward(task: dict) -> str:
    """A first program, then up to two rounds of feedback from the examples; stops once they all match."""
    messages = [
        {
            "role": "user",
            "content": show_task(task)
            + "\n\nThink step by step about the rule, then write `transform(grid)` "
            f"(list of rows of ints 0-9 in and out) in one {FENCE}python block.",
        }
    ]
    reply = llm.chat(messages, temperature=0.0, max_tokens=1024)
    code = programs.extract_python(reply)
    for _round in range(2):
        problem = check(code, task)
        if not problem:
            break
        messages += [
            {"role": "assistant", "content": reply},
            {
                "role": "user",
                "content": f"{problem}\n\nFix the rule and write transform(grid) again in one {FENCE}python block.",
            },
        ]
        try:
            reply = llm.chat(messages, temperature=0.0, max_tokens=1024)
        except llm.BudgetExceeded:
            break  # out of budget: keep the best program so far
        code = programs.extract_python(reply)
    return code


# EVOLVE-BLOCK-END
