"""Prompts that ask the LLM for a better program, in one of three reply formats."""

from __future__ import annotations

from typing import Literal

from discovery.domain import Candidate
from discovery.program.blocks import BLOCK_END, BLOCK_START, evolvable
from discovery.task import Task

ReplyFormat = Literal["diff", "full", "block"]

SYSTEM = (
    "You are an expert programmer and researcher. You improve a program step by step so that it scores "
    "better on a task. Reply with code only in the requested format, with no placeholders."
)

FORMAT_INSTRUCTIONS: dict[str, str] = {
    "diff": (
        "Reply with one or more SEARCH/REPLACE blocks that edit the program. Each SEARCH part must copy "
        "lines of the current program exactly; only code between the EVOLVE-BLOCK markers may change:\n"
        "<<<<<<< SEARCH\n(lines to find)\n=======\n(lines to put instead)\n>>>>>>> REPLACE"
    ),
    "full": (
        f"Reply with the complete new program in one ```python fenced block. Keep the '{BLOCK_START}' and "
        f"'{BLOCK_END}' lines and every line outside them exactly as they are; change only the code between them."
    ),
    "block": (
        "Reply with one ```python fenced block holding the new code that goes between the markers "
        "(the code shown above), complete and runnable. The rest of the program stays as it is."
    ),
}


# Multi-file tasks: replies name the file of each edit; "block" replies are whole files there.
FILE_INSTRUCTIONS: dict[str, str] = {
    "diff": (
        "The program is several files, each under a '# ==== FILE: path ====' line. Reply with one or more "
        "SEARCH/REPLACE blocks; put a line 'File: path' above each block to name the file it edits. Each "
        "SEARCH part must copy lines of that file exactly; in a file with EVOLVE-BLOCK markers only code "
        "between them may change. A block with an empty SEARCH part and a new path creates that file:\n"
        "File: path/to/file.py\n<<<<<<< SEARCH\n(lines to find)\n=======\n(lines to put instead)\n>>>>>>> REPLACE"
    ),
    "full": (
        "The program is several files, each under a '# ==== FILE: path ====' line. Reply with every file "
        "you change in full: a line 'File: path', then the whole file in one fenced block. Files you leave "
        f"out stay as they are. In a file with '{BLOCK_START}' and '{BLOCK_END}' lines keep every line "
        "outside them exactly as it is."
    ),
}


def reply_instructions(task: Task, reply_format: ReplyFormat) -> str:
    """How to reply in a format: the single-file formats, or per-file edits naming their files."""
    if not task.folder:
        return FORMAT_INSTRUCTIONS[reply_format]
    text = FILE_INSTRUCTIONS["diff" if reply_format == "diff" else "full"]
    if task.fixed:
        text += f"\nThese files are fixed; never change them: {', '.join(sorted(task.fixed))}."
    return text


def _describe(candidate: Candidate) -> str:
    """One line with a candidate's score and other numeric metrics."""
    extras = ", ".join(
        f"{k}={v:.6g}" for k, v in candidate.metrics.items() if k != "score" and isinstance(v, (int, float))
    )
    return f"score {candidate.score:.6g}" + (f" ({extras})" if extras else "")


def mutation_prompt(
    task: Task,
    parent: Candidate,
    reply_format: ReplyFormat,
    inspirations: list[Candidate] = (),
    recent_failures: list[Candidate] = (),
) -> list[dict[str, str]]:
    """Chat messages asking for an improved child of `parent`."""
    goal = "as high as possible" if task.maximize else "as low as possible"
    parts = [f"# Task\n{task.spec.brief.strip()}\n\nThe score should be {goal}."]
    if reply_format == "block" and not task.folder:
        body = evolvable(parent.code)
        parts.append(f"# Current code ({_describe(parent)})\n```python\n{body.rstrip()}\n```")
    else:
        parts.append(f"# Current program ({_describe(parent)})\n```python\n{parent.code.rstrip()}\n```")
    if parent.feedback:
        parts.append(f"# Evaluator feedback on it\n{parent.feedback.strip()[:2000]}")
    for other in inspirations:
        parts.append(
            f"# Another program ({_describe(other)})\n```python\n{evolvable(other.code).rstrip()}\n```"
        )
    if recent_failures:
        lines = [
            f"- {c.status}: {(c.failure or '').splitlines()[0][:200] if c.failure else ''}"
            for c in recent_failures
        ]
        parts.append("# Recent attempts that failed (avoid these mistakes)\n" + "\n".join(lines))
    parts.append("# What to reply\n" + reply_instructions(task, reply_format))
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def render(messages: list[dict[str, str]]) -> str:
    """A prompt as stored in the archive and shown by `discovery archive candidate`."""
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
