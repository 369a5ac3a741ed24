"""Reflection, crossover and repair prompts, and that replies to them build against the right parent."""

from __future__ import annotations

import re

import pytest

from discovery.domain import Candidate
from discovery.program.patch import Proposal, build_program
from discovery.program.prompts import FORMAT_INSTRUCTIONS, SYSTEM, mutation_prompt
from discovery.program.reflection import (
    LESSONS_HEADING,
    REFLECTION_SYSTEM,
    clean_reflection,
    crossover_prompt,
    long_term_reflection,
    repair_prompt,
    short_term_reflection,
    with_lessons,
)
from discovery.task import load_task
from tests.conftest import TESTS
from tests.factories import make_candidate

PROGRAM = (
    '"""Toy."""\n\n# EVOLVE-BLOCK-START\ndef solve():\n    return {value}\n# EVOLVE-BLOCK-END\n\n'
    'if __name__ == "__main__":\n    print(solve())\n'
)


def cand(i: int, value: str, score: float | None, status: str = "ok", **kw) -> Candidate:
    return make_candidate(i, score, code=PROGRAM.format(value=value), status=status, **kw)


@pytest.fixture
def task():
    return load_task(TESTS / "data" / "toy_task")


def user(messages: list[dict[str, str]]) -> str:
    assert [m["role"] for m in messages] == ["system", "user"]
    return messages[1]["content"]


def fenced(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.DOTALL)


def test_short_term_reflection_shows_both_blocks_worse_first(task):
    messages = short_term_reflection(task.spec.brief, cand(2, "2.9", -0.01), cand(3, "0.0", -9.0))
    assert messages[0]["content"] == REFLECTION_SYSTEM
    text = user(messages)
    assert text.index("Worse program (score -9)") < text.index("Better program (score -0.01)")
    assert fenced(text) == ["def solve():\n    return 0.0\n", "def solve():\n    return 2.9\n"]
    assert task.spec.brief in text and "words" in text


def test_long_term_reflection_merges_hints():
    text = user(long_term_reflection("Brief.", "Return values near 3.", ["Use 3 exactly.", " ", "Avoid 0."]))
    assert "Return values near 3." in text
    assert "- Use 3 exactly.\n- Avoid 0." in text
    assert "(none yet)" in user(long_term_reflection("Brief.", "", []))


def test_clean_reflection():
    assert clean_reflection("```text\nUse 3.\n```\n") == "Use 3."
    assert clean_reflection("a " * 10, max_words=3) == "a a a ..."


def test_lessons_go_before_the_reply_instructions(task):
    base = mutation_prompt(task, cand(1, "0.0", -9.0), "diff")
    text = user(with_lessons(base, "Return 3."))
    assert text.index(LESSONS_HEADING) < text.index("# What to reply")
    assert user(base).count(LESSONS_HEADING) == 0  # the input is not modified
    assert with_lessons(base, "  ") == base


@pytest.mark.parametrize("reply_format", ["diff", "full", "block"])
def test_crossover_prompt_builds_against_parent_a(task, reply_format):
    a, b = cand(1, "1.0", -4.0), cand(2, "2.0", -1.0)
    messages = crossover_prompt(task, a, b, reply_format)
    assert messages[0]["content"] == SYSTEM
    text = user(messages)
    assert FORMAT_INSTRUCTIONS[reply_format] in text
    shown_a, shown_b = fenced(text)
    assert shown_b == "def solve():\n    return 2.0\n"  # B is shown as its block only
    if reply_format == "block":
        assert shown_a == "def solve():\n    return 1.0\n"
        reply = "```python\ndef solve():\n    return (1.0 + 2.0) * 1.5 / 1.5\n```"
    else:
        assert shown_a == a.code  # the whole program, so SEARCH lines can be copied from it
        if reply_format == "diff":
            reply = "<<<<<<< SEARCH\n    return 1.0\n=======\n    return 3.0\n>>>>>>> REPLACE"
        else:
            reply = "```python\n" + shown_a.replace("return 1.0", "return 3.0") + "```"
    built = build_program(reply, a.code)
    assert isinstance(built, Proposal)
    assert built.code.startswith('"""Toy."""') and "return" in built.code


@pytest.mark.parametrize(
    "status, hint", [("failed", "Fix the error"), ("timeout", "out of time"), ("memory_limit", "less memory")]
)
def test_repair_prompt_shows_the_failure(task, status, hint):
    failed = cand(
        5, "1 / 0", None, status, failure="ZeroDivisionError: division by zero",
        output_tail="x" * 5000 + "\nTraceback: line 5",
    )  # fmt: skip
    text = user(repair_prompt(task, failed, "diff"))
    assert "ZeroDivisionError: division by zero" in text
    assert "Traceback: line 5" in text and "x" * 2001 not in text  # only the tail
    assert hint in text
    assert fenced(text)[0] == failed.code
    reply = "<<<<<<< SEARCH\n    return 1 / 0\n=======\n    return 1.0\n>>>>>>> REPLACE"
    built = build_program(reply, failed.code)
    assert isinstance(built, Proposal) and "return 1.0" in built.code


def test_repair_prompt_without_output(task):
    text = user(repair_prompt(task, cand(5, "x", None, "failed", failure="NameError: x"), "block"))
    assert "end of its output" not in text and "NameError: x" in text
