"""The Ray executor on a real local cluster (a head and a second node on 127.0.0.1, started with `ray start`).

One cluster serves the whole test session; the node-loss test kills the second node, so it runs last
among the tests that need two nodes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from discovery.app.render import print_run
from discovery.archive import Archive
from discovery.archive.views import run_report
from discovery.config import ModelConfig, RunConfig
from discovery.domain import Status
from discovery.evaluation.executors import bundle
from discovery.llm import LLMClient, ModelSpec
from discovery.sandbox.base import SandboxUnavailable
from discovery.search.loop import Search
from discovery.task import load_task

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'discovery-lab[ray]'")
RayExecutor = pytest.importorskip("discovery.evaluation.executors.ray").RayExecutor

pytestmark = [pytest.mark.ray, pytest.mark.slow]
RAY = str(Path(sys.executable).with_name("ray"))
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def processes_matching(text: str) -> set[int]:
    """Pids whose command line holds text, with all their descendants (never this process or its parents)."""
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    parents = {p: _ppid(p) for p in pids}
    mine, p = set(), os.getpid()
    while p > 1:
        mine.add(p)
        p = parents.get(p, _ppid(p))
    found = {p for p in pids if text in _cmdline(p)} - mine
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in found and pid not in found and pid not in mine:
                found.add(pid)
                grew = True
    return found


def kill_all(pids: set[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


class Cluster:
    """A head and one more node on 127.0.0.1; only processes under this cluster's temp dir are touched."""

    def __init__(self) -> None:
        self.temp_dir = tempfile.mkdtemp(prefix="rt-", dir="/tmp")  # short: Ray's socket paths have a limit
        self.port, self.second_port = free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"
        # Worker processes import discovery from this checkout; dead nodes are noticed within ~2 s.
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "RAY_health_check_period_ms": "500",
            "RAY_health_check_failure_threshold": "3",
            "RAY_health_check_initial_delay_ms": "0",
            # A private loopback cluster: no token (Ray would otherwise write one under ~/.ray).
            "RAY_AUTH_MODE": "disabled",
        }
        self._start(
            "--head", "--port", str(self.port), "--temp-dir", self.temp_dir, "--include-dashboard=false"
        )
        self._start("--address", self.address, "--node-manager-port", str(self.second_port))
        ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=False)

    def _start(self, *args: str) -> None:
        """`ray start` one small node: one CPU slot, the smallest object store."""
        small = ("--num-cpus", "1", "--object-store-memory", "80000000", "--node-ip-address", "127.0.0.1")
        argv = [RAY, "start", *args, *small, "--disable-usage-stats"]
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"`ray start {' '.join(args)}` failed:\n{(done.stdout + done.stderr)[-3000:]}")

    def second_node(self) -> set[int]:
        """The second node's raylet and everything under it (its workers and their sandboxes)."""
        return processes_matching(f"--node_manager_port={self.second_port}")

    def stop(self) -> None:
        """Disconnect, then kill every process of this cluster; nothing is left running."""
        if ray.is_initialized():
            ray.shutdown()
        kill_all(processes_matching(self.temp_dir))
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """One local two-node cluster for the whole test session."""
    if not shutil.which(RAY):
        pytest.skip(f"the ray command is missing next to {sys.executable}")
    env = pytest.MonkeyPatch()
    env.setenv("RAY_AUTH_MODE", "disabled")  # for this driver and the CLI drivers the tests start
    try:
        started = Cluster()
        try:
            yield started
        finally:
            started.stop()
    finally:
        env.undo()


def backend() -> str:
    """bwrap where it works (the isolation a real node would use), else the process backend."""
    from discovery.sandbox.choose import bwrap_sandbox

    try:
        bwrap_sandbox()
    except SandboxUnavailable:
        return "process"
    return "bwrap"


def sleepy(x: float, seconds: float) -> str:
    return f"```python\ndef solve():\n    import time\n    time.sleep({seconds})\n    return {x}\n```"


def make_search(
    cluster: Cluster, task_dir: Path, tmp_path: Path, server, budget: int
) -> tuple[Archive, Search]:
    task = load_task(task_dir)
    config = RunConfig(
        task=str(task_dir),
        models=[ModelConfig(name="openai/fake", api_base=server.api_base)],
        budget=budget,
        reply_format="block",
        executor="ray",
        ray_address=cluster.address,
        eval_slots=2,
        llm_concurrency=2,
        sandbox=backend(),
        promotion_repeats=5,
    )
    archive = Archive.create(tmp_path / "run", {"task_path": str(task.path), "config": config.model_dump()})
    client = LLMClient(
        [ModelSpec("openai/fake", 1.0, server.api_base, "sk-fake")], attempts=3, max_wait_s=0.2
    )
    executor = RayExecutor(config.ray_address, config.sandbox, task, "ray-test")
    search = Search(archive, task, config, client, None, "ray-test", executor=executor)
    return archive, search


