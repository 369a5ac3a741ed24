"""Meta prompts for agent tasks (ADAS-style): the archive of agents, a new named agent, a reflection turn.

A mutation prompt for an agent task shows the archive of agents (best first) with each one's name,
score and 95 % bootstrap interval, rationale and code, so the model sees which differences are
noise; it asks for a new agent, introduced by a `Name:` and a `Rationale:` line, in the run's reply
format, built against the parent shown last. After the reply, each reflection turn asks the model
to check that agent for mistakes and novelty and to reply with the final, corrected one. Repairs of
a crashed agent use reflection.repair_prompt, which shows its traceback.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from discovery.domain import Candidate
from discovery.program.blocks import split_block
from discovery.program.prompts import FORMAT_INSTRUCTIONS, ReplyFormat
from discovery.program.reflection import OUTPUT_TAIL_CHARS, Messages
from discovery.task import Task

AGENT_SYSTEM = (
    "You are an expert in designing LLM agents: programs that call a language model to solve a task. "
    "You invent agents that score better than those found so far, and you write them as working code "
    "in the requested format, with no placeholders."
)
NAME_CHARS = 80
RATIONALE_CHARS = 1200
# A `Name:` / `Rationale:` line in the prose of a reply (markdown bold allowed), outside code.
_NAME = re.compile(r"^[ \t]*\**[ \t]*name[ \t]*\**[ \t]*:[ \t]*\**[ \t]*(.+?)[ \t*]*$", re.I | re.M)
_RATIONALE = re.compile(r"^[ \t]*\**[ \t]*rationale[ \t]*\**[ \t]*:[ \t]*\**(.*)", re.I | re.M | re.S)
_CODE = re.compile(r"```.*?(```|\Z)|<{5,}\s*SEARCH.*?(>{5,}\s*REPLACE|\Z)", re.S | re.I)


class AgentDesign(NamedTuple):
    """What the model said a proposed agent is: a short name and why it should do better."""

    name: str
    rationale: str


def parse_design(reply: str) -> AgentDesign | None:
    """The `Name:` and `Rationale:` of a reply (outside its code); None when it gives no name."""
    prose = _CODE.sub("\n", reply or "")
    name = _NAME.search(prose)
    if name is None:
        return None
    rationale = _RATIONALE.search(prose)
    text = rationale.group(1) if rationale else ""
    text = _NAME.sub("", text).strip()
    return AgentDesign(name.group(1).strip()[:NAME_CHARS], " ".join(text.split())[:RATIONALE_CHARS])


def interval(candidate: Candidate) -> tuple[float, float] | None:
    """The 95 % interval of the candidate's score from its metrics (`<metric>_ci_low` / `_ci_high`), if any."""
    for key, low in candidate.metrics.items():
        if key.endswith("_ci_low"):
            high = candidate.metrics.get(key[: -len("low")] + "high")
            if isinstance(low, (int, float)) and isinstance(high, (int, float)):
                return float(low), float(high)
    return None


def describe_score(candidate: Candidate) -> str:
    """'score 0.45 (95% CI 0.25-0.65)', or 'no score'."""
    if candidate.score is None:
        return "no score"
    ci = interval(candidate)
    return f"score {candidate.score:.4g}" + (f" (95% CI {ci[0]:.3g}-{ci[1]:.3g})" if ci else "")


def _title(candidate: Candidate, design: AgentDesign | None) -> str:
    """An agent's heading: its name (the seed's is 'seed') and candidate id."""
    name = design.name if design else ("seed" if candidate.operator == "seed" else "unnamed")
    return f"{name} (candidate {candidate.id})"


def _entry(candidate: Candidate, design: AgentDesign | None) -> str:
    """One agent of the archive: name, score with interval, rationale and the code of its EVOLVE block."""
    block = split_block(candidate.code)
    code = (block.body if block else candidate.code).rstrip()
    lines = [f"## {_title(candidate, design)}: {describe_score(candidate)}"]
    if design and design.rationale:
        lines.append(f"Rationale: {design.rationale}")
    lines.append(f"```python\n{code}\n```")
    return "\n".join(lines)


