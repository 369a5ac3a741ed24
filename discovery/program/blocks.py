"""EVOLVE blocks: the markers, cutting a program at them, and the checks every edit must pass."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from discovery.program.tree import from_listing, is_listing, to_listing

BLOCK_START = "EVOLVE-BLOCK-START"
BLOCK_END = "EVOLVE-BLOCK-END"


@dataclasses.dataclass(frozen=True)
class Split:
    """A program cut into the fixed code before the block, the block's body, and the fixed code after."""

    head: str  # up to and including the EVOLVE-BLOCK-START line
    body: str
    tail: str  # from the EVOLVE-BLOCK-END line on


def split_block(code: str) -> Split | None:
    """Cut a program at its EVOLVE-BLOCK marker lines; None when the markers are missing or malformed."""
    lines = code.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if BLOCK_START in line]
    ends = [i for i, line in enumerate(lines) if BLOCK_END in line]
    if len(starts) != 1 or len(ends) != 1 or starts[0] >= ends[0]:
        return None
    s, e = starts[0], ends[0]
    return Split("".join(lines[: s + 1]), "".join(lines[s + 1 : e]), "".join(lines[e:]))


def evolvable(code: str) -> str:
    """The part of a program that candidates differ in: its EVOLVE block, or all of it without markers.

    For a multi-file listing: that part of each file, under the file's header, in path order.
    """
    if is_listing(code):
        tree = from_listing(code)
        return to_listing({path: evolvable(text) for path, text in tree.items()})
    block = split_block(code)
    return block.body if block is not None else code


def marker_problem(code: str) -> str | None:
    """Why a seed program's markers are unusable, or None when it has exactly one well-formed block."""
    starts, ends = code.count(BLOCK_START), code.count(BLOCK_END)
    if starts != 1 or ends != 1:
        return (
            f"needs exactly one '# {BLOCK_START}' and one '# {BLOCK_END}' comment line "
            f"around the code the LLM may change (found {starts} start, {ends} end)"
        )
    if code.index(BLOCK_START) > code.index(BLOCK_END):
        return f"'{BLOCK_END}' comes before '{BLOCK_START}'"
    return None


def same_fixed_code(a: str, b: str) -> bool:
    """Whether two pieces of fixed code are equal up to whitespace and blank lines."""

    def squash(text: str) -> list[str]:
        return [line.strip() for line in text.splitlines() if line.strip()]

    return squash(a) == squash(b)


def normalise(code: str) -> str:
    """Canonical text for duplicate detection: comments, blank lines and layout removed."""
    try:
        return ast.unparse(ast.parse(code))
    except (SyntaxError, ValueError, RecursionError):
        return "\n".join(line.split("#", 1)[0].rstrip() for line in code.splitlines() if line.strip())


def program_file_problems(program: Path, role: str, missing: str) -> list[str]:
    """Problems with a starting program file: missing, not Python, or without one well-formed EVOLVE block.

    role names the file in messages ("the seed program"); missing says what the file is for.
    """
    if not program.is_file():
        return [f"{program}: missing; {missing}"]
    code = program.read_text()
    problems = []
    try:
        ast.parse(code)
    except SyntaxError as exc:
        problems.append(f"{program}:{exc.lineno}: {role} is not valid Python: {exc.msg}")
    problem = marker_problem(code)
    if problem:
        problems.append(f"{program}: {problem}")
    return problems
