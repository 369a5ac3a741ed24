"""Agent meta prompts in a real run on math_agent: the check turn after a proposal, names and rationales kept
and shown, crashed agents repaired with their traceback a bounded number of times, owed repairs resumed.

Mutation and agent models are fake OpenAI-compatible servers on 127.0.0.1; the agents run in the
process sandbox through the real gateway; every step is read back from the run's SQLite archive.
"""

from __future__ import annotations

import itertools
import json
import shutil

from rich.console import Console

from discovery.app import runs
from discovery.app.web import pages
from discovery.archive import Archive, views
from tests.cli.test_cli import cli
from tests.factories import agent_run_config
from tests.sandbox.test_agent_gateway import MATH_AGENT, math_replier

DRAFT = "Name: Divider\nRationale: a first draft.\n```python\ndef forward(question: str) -> str:\n    return undefined_helper(question)\n```"
CHECKED = (
    "Name: Divider v2\nRationale: splits the work in two; the draft used an undefined helper.\n"
    "```python\ndef forward(question: str) -> str:\n    return str(len(question) / 0)\n```"
)
# Each repair crashes again, each in its own way (so none is a duplicate).
CRASHES = ("[][1]", "{}['missing']", "int('x')", "None + 1")
GOOD = (
    "Name: Direct\nRationale: one call.\n```python\ndef forward(question: str) -> str:\n"
    '    return llm.chat([{"role": "user", "content": question + "\\n\\nThink step by step."}], temperature=0.0)\n```'
)


def mutation_model():
    """A fake mutation model answering by what the prompt asks: a proposal, its check, or a repair."""
    repairs = itertools.count()
    proposals = itertools.count()

    def reply(body: dict) -> str:
        last = body["messages"][-1]["content"]
        if "# Check your agent" in last:
            return CHECKED
        if "# How it failed" in last:
            return f"```python\ndef forward(question: str) -> str:\n    return {CRASHES[next(repairs)]}\n```"
        return DRAFT if next(proposals) == 0 else GOOD

    return reply


def test_a_proposal_is_checked_named_and_its_crashes_repaired_a_bounded_number_of_times(
    tmp_path, archive_dir, fake_llm
) -> None:
    mutation = fake_llm(default=mutation_model())
    agent = fake_llm(default=math_replier())
    task = tmp_path / "math_agent"
    shutil.copytree(MATH_AGENT, task)
    quiet = Console(file=open("/dev/null", "w"))
    config = agent_run_config(
        task,
        mutation,
        agent,
        budget=2,
        llm_concurrency=1,
        eval_slots=1,
        repair_turns=2,
        crossover_rate=0,
        novelty_threshold=None,
    )
    # Run 1: a proposal, then the check turn; the checked agent (not the draft) is evaluated and crashes.
    runs.start_run(str(task), config, "meta", quiet)
    first, check = mutation.requests
    assert (
        "# The agent to build on: seed (candidate 1), score 1 (95% CI 1-1)" in first["messages"][1]["content"]
    )
    assert [m["role"] for m in check["messages"]] == ["system", "user", "assistant", "user"]
    assert check["messages"][2]["content"] == DRAFT and check["messages"][1] == first["messages"][1]
    # Runs 2-4, one call each: the repair owed when the run stopped comes first after a resume; a
    # crashed repair is repaired again until the chain holds repair_turns (2) repairs; then a proposal.
    for _ in range(3):
        runs.resume_run("meta", quiet, extra_budget=1)
    archive = Archive.open(archive_dir / "meta")
    try:
        calls = [archive.call(i) for i in range(1, 6)]
        assert [c["operator"] for c in calls] == ["block", "reflexion", "repair", "repair", "block"]
        seed, checked, repair1, repair2, proposal = archive.candidates()
        assert (
            checked.call_id == 2
            and "len(question) / 0" in checked.code
            and "undefined_helper" not in checked.code
        )
        assert checked.status == "failed" and "ZeroDivisionError" in checked.failure
        assert (repair1.parent_id, repair2.parent_id) == (checked.id, repair1.id)
        assert repair1.status == repair2.status == "failed" and "IndexError" in repair1.failure
        assert proposal.operator == "block" and proposal.parent_id != repair2.id
        designs = archive.designs()
        assert designs[checked.id] == {
            "name": "Divider v2",
            "rationale": "splits the work in two; the draft used an undefined helper.",
        }
        assert designs[repair1.id]["name"] == "Divider v2" and designs[proposal.id]["name"] == "Direct"
    finally:
        archive.close()
    # The repair prompts carry the crash's traceback.
    repair_prompts = [
        r["messages"][-1]["content"]
        for r in mutation.requests
        if "# How it failed" in r["messages"][-1]["content"]
    ]
    assert len(repair_prompts) == 2
    assert "ZeroDivisionError" in repair_prompts[0] and "Traceback" in repair_prompts[0]
    assert "IndexError" in repair_prompts[1]

    shown = json.loads(
        cli("archive", "candidate", "meta", "2", "--json", archive=archive_dir, check=True).stdout
    )
    assert shown["design"]["name"] == "Divider v2"
    assert "[assistant]\n" + DRAFT in shown["prompt"] and "# Check your agent" in shown["prompt"]
    text = cli("archive", "candidate", "meta", "2", archive=archive_dir, check=True).stdout
    assert "agent: Divider v2" in text and "rationale: splits the work in two" in text
    report = cli("archive", "show", "meta", archive=archive_dir, check=True).stdout
    assert "Direct" in report and "name" in report
    with views.read_only(archive_dir / "meta") as db:
        html = pages.candidate_body(views.candidate_view(db, 2), "meta", pages.Links())
    assert "<dt>agent</dt><dd>Divider v2</dd>" in html and "splits the work in two" in html
