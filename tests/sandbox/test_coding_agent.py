"""The coding_agent task end to end: real sandboxes, the real gateway, a fake model with scripted replies,
and agents that try to read the hidden tests or the references, or write outside their copy."""

from __future__ import annotations

import asyncio
import re
import sys
import textwrap
from pathlib import Path

import pytest

from discovery import evaluation
from discovery.task import load_task
from tests.sandbox.test_agent_gateway import ROOT, archive, docker_image, gateway_for, sandbox  # noqa: F401, F811

CODING_AGENT = ROOT / "tasks" / "coding_agent"
sys.path.insert(0, str(CODING_AGENT))
import instances  # noqa: E402

sys.path.remove(str(CODING_AGENT))
sys.path.insert(0, str(ROOT / "sandboxes"))
from discovery_harness.confine import landlock_abi  # noqa: E402

landlock = pytest.mark.skipif(landlock_abi() < 1, reason="this kernel has no Landlock")


def fixer(body: dict) -> str:
    """A fake model that answers the seed agent's prompt with the reference module (the fix)."""
    prompt = body["messages"][-1]["content"]
    name = re.search(r"FILE: (\w+)\.py", prompt).group(1)
    return f"The bug is fixed here.\nFILE: {name}.py\n```python\n{instances.REFERENCES[name].source}```"


def run(box, arc, server, code: str, folder: Path = CODING_AGENT, stage: str | None = "smoke"):
    """Evaluate an agent on the task (in `folder`) through a gateway session; returns (outcome, candidate id)."""
    task = load_task(folder)
    gateway = gateway_for(server, arc)
    candidate = arc.add_seed(code, f"h{len(code)}")
    try:
        agent = gateway.sessions(task.spec.agent, candidate, "search")
        outcome = asyncio.run(evaluation.evaluate_once(box, task, code, "train", 0, stage=stage, agent=agent))
    finally:
        gateway.close()
    return outcome, candidate


def test_every_injected_bug_fails_a_visible_test_and_the_reference_passes(tmp_path: Path) -> None:
    import subprocess

    for split in instances.SPLIT_MODULES:
        for inst in instances.make_instances(split, 0):
            ref = inst.reference
            folder = tmp_path / inst.name
            folder.mkdir()
            for name, text in inst.files.items():
                (folder / name).write_text(text)
            test = [sys.executable, "-B", f"test_{ref.module}.py"]
            assert subprocess.run(test, cwd=folder, capture_output=True).returncode == 1, inst.name
            (folder / f"{ref.module}.py").write_text(ref.source)
            assert subprocess.run(test, cwd=folder, capture_output=True).returncode == 0, inst.name
            hidden = instances.hidden_tests(inst, split, 0)
            assert hidden == instances.hidden_tests(inst, split, 0)  # deterministic
    assert not set(instances.SPLIT_MODULES["train"]) & set(instances.SPLIT_MODULES["heldout"])


@landlock
def test_the_seed_agent_fixes_bugs_through_the_gateway(sandbox, archive, fake_llm) -> None:  # noqa: F811
    server = fake_llm(default=fixer)
    outcome, candidate = run(sandbox, archive, server, load_task(CODING_AGENT).seed_code)
    assert outcome.status == "ok", (outcome.failure, outcome.output_tail)
    assert outcome.score == 1.0 and outcome.metrics["resolved"] == 3 and outcome.metrics["instances"] == 3
    assert outcome.metrics["resolve_rate_ci_low"] > 0.4 and outcome.metrics["confined"] == 1.0
    calls = archive.agent_calls(candidate)
    assert [c["sample_index"] for c in calls] == [0, 1, 2]  # one call per instance, each recorded
    assert all(c["status"] == "ok" and "FILE:" in c["messages"][-1]["content"] for c in calls)


@landlock
def test_an_agent_that_does_nothing_resolves_nothing(sandbox, archive, fake_llm) -> None:  # noqa: F811
    idle = "def solve(repo_path, problem, test_command):\n    return 'done'\n"
    outcome, _ = run(sandbox, archive, fake_llm(default="unused"), idle)
    assert outcome.status == "ok" and outcome.score == 0.0, (outcome.failure, outcome.output_tail)
    assert "hidden test failed" in outcome.feedback


# A cheating agent: copies the reference out of the task folder (where instances.py lives), and leaves
# a daemon behind that waits for the scoring folder to appear and writes the reference into it. It
# also tries to write outside its copy: into the task folder and a folder of the host's.
CHEAT = textwrap.dedent(
    """
    import glob, os, re, sys, time

    def reference(module):
        for folder in {folders!r}:
            try:
                text = open(os.path.join(folder, "instances.py")).read()
            except OSError:
                continue
            sys.path.insert(0, folder)
            import instances
            return instances.REFERENCES[module].source
        return None

    def solve(repo_path, problem, test_command):
        module = re.search(r"in `(\\w+)\\.py`", problem).group(1)
        for target in {writes!r}:
            try:
                with open(target, "w") as f:
                    f.write("tampered")
            except OSError:
                pass
        source = reference(module)
        if source is not None:
            open(os.path.join(repo_path, module + ".py"), "w").write(source)
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                fix = source or "def " + module + "(*a):\\n    return 0\\n"
                end = time.time() + 8
                while time.time() < end:
                    for path in glob.glob("/tmp/ca-score-*/*.py") + glob.glob({host_tmp!r} + "/ca-score-*/*.py"):
                        try:
                            open(path, "w").write(fix)
                        except OSError:
                            pass
                    time.sleep(0.01)
            os._exit(0)
        return "done"
    """
)


@landlock
@pytest.mark.parametrize("sandbox", ["process", "bwrap"], indirect=True)
def test_an_agent_cannot_read_the_references_or_write_outside_its_copy(
    sandbox,  # noqa: F811
    archive,  # noqa: F811
    fake_llm,
    tmp_path,
) -> None:
    import shutil
    import tempfile

    folder = tmp_path / "coding_agent"  # a copy: the process backend would let a failed defence write here
    shutil.copytree(CODING_AGENT, folder, ignore=shutil.ignore_patterns("__pycache__"))
    for p in (tmp_path, folder, *folder.iterdir()):
        p.chmod(0o755)
    outside = tmp_path / "outside"
    outside.mkdir()
    outside.chmod(0o777)
    task_file = folder / "evaluate.py"
    before = task_file.read_text()
    planted = Path(tempfile.gettempdir()) / f"planted-{tmp_path.name}"
    writes = [str(outside / "planted.txt"), "/task/evaluate.py", str(task_file), str(planted)]
    code = CHEAT.format(folders=["/task", str(folder)], writes=writes, host_tmp=tempfile.gettempdir())
    outcome, _ = run(sandbox, archive, fake_llm(default="unused"), code, folder)
    assert outcome.status == "ok", (outcome.failure, outcome.output_tail)
    assert outcome.score == 0.0, outcome.feedback  # neither the reference nor the daemon's overwrite helped
    assert not (outside / "planted.txt").exists() and task_file.read_text() == before
    assert not planted.exists()
