"""Self-referential runs (--mutator self) on coding_agent: the champion agent makes the children, through
the gateway, on a fake model; the run survives kill -9, and the archive names each child's maker."""

from __future__ import annotations

import contextlib
import itertools
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from discovery.app import runs
from discovery.archive import Archive, views
from discovery.config import RunConfig
from discovery.errors import UserError
from tests.cli.test_agent_run import RUN_SCRIPT
from tests.cli.test_cli import cli, cli_env
from tests.factories import agent_run_config
from tests.sandbox.test_agent_gateway import ROOT

CODING_AGENT = ROOT / "tasks" / "coding_agent"
sys.path.insert(0, str(CODING_AGENT))
import instances  # noqa: E402

sys.path.remove(str(CODING_AGENT))
SEED_TOKENS = 768  # the seed agent's max_tokens: the fake model fixes no bug for it


def agent_model():
    """A fake agent model: edits program.py when asked to improve it (a new max_tokens each time), and
    fixes an instance's bug only for agents that ask with another max_tokens than the seed's."""
    counter = itertools.count(1)

    def reply(body: dict) -> str:
        prompt = body["messages"][-1]["content"]
        if prompt.startswith("Improve the program in `program.py`"):
            program = prompt.split("FILE: program.py\n```python\n", 1)[1].split("```\n\nThe visible tests")[0]
            changed = re.sub(r"max_tokens=\d+", f"max_tokens={700 - next(counter)}", program)
            return f"FILE: program.py\n```python\n{changed}```"
        if body.get("max_tokens") == SEED_TOKENS:
            return "I cannot see the bug."
        name = re.search(r"FILE: (\w+)\.py", prompt).group(1)
        return f"FILE: {name}.py\n```python\n{instances.REFERENCES[name].source}```"

    return reply


def task_copy(tmp_path: Path) -> Path:
    """coding_agent with a deterministic evaluation (the fake model is), so the gate compares once."""
    task = tmp_path / "coding_agent"
    shutil.copytree(CODING_AGENT, task, ignore=shutil.ignore_patterns("__pycache__"))
    toml = task / "task.toml"
    toml.write_text(toml.read_text().replace("repeats = 1\n", "repeats = 1\ndeterministic = true\n"))
    return task


def config_for(task: Path, mutation, agent, mutator: str = "self") -> RunConfig:
    return agent_run_config(
        task,
        mutation,
        agent,
        budget=3,
        reply_format="diff",
        mutator=mutator,
        llm_concurrency=1,
        eval_slots=1,
        novelty_threshold=None,  # the fake edits are one number each
    )


def makers(archive: Archive) -> list[tuple[int, str, int]]:
    """(child id, the maker's label, the maker's candidate id) for every child."""
    out = []
    for child in archive.candidates():
        if child.parent_id is None:
            continue
        label = archive.call(child.call_id)["model"]
        out.append((child.id, label, int(label.rsplit(":", 1)[1])))
    return out


