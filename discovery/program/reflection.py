"""Prompts for ReEvo-style reflection, crossover of two parents, and repair of a failed candidate.

Reflections are short plain-text lessons: a short-term one compares a better and a worse sibling,
and a long-term one folds the short-term lessons of the run into a running summary, which
`with_lessons` adds to a mutation prompt. Crossover and repair replies are programs in the run's
reply format, built against the FIRST program shown (crossover's parent a, repair's failed
candidate) with discovery.patch.build_program, exactly like a mutation reply.
"""

from __future__ import annotations

import re

from discovery.domain import Candidate
from discovery.program.blocks import evolvable
from discovery.program.prompts import SYSTEM, ReplyFormat, reply_instructions
from discovery.task import Task

Messages = list[dict[str, str]]

REFLECTION_SYSTEM = (
    "You are an expert in designing algorithms and heuristics. You compare programs and distil short, "
    "concrete lessons that help write better ones. Reply with plain text only, no code."
)
SHORT_TERM_WORDS = 40
LONG_TERM_WORDS = 80
LESSONS_HEADING = "# Lessons learned so far in this run"
OUTPUT_TAIL_CHARS = 2000

# What to ask for, by how the failed candidate failed.
REPAIR_HINTS: dict[str, str] = {
    "failed": "Fix the error shown above. Change only what is needed to fix it; keep the approach.",
    "timeout": "The program ran out of time. Make it finish in time, keeping the approach as far as possible.",
    "memory_limit": "The program ran out of memory. Make it use less memory, keeping the approach.",
    "output_limit": "The program printed too much output. Remove or reduce the printing; change nothing else.",
}


def _goal(task: Task) -> str:
    return "as high as possible" if task.maximize else "as low as possible"


def _score(candidate: Candidate) -> str:
    return f"score {candidate.score:.6g}" if candidate.score is not None else "no score"


def _shown(candidate: Candidate) -> str:
    """The code a reader needs to compare programs: the EVOLVE block when there is one."""
    return evolvable(candidate.code).rstrip()


def _program_section(title: str, candidate: Candidate, reply_format: ReplyFormat) -> str:
    """A program as the reply format needs it: the block body for block replies, else the whole program."""
    code = _shown(candidate) if reply_format == "block" else candidate.code.rstrip()
    return f"# {title} ({_score(candidate)})\n```python\n{code}\n```"


def _messages(system: str, parts: list[str]) -> Messages:
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]


def short_term_reflection(task_brief: str, better: Candidate, worse: Candidate) -> Messages:
    """Ask why `better` scores better than its sibling `worse`, as a hint in a few words."""
    parts = [
        f"# Task\n{task_brief.strip()}",
        f"# Worse program ({_score(worse)})\n```python\n{_shown(worse)}\n```",
        f"# Better program ({_score(better)})\n```python\n{_shown(better)}\n```",
        "# What to reply\nCompare the two programs. In fewer than "
        f"{SHORT_TERM_WORDS} words, give hints for writing better programs for this task, based on what "
        "the better one does differently.",
    ]
    return _messages(REFLECTION_SYSTEM, parts)


def long_term_reflection(task_brief: str, previous: str, new_short_terms: list[str]) -> Messages:
    """Ask to merge new short-term hints into the run's long-term lessons."""
    hints = "\n".join(f"- {h.strip()}" for h in new_short_terms if h.strip()) or "- (none)"
    parts = [
        f"# Task\n{task_brief.strip()}",
        f"# Lessons so far\n{previous.strip() or '(none yet)'}",
        f"# New hints from comparing programs\n{hints}",
        "# What to reply\nWrite the updated lessons for writing better programs for this task, combining "
        f"the lessons so far with the new hints, in fewer than {LONG_TERM_WORDS} words. Drop hints that "
        "contradict better evidence.",
    ]
    return _messages(REFLECTION_SYSTEM, parts)


def clean_reflection(reply: str, max_words: int = LONG_TERM_WORDS * 2) -> str:
    """A reflection reply as stored: fences and surrounding blank space removed, capped in words."""
    text = re.sub(r"```[a-zA-Z0-9]*", "", reply).strip()
    words = text.split()
    return text if len(words) <= max_words else " ".join(words[:max_words]) + " ..."


def with_lessons(messages: Messages, lessons: str) -> Messages:
    """A copy of a prompt (e.g. prompts.mutation_prompt) with the run's lessons before its reply instructions."""
    if not lessons.strip():
        return [dict(m) for m in messages]
    section = f"{LESSONS_HEADING}\n{lessons.strip()}\n\n"
    out = [dict(m) for m in messages]
    user = out[-1]
    marker = user["content"].rfind("# What to reply")
    if marker < 0:
        user["content"] = user["content"].rstrip() + "\n\n" + section.rstrip()
    else:
        user["content"] = user["content"][:marker] + section + user["content"][marker:]
    return out


def crossover_prompt(task: Task, a: Candidate, b: Candidate, reply_format: ReplyFormat) -> Messages:
    """Ask for a child combining the strengths of two parents; the reply is built against a's code."""
    parts = [
        f"# Task\n{task.spec.brief.strip()}\n\nThe score should be {_goal(task)}.",
        _program_section("Program A", a, reply_format),
        f"# Program B ({_score(b)}), the part that may change\n```python\n{_shown(b)}\n```",
        "# How to improve\nWrite a new program that combines the best ideas of A and B into one that "
        "should score better than both. Start from program A and bring in what B does well.",
        "# What to reply\n"
        + reply_instructions(task, reply_format)
        + ("\nThe SEARCH parts must copy lines of program A." if reply_format == "diff" else ""),
    ]
    return _messages(SYSTEM, parts)


def repair_prompt(task: Task, failed: Candidate, reply_format: ReplyFormat) -> Messages:
    """Ask to fix the one error that made a candidate fail; the reply is built against its code."""
    reason = (failed.failure or failed.status).strip()
    tail = (failed.output_tail or "").strip()[-OUTPUT_TAIL_CHARS:]
    parts = [
        f"# Task\n{task.spec.brief.strip()}\n\nThe score should be {_goal(task)}.",
        _program_section("Program that failed", failed, reply_format).replace(" (no score)", ""),
        f"# How it failed ({failed.status})\n{reason[:OUTPUT_TAIL_CHARS]}",
    ]
    if tail:
        parts.append(f"# The end of its output\n```\n{tail}\n```")
    parts.append("# How to fix it\n" + REPAIR_HINTS.get(failed.status, REPAIR_HINTS["failed"]))
    parts.append("# What to reply\n" + reply_instructions(task, reply_format))
    return _messages(SYSTEM, parts)
