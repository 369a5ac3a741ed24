"""A short run on math_agent end to end: mutation and agent models on fake servers, the gateway, the
process sandbox, and the archive commands a user reads an agent's calls with."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from rich.console import Console

from discovery.app import runs
from discovery.archive import Archive
from tests.cli.test_cli import cli, cli_env
from tests.factories import agent_run_config
from tests.sandbox.test_agent_gateway import MATH_AGENT, ROOT, math_replier

# A child agent the mutation model proposes: asks once, without the chain-of-thought prompt.
CHILD = '''```python
def forward(question: str) -> str:
    """Ask directly for the number."""
    return llm.chat([{"role": "user", "content": question + "\\n\\nOnly the number."}], temperature=0.0)
```'''


@pytest.mark.slow
def test_a_math_agent_run_records_agent_calls_apart_from_mutation_calls(
    tmp_path, archive_dir, fake_llm
) -> None:
    mutation = fake_llm(default=CHILD)
    agent = fake_llm(default=math_replier())
    task = tmp_path / "math_agent"
    shutil.copytree(MATH_AGENT, task)
    config = agent_run_config(task, mutation, agent, max_cost=5.0)
    outcome = runs.start_run(str(task), config, "agents", Console(file=open("/dev/null", "w")))
    assert outcome.stop_reason == "budget spent"
    archive = Archive.open(archive_dir / "agents")
    try:
        seed, child = archive.candidates()
        assert seed.score == 1.0 and child.status == "ok" and child.score == 1.0
        assert len(archive.agent_calls(seed.id)) == 20 and len(archive.agent_calls(child.id)) == 20
        assert archive.calls_made() == 1  # agent calls are not mutation calls
    finally:
        archive.close()
    # Mutation prompts went to the mutation server only; the agents' calls to the agent model only.
    assert len(mutation.requests) == 1 and len(agent.requests) == 40

    shown = json.loads(
        cli("archive", "candidate", "agents", str(child.id), "--json", archive=archive_dir, check=True).stdout
    )
    calls = shown["agent_calls"]
    assert [c["sample_index"] for c in calls] == list(range(20))
    assert calls[0]["messages"][0]["content"].endswith("Only the number.") and calls[0]["reply"][
        0
    ].startswith("Step")
    text = cli("archive", "candidate", "agents", str(child.id), archive=archive_dir, check=True).stdout
    assert "Agent calls (20)" in text and "search:train:0: 20 calls (0 refused or failed)" in text
    assert "cost unknown" in text  # the fake agent model has no price: unknown, not $0
    report = cli("archive", "show", "agents", archive=archive_dir, check=True).stdout
    assert "agent calls (candidates' agents, through the gateway): 40" in report
    assert "cost unknown (40 call(s) with no known price)" in report  # not $0.0000

    # Exported, the agent runs on its own against any OpenAI-compatible endpoint.
    out = tmp_path / "exported"
    out.mkdir()
    cli(
        "export",
        "agents",
        "--candidate",
        str(child.id),
        "-o",
        str(out / "agent.py"),
        archive=archive_dir,
        check=True,
    )
    question = first_train_question()
    env = {
        "PATH": "/usr/bin:/bin",
        "DISCOVERY_LLM_BASE_URL": agent.api_base,
        "DISCOVERY_LLM_MODEL": "fake",
        "DISCOVERY_LLM_API_KEY": "sk-outside",
    }
    standalone = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, '.'); import agent; print(agent.forward({question!r}))",
        ],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert standalone.returncode == 0, standalone.stderr
    assert standalone.stdout.strip().endswith(f"Answer: {first_train_answer()}")
    assert len(agent.requests) == 41 and agent.requests[-1]["model"] == "fake"

    # Replay on the recorded replies: offline (the agent server gets nothing), exact, and it holds.
    replayed = cli("replay", "agents", "--best", "--sandbox", "process", "--json", archive=archive_dir)
    result = json.loads(replayed.stdout)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert result["mode"] == "recorded" and result["holds"] and result["divergences"] == []
    assert len(agent.requests) == 41
    # An agent that asks something else than it did is a divergence, and the replay fails.
    with sqlite3.connect(archive_dir / "agents" / "archive.sqlite") as db:
        db.execute("UPDATE candidates SET code = replace(code, 'Only the number.', 'Just the number.')")
    diverged = cli(
        "replay", "agents", "--candidate", str(child.id), "--sandbox", "process", archive=archive_dir
    )
    assert diverged.returncode == 1
    assert "divergence: search:train:0, sample 0: call differs from recorded call" in diverged.stdout
    assert len(agent.requests) == 41

    # Live: the (changed) agent calls the run's agent model now, or another one; calls are recorded.
    live = cli(
        "replay",
        "agents",
        "--candidate",
        str(child.id),
        "--live",
        "--sandbox",
        "process",
        "--json",
        archive=archive_dir,
    )
    result = json.loads(live.stdout)
    assert live.returncode == 0 and result["mode"] == "live" and result["replayed"] == 1.0
    assert result["interval"] == [1.0, 1.0] and len(agent.requests) == 61
    other = fake_llm(default="Answer: -1")
    args = (
        "--live",
        "--agent-model",
        "openai/other",
        "--agent-api-base",
        other.api_base,
        "--sandbox",
        "process",
    )
    worse = cli("replay", "agents", "--candidate", str(child.id), *args, archive=archive_dir)
    assert (
        worse.returncode == 1
        and "replayed 0 (95% interval 0-0)" in worse.stdout
        and "does NOT hold" in worse.stdout
    )
    assert len(other.requests) == 20 and {r["model"] for r in other.requests} == {"other"}
    archive = Archive.open(archive_dir / "agents")
    try:
        replay_calls = [c for c in archive.agent_calls(child.id) if c["evaluation"] == "replay:train:0"]
        assert [c["model"] for c in replay_calls] == ["openai/fake"] * 20 + ["openai/other"] * 20
    finally:
        archive.close()


def first_train_question() -> str:
    """The first train question (seed 0)."""
    return all_answers_train()[0][0]


def first_train_answer() -> int:
    """Its answer."""
    return all_answers_train()[0][1]


def all_answers_train() -> list[tuple[str, int]]:
    sys.path.insert(0, str(MATH_AGENT))
    try:
        from problems import make_problems
    finally:
        sys.path.remove(str(MATH_AGENT))
    return [(p.question, p.answer) for p in make_problems("train", 0)]


RUN_SCRIPT = """
import json, sys
from rich.console import Console
from discovery.app import runs
from discovery.config import RunConfig
config = RunConfig.model_validate(json.loads(sys.argv[1]))
runs.start_run(config.task, config, "killed", Console(file=open("/dev/null", "w")))
"""


@pytest.mark.slow
def test_a_run_killed_mid_evaluation_keeps_its_agent_calls_and_resumes(
    tmp_path, archive_dir, fake_llm
) -> None:
    mutation = fake_llm(default=CHILD)
    agent = fake_llm(default=math_replier(), latency_s=0.15)
    task = tmp_path / "math_agent"
    shutil.copytree(MATH_AGENT, task)
    config = agent_run_config(task, mutation, agent)
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN_SCRIPT, config.model_dump_json()], env=cli_env(archive_dir), cwd=ROOT
    )
    path = archive_dir / "killed" / "archive.sqlite"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.exists():
            with contextlib.suppress(sqlite3.Error), sqlite3.connect(path) as db:
                if db.execute("SELECT COUNT(*) FROM agent_calls").fetchone()[0] >= 5:
                    break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(path) as db:
        before = db.execute("SELECT id, session, reply FROM agent_calls ORDER BY id").fetchall()
    assert 5 <= len(before) < 20 and len({row[1] for row in before}) == 1

    killed_roots = f"discovery-gw-{proc.pid}-*"
    assert list(Path(tempfile.gettempdir()).glob(killed_roots))  # left behind by the kill
    cli("resume", "killed", archive=archive_dir, check=True, timeout=300)
    assert not list(Path(tempfile.gettempdir()).glob(killed_roots))  # tidied by the resumed run's gateway
    archive = Archive.open(archive_dir / "killed")
    try:
        seed = archive.seed()
        assert seed.status == "ok" and seed.score == 1.0
        calls = archive.agent_calls(seed.id)
        # Nothing recorded before the kill is lost; the evaluation was done again in a new session.
        assert [(c["id"], c["session"], json.dumps(c["reply"])) for c in calls[: len(before)]] == before
        assert len(calls) == len(before) + 20 and len({c["session"] for c in calls}) == 2
    finally:
        archive.close()
    replayed = cli(
        "replay", "killed", "--candidate", str(seed.id), "--sandbox", "process", archive=archive_dir
    )
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr


def all_answers() -> dict[str, int]:
    """Questions to answers for the train split (seed 0) and the held-out seeds the gate uses."""
    sys.path.insert(0, str(MATH_AGENT))
    try:
        from problems import make_problems
    finally:
        sys.path.remove(str(MATH_AGENT))
    splits = [("train", 0)] + [("heldout", 1000 + k) for k in range(6)]
    return {p.question: p.answer for split, seed in splits for p in make_problems(split, seed)}


@pytest.mark.slow
def test_a_better_agent_passes_the_gate_on_held_out_questions(tmp_path, archive_dir, fake_llm) -> None:
    answers = all_answers()

    def reply(body: dict) -> str:
        # Right only when asked for the number alone: the seed's chain-of-thought prompt gets it wrong.
        text = body["messages"][-1]["content"]
        question, _, ask = text.partition("\n\n")
        return str(answers[question]) if ask == "Only the number." else "Answer: -1"

    mutation = fake_llm(default=CHILD)
    agent = fake_llm(default=reply)
    task = tmp_path / "math_agent"
    shutil.copytree(MATH_AGENT, task)
    config = agent_run_config(task, mutation, agent)
    runs.start_run(str(task), config, "gated", Console(file=open("/dev/null", "w")))
    archive = Archive.open(archive_dir / "gated")
    try:
        seed, child = archive.candidates()
        assert (seed.score, child.score) == (0.0, 1.0)
        (gate,) = archive.promotions()
        assert gate["promoted"] and gate["split"] == "heldout"
        # The agent model answers the same way every time: two identical repeats show a deterministic
        # evaluation, and one exact comparison decides (the gate no longer spends 12 evaluations).
        assert gate["test"] == "exact"
        assert gate["champion_scores"] == [0.0] * 2 and gate["challenger_scores"] == [1.0] * 2
        assert archive.champion_id() == child.id
        held_out = {c["evaluation"] for c in archive.agent_calls(child.id) if c["split"] == "heldout"}
        assert held_out == {f"gate:heldout:{1000 + k}" for k in range(2)}
        assert len(archive.agent_calls(seed.id)) == 20 + 2 * 40
    finally:
        archive.close()