@pytest.mark.slow
def test_a_self_referential_run_survives_kill_9_and_records_the_maker_of_each_child(
    tmp_path, archive_dir, fake_llm
) -> None:
    mutation = fake_llm(default="unused: the agent makes the children")
    agent = fake_llm(default=agent_model())
    task = task_copy(tmp_path)
    config = config_for(task, mutation, agent)
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN_SCRIPT, config.model_dump_json()], env=cli_env(archive_dir), cwd=ROOT
    )
    path = archive_dir / "killed" / "archive.sqlite"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(sqlite3.Error), sqlite3.connect(path) as db:
            if db.execute("SELECT COUNT(*) FROM agent_calls WHERE evaluation LIKE 'mutation:%'").fetchone()[
                0
            ]:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(path) as db:
        (killed,) = db.execute("SELECT COUNT(*) FROM llm_calls WHERE status = 'started'").fetchone()
    assert killed >= 1  # a mutation was in flight when the run was killed

    cli("resume", "killed", archive=archive_dir, check=True, timeout=600)
    archive = Archive.open(archive_dir / "killed")
    try:
        seed = archive.seed()
        assert seed.status == "ok" and seed.score == 0.0  # the fake model fixes nothing for the seed
        assert archive.calls_made() == 3 and not archive.pending_ids()
        statuses = [r[0] for r in archive.db.execute("SELECT status FROM llm_calls")]
        assert "interrupted" in statuses and "started" not in statuses
        made = makers(archive)
        assert made and all(label.startswith("agent:killed:") for _, label, _ in made)
        for child_id, _, maker_id in made:
            child = archive.candidate(child_id)
            assert child.operator == "agent" and archive.candidate(maker_id).status == "ok"
            # The maker's own calls are on the record, under the mutation that made this child.
            calls = archive.agent_calls(maker_id, f"mutation:{child.call_id}")
            assert calls and all(c["status"] == "ok" for c in calls)
        children = [archive.candidate(c) for c, _, _ in made]
        assert any(c.status == "ok" and c.score == 1.0 for c in children)  # an agent made a better agent
        better = next(c for c in children if c.score == 1.0)
        assert archive.champion_id() == better.id  # promoted, so it makes the children after it
    finally:
        archive.close()
    shown = cli("archive", "show", "killed", archive=archive_dir, check=True).stdout
    assert "agent:killed:1" in shown and "made by" in shown
    text = cli("archive", "candidate", "killed", str(better.id), archive=archive_dir, check=True).stdout
    assert "made by agent:killed:1" in text
    with views.read_only(archive_dir / "killed") as db:  # the web explorer's candidate page says it too
        assert views.candidate_view(db, better.id)["maker_calls"]["calls"] >= 1


def test_a_mutator_must_be_a_coding_agent(tmp_path, archive_dir, fake_llm) -> None:
    server = fake_llm(default="x")
    math = tmp_path / "math_agent"
    shutil.copytree(ROOT / "tasks" / "math_agent", math)
    console = Console(file=open("/dev/null", "w"))
    with pytest.raises(UserError, match="not coding agents"):
        runs.start_run(str(math), config_for(math, server, server), None, console)
    with pytest.raises(UserError, match="no run 'nowhere'"):
        runs.start_run(str(math), config_for(math, server, server, mutator="nowhere:3"), None, console)
    assert not list(archive_dir.glob("*"))  # a refused start leaves no run folder


@pytest.mark.slow
def test_another_runs_agent_makes_the_children_of_an_algorithm_run(
    tmp_path, archive_dir, fake_llm, toy_task
) -> None:
    def reply(body: dict) -> str:
        prompt = body["messages"][-1]["content"]
        if prompt.startswith("Improve the program in `program.py`"):
            program = prompt.split("FILE: program.py\n```python\n", 1)[1].split("```\n\nThe visible tests")[0]
            return "FILE: program.py\n```python\n" + program.replace("return 0.0", "return 3.0") + "```"
        return "I cannot see the bug."

    mutation = fake_llm(default="not code")
    agent = fake_llm(default=reply)
    console = Console(file=open("/dev/null", "w"))
    coder = task_copy(tmp_path)
    runs.start_run(
        str(coder),
        config_for(coder, mutation, agent, mutator=None).model_copy(update={"budget": 1}),
        "coder",
        console,
    )
    config = config_for(toy_task, mutation, agent, mutator="coder")
    outcome = runs.start_run(str(toy_task), config, "toy", console)
    assert outcome.stop_reason == "budget spent"
    archive = Archive.open(archive_dir / "toy")
    try:
        made = makers(archive)
        assert [label for _, label, _ in made] == ["agent:coder:1"] * 3
        best = archive.best()
        assert best.score == 0.0 and best.operator == "agent"  # the agent wrote x = 3
        calls = archive.agent_calls(None, f"mutation:{best.call_id}")
        # Recorded, but not under this run's candidate 1: the maker is the other run's candidate 1.
        assert calls and all(c["candidate_id"] is None for c in calls)
        assert archive.meta()["mutator_agent"]["run"] == "coder"
    finally:
        archive.close()
