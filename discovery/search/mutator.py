"""A discovered coding agent as the mutation operator (--mutator): it edits the parent in a sandbox, via the gateway.

Instead of one prompt and one reply, the agent (a program defining solve(repo_path, problem,
test_command), as the coding_agent task's candidates do) gets the parent's tree in a fresh folder
and a problem statement (the task's brief, the parent's score and feedback), and edits the files
with LLM calls through the run's gateway, under the task's [agent] budget (or the defaults). The
edited candidate file, sent back as a full-rewrite reply, becomes the child after the usual checks
(EVOLVE blocks, syntax, duplicates). The maker is on the record: the call's `model` is
`agent:RUN:ID`, its operator `agent`, and the agent's calls are stored in `agent_calls` under the
agent's candidate id and the evaluation `mutation:CALL_ID`.

A tree is `dict[str, str]` (relative posix path -> text); today's single-file candidate is the
one-entry tree {task.spec.candidate: code}.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

from discovery import evaluation
from discovery.domain import Candidate
from discovery.llm.gateway import Gateway
from discovery.sandbox.base import Limits, Sandbox
from discovery.sandbox.hostpaths import sandboxes_dir
from discovery.task import AgentBudget, Task

SELF = "self"
AGENT_FILE = "agent.py"
MAX_OUTPUT_BYTES = 8 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Maker:
    """The agent that makes one child: where it comes from, its candidate id and its program."""

    run: str
    candidate_id: int
    code: str
    own: bool = False  # a candidate of this run (self): its calls are recorded under its id

    @property
    def label(self) -> str:
        """How the archive names it, in llm_calls.model."""
        return f"agent:{self.run}:{self.candidate_id}"


@dataclasses.dataclass(frozen=True)
class AgentReply:
    """What a mutator agent produced, shaped like an LLM reply for the loop (its cost is in agent_calls)."""

    text: str
    latency_s: float
    cost_usd: float | None = None

    def usage(self) -> dict[str, Any]:
        """No tokens or cost here: the agent's calls carry them, so --max-cost counts them once."""
        return {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": None, "latency_s": self.latency_s}


def parse_spec(spec: str) -> tuple[str, int | None]:
    """`RUN[:ID]` or `self` -> (run, candidate id or None for the champion)."""
    match = re.fullmatch(r"(.+):(\d+)", spec)
    return (match.group(1), int(match.group(2))) if match else (spec, None)


def is_coding_agent(code: str) -> bool:
    """Whether a program can serve as a mutator: it defines solve(repo_path, problem, test_command)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    return any(
        isinstance(node, ast.FunctionDef)
        and node.name == "solve"
        and (len(node.args.posonlyargs) + len(node.args.args) >= 3 or node.args.vararg is not None)
        for node in tree.body
    )


def tree_of(task: Task, code: str) -> dict[str, str]:
    """A single-file candidate as a one-entry tree."""
    return {task.spec.candidate: code}


def problem_statement(task: Task, parent: Candidate) -> str:
    """What the agent is asked: improve the parent on the task, within its EVOLVE block."""
    score = f"{parent.score:.6g}" if parent.score is not None else "none (it failed)"
    lines = [
        f"Improve the program in `{task.spec.candidate}` for this task (objective: "
        f"{'maximize' if task.maximize else 'minimize'} the score).",
        "",
        task.spec.brief.strip(),
        "",
        f"Its current score: {score}.",
    ]
    if parent.feedback:
        lines += ["Feedback from its evaluation:", parent.feedback.strip()[:3000]]
    if parent.failure:
        lines += ["It failed:", parent.failure.strip()[:3000]]
    lines += [
        "",
        "Change only the code between the `# EVOLVE-BLOCK-START` and `# EVOLVE-BLOCK-END` lines; "
        "edits elsewhere are rejected. run_tests() checks that the file still parses.",
    ]
    return "\n".join(lines)


def reply_text(task: Task, outcome: evaluation.Outcome) -> str:
    """The agent's result as a reply: its edited candidate file as a full rewrite, or why there is none."""
    if outcome.status != "ok":
        return f"The mutator agent failed ({outcome.status}): {outcome.failure}"
    program = (outcome.files or {}).get(task.spec.candidate)
    if program is None:
        return f"The mutator agent left no {task.spec.candidate}."
    # Fenced, so a syntax error is reported as one; bare when the program holds a fence itself (the
    # reply parser would cut it there), and then it is taken whole as long as it parses.
    return program if "```" in program else f"```python\n{program}\n```"


def _limits(task: Task, budget: AgentBudget) -> Limits:
    """The mutation job's limits: the agent's wall time plus a margin, the task's memory."""
    return Limits(
        timeout_s=budget.wall_s + 30.0,
        cpus=task.spec.resources.cpus,
        memory_mb=max(1024, task.spec.resources.memory_mb),
        pids=64,
        output_bytes=MAX_OUTPUT_BYTES,
    )


async def mutate(
    sandbox: Sandbox,
    gateway: Gateway,
    task: Task,
    maker: Maker,
    parent: Candidate,
    call_id: int,
    labels: dict[str, str],
) -> AgentReply:
    """Run the maker on the parent's tree in a fresh sandbox with a gateway session; the edit as a reply."""
    budget = task.spec.agent or AgentBudget()
    spec = {
        "files": tree_of(task, parent.code),
        "problem": problem_statement(task, parent),
        "test_command": ["python", "-B", "-c", "import ast, sys; ast.parse(open(sys.argv[1]).read())"]
        + [task.spec.candidate],
        "time_s": max(1.0, budget.wall_s - 5.0),
    }
    folder = Path(tempfile.mkdtemp(prefix="discovery-mutator-"))
    try:
        folder.chmod(0o755)  # world-readable: the sandbox runs as an unprivileged user
        for name, text in ((AGENT_FILE, maker.code), ("input.json", json.dumps(spec))):
            (folder / name).write_text(text)
            (folder / name).chmod(0o444)
        nonce = secrets.token_hex(16)
        recorded_as = maker.candidate_id if maker.own else None  # another run's id means nothing here
        async with gateway.session(budget, recorded_as, f"mutation:{call_id}", "mutation", call_id) as att:
            job = evaluation.runner_sandbox_job(
                sandboxes_dir() / "mutation",
                AGENT_FILE,
                folder,
                "mutation",
                call_id,
                _limits(task, budget),
                labels,
                nonce=nonce,
                attachment=att,
            )
            result = await sandbox.run(job)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    outcome = evaluation.parse_result(result, nonce)
    return AgentReply(reply_text(task, outcome), outcome.wall_s)