async def kill_second_node_when_busy(cluster: Cluster, timeout_s: float = 30) -> bool:
    """Kill -9 the second node's processes once one of its sandboxes is running a candidate."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pids = cluster.second_node()
        if any("runner.py" in _cmdline(p) for p in pids):
            kill_all(pids)
            return True
        await asyncio.sleep(0.1)
    return False


def test_a_run_on_two_nodes_survives_losing_one(cluster, toy_task, tmp_path, fake_llm, caplog) -> None:
    answers = iter(range(1, 100))  # each worse than the seed's x = 0: no promotion gate to wait for
    server = fake_llm(default=lambda req: sleepy(-next(answers) / 10, 1.0))
    archive, search = make_search(cluster, toy_task, tmp_path, server, budget=8)

    async def run_and_kill() -> tuple[str, bool]:
        killer = asyncio.create_task(kill_second_node_when_busy(cluster))
        reason = await search.run()
        return reason, await killer

    with caplog.at_level(logging.WARNING, logger="discovery"):
        reason, killed = asyncio.run(run_and_kill())
    assert killed, "no candidate ever ran on the second node"
    assert reason == "budget spent"
    assert any("re-queued" in r.getMessage() for r in caplog.records)
    candidates = [c for c in archive.candidates() if not Status(c.status).rejected]
    assert candidates and not archive.pending_ids()
    assert all(c.status == Status.OK for c in candidates), [(c.id, c.status, c.failure) for c in candidates]
    evaluated = [e["candidate_id"] for e in archive.events("candidate_evaluated")]
    assert sorted(evaluated) == sorted(c.id for c in candidates)  # each exactly once
    assert all(c.node and c.sandbox == backend() for c in candidates)  # `archive show` names the node


@pytest.fixture
def hung_task(toy_task: Path) -> Path:
    toml = toy_task / "task.toml"
    toml.write_text(toml.read_text().replace("timeout_s = 10", "timeout_s = 2"))
    return toy_task


HUNG = "def solve():\n    import time\n    time.sleep(600)\n    return 3\n"


def test_a_hung_candidate_is_killed_at_its_deadline(cluster, hung_task) -> None:
    task = load_task(hung_task)
    executor = RayExecutor(cluster.address, backend(), task, "ray-hung")
    started = time.monotonic()
    outcome = asyncio.run(executor.evaluate(task, HUNG))
    assert outcome.status == Status.TIMEOUT and "killed at the time limit" in outcome.failure
    assert 2 <= outcome.wall_s < 6 and time.monotonic() - started < 30
    # The driver's own deadline, when the node does not answer in time: the worker is killed.
    executor.grace_s = -1.0  # the deadline falls before the sandbox's own kill
    outcome = asyncio.run(executor.evaluate(task, HUNG))
    assert outcome.status == Status.TIMEOUT and "killed by the driver" in outcome.failure
    deadline = time.monotonic() + 10
    while processes_matching(str(bundle.bundle_dir(executor.bundle_name))) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not processes_matching(str(bundle.bundle_dir(executor.bundle_name)))  # nothing left running


def test_kill_9_of_the_driver_then_resume_loses_nothing_and_repeats_nothing(
    cluster, toy_task, tmp_path
) -> None:
    from tests.cli.test_cli import cli, db, start_cli, wait_for_calls
    from tests.fake_llm import FakeLLMServer

    archive, budget = tmp_path / "archive", 6
    answers = iter(range(1, 1000))
    with FakeLLMServer(default=lambda req: sleepy(-next(answers) / 100, 0.2), latency_s=0.3) as server:
        args = ["--model", "openai/fake", "--api-base", server.api_base, "--budget", str(budget)]
        args += ["--executor", "ray", "--ray-address", cluster.address, "--sandbox", backend(), "--name", "k"]
        proc = start_cli("run", str(toy_task), *args, archive=archive)
        wait_for_calls(archive, "k", 3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with db(archive, "k") as conn:
            before = dict(conn.execute("SELECT id, score FROM candidates WHERE status = 'ok'").fetchall())
        cli("resume", "k", archive=archive, check=True)

    conn = db(archive, "k")
    assert conn.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0] == budget
    assert conn.execute("SELECT COUNT(*) FROM candidates WHERE status = 'pending'").fetchone()[0] == 0
    after = dict(conn.execute("SELECT id, score FROM candidates WHERE status = 'ok'").fetchall())
    assert before and all(after[cid] == score for cid, score in before.items())
    evaluated = [
        r[0] for r in conn.execute("SELECT candidate_id FROM events WHERE kind = 'candidate_evaluated'")
    ]
    assert len(evaluated) == len(set(evaluated))
    nodes = {r[0] for r in conn.execute("SELECT node FROM candidates WHERE status = 'ok'")}
    assert None not in nodes
    console = Console(record=True, width=200)
    print_run(run_report(archive / "k"), console)  # what `archive show` prints
    assert "evaluated on: " + next(iter(nodes)) in console.export_text()