def agent_mutation_prompt(
    task: Task,
    parent: Candidate,
    archive: Sequence[tuple[Candidate, AgentDesign | None]],
    reply_format: ReplyFormat,
    recent_failures: Sequence[Candidate] = (),
) -> Messages:
    """Ask for a new agent, named and reasoned, after the archive of agents; the reply builds on `parent`."""
    goal = "as high as possible" if task.maximize else "as low as possible"
    designs = dict((c.id, d) for c, d in archive)
    parts = [f"# Task\n{task.spec.brief.strip()}\n\nThe score should be {goal}."]
    others = [(c, d) for c, d in archive if c.id != parent.id]
    if others:
        parts.append(
            "# Archive of agents found so far (best first)\nEach with its score on the task and the 95 % "
            "bootstrap interval of that score: differences inside the intervals may be noise.\n\n"
            + "\n\n".join(_entry(c, d) for c, d in others)
        )
    code = (split_block(parent.code).body if reply_format == "block" else parent.code).rstrip()
    parts.append(
        f"# The agent to build on: {_title(parent, designs.get(parent.id))}, {describe_score(parent)}\n"
        + (f"Rationale: {designs[parent.id].rationale}\n" if designs.get(parent.id) else "")
        + f"```python\n{code}\n```"
    )
    if parent.feedback:
        parts.append(f"# Evaluator feedback on it\n{parent.feedback.strip()[:OUTPUT_TAIL_CHARS]}")
    if recent_failures:
        lines = [
            f"- {c.status}: {(c.failure or '').splitlines()[0][:200] if c.failure else ''}"
            for c in recent_failures
        ]
        parts.append("# Recent attempts that failed (avoid these mistakes)\n" + "\n".join(lines))
    parts.append(
        "# How to improve\nDesign a new agent that should score better than every agent above. Learn from "
        "the archive: what the better agents do, what did not help. Prefer a genuinely new idea (a new way "
        "to use the model, to check or combine its answers) over a small tweak, and keep its calls within "
        "the task's budget."
    )
    parts.append("# What to reply\n" + _answer_form(reply_format))
    return [{"role": "system", "content": AGENT_SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def _answer_form(reply_format: ReplyFormat) -> str:
    """The reply's form: a Name line, a Rationale line, then the code in the run's reply format."""
    return (
        "First a line `Name: <a short name for the new agent>`, then a line `Rationale: <why it should "
        "score better, in a few sentences>`, then the code.\n" + FORMAT_INSTRUCTIONS[reply_format]
    )


def reflexion_turn(reply_format: ReplyFormat) -> str:
    """The user turn after a proposed agent: check it and reply with the final, corrected agent."""
    against = (
        "\nThe SEARCH parts must copy lines of the agent to build on shown first, not of your draft."
        if reply_format == "diff"
        else ""
    )
    return (
        "# Check your agent before it runs\nReview the agent you just proposed:\n"
        "1. Mistakes: names used but not defined, a changed signature of the function the task calls, "
        "calls to the model with the wrong arguments or a reply used as the wrong type (a list when n > 1), "
        "errors it should catch (over budget), anything that would crash or hang.\n"
        "2. Novelty: is it really different from the agents in the archive, or a copy under a new name?\n"
        "3. The rationale: does the code do what it claims, and is there a simple way to make it better?\n"
        "Then reply with the final agent, corrected where needed, in the same form as before. "
        + _answer_form(reply_format)
        + against
    )


def with_draft(messages: Messages, draft: str, reply_format: ReplyFormat) -> Messages:
    """The conversation for a reflection turn: the prompt, the model's draft, then the check."""
    return [dict(m) for m in messages] + [
        {"role": "assistant", "content": draft},
        {"role": "user", "content": reflexion_turn(reply_format)},
    ]
