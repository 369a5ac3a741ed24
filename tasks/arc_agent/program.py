"""An ARC agent: forward(task) -> Python source of transform(grid), asking the run's model through discovery_harness.llm."""

from discovery_harness import llm, programs

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
    """Chain-of-thought (ADAS baseline): reason about the rule, then write transform(grid) in Python."""
    reply = llm.chat(
        [
            {"role": "system", "content": "You solve ARC puzzles by writing Python code."},
            {
                "role": "user",
                "content": show_task(task)
                + "\n\nEach output grid is made from its input grid by one rule. Think step by step about "
                "the rule, then write a Python function `transform(grid)` that takes a grid (a list of rows "
                "of ints 0-9) and returns the output grid. Use only the standard library. End with the "
                f"function in one {FENCE}python block.",
            },
        ],
        temperature=0.0,
        max_tokens=1024,
    )
    return programs.extract_python(reply)


# EVOLVE-BLOCK-END
