"""Malicious candidates (tests/escapes/) against every backend that claims to contain them.

Each candidate runs inside the evaluator's own process (the worst case). A test asserts the host
side: nothing reached the listener on 127.0.0.1, no file changed, no secret came out, no process
survived, and the result names the right reason. Attacks a backend cannot contain (the process
backend has no network or file-system isolation) are not run on it; the skip says why.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import platform
import secrets
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from discovery import evaluation
from discovery.errors import UserError
from discovery.sandbox import choose, spawn
from discovery.sandbox.base import Limits, Sandbox, SandboxResult, SandboxUnavailable
from discovery.sandbox.bwrap import BwrapSandbox
from discovery.sandbox.docker import RUN_LABEL, DockerSandbox
from discovery.sandbox.process import ProcessSandbox
from tests.sandbox_fixtures import REPO, TinyTask, make_task, parse_result, skeleton_image, skip_backend

ESCAPES = Path(__file__).resolve().parents[1] / "escapes"
SECRET = "discovery-test-secret-" + uuid.uuid4().hex
BACKENDS = ["process", "bwrap", "docker"]
# Attacks the process backend cannot contain: it shares the host's network, files, pids and uid.
PROCESS_CANNOT = {
    "net_connect": "the process backend shares the host network",
    "net_interfaces": "the process backend shares the host network",
    "write_outside_tmp": "the process backend has no file-system isolation",
    "rewrite_score": "the process backend has no file-system isolation",
    "read_host_files": "the process backend sees the host's files and /proc",
    "fork_bomb": "the process backend runs as root here, and the kernel ignores RLIMIT_NPROC for root",
    "daemonize": "without a cgroup the process backend cannot follow a setsid() daemon",
    "kill_host": "the process backend runs as the host user and could signal any host process",
    "kernel_surface": "the process backend applies no seccomp filter",
    "socket_families": "the process backend applies no seccomp filter",
}
# Attacks left to Docker's own default seccomp profile, which allows them (replacing that profile
# with ours would lose its allowlist of syscalls; Docker cannot stack two).
DOCKER_CANNOT = {
    "socket_families": "Docker's default seccomp profile allows AF_VSOCK and every netlink protocol",
    "cpu_burn": "Docker throttles CPU (nano_cpus) and sets no CPU-time rlimit",
}
pytestmark = pytest.mark.slow

LIMITS = Limits(timeout_s=15, memory_mb=256, pids=32, output_bytes=1_000_000, tmp_mb=16)

ESCAPE_EVALUATOR = """
import json, os

def evaluate(candidate_path, split="train", seed=0):
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "attack.json")) as fh:
        attack = json.load(fh)
    namespace = {"__name__": "candidate", "ATTACK": attack}
    with open(candidate_path) as fh:
        exec(compile(fh.read(), candidate_path, "exec"), namespace)
    return {"score": float(namespace.get("SCORE", 1.0))}
"""


class Listener:
    """A TCP listener on 127.0.0.1 that records every connection it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    self.connections.append(conn.recv(100) or b"(connected)")
                except OSError:
                    self.connections.append(b"(connected)")

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@dataclass
class Attack:
    """One malicious candidate set up on the host, with everything the assertions look at."""

    name: str
    task: TinyTask
    listener: Listener
    marker: str
    host_dir: Path
    sentinel: subprocess.Popen
    hashes: dict[Path, str] = field(default_factory=dict)

    def changed_files(self) -> list[Path]:
        """Host files whose content changed, and new files in the watched folders."""
        changed = [p for p, h in self.hashes.items() if not p.exists() or _digest(p) != h]
        for folder in (self.task.task_dir, self.task.candidate_dir, self.host_dir, REPO / "sandboxes"):
            changed += [p for p in folder.rglob("escape.txt")]
        return changed

    def survivors(self) -> list[int]:
        """Host processes that carry this attack's marker in their command line."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if self.marker.encode() in cmdline:
                found.append(int(entry.name))
        return found


def _digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def docker_image() -> Iterator[str]:
    """A skeleton image for the Docker runs of this module."""
    yield from skeleton_image()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """Each backend in turn, or a skip saying why it is not available here."""
    name = request.param
    try:
        if name == "process":
            sandbox: Sandbox = ProcessSandbox()
        elif name == "bwrap":
            sandbox = choose.bwrap_sandbox()
        else:
            sandbox = DockerSandbox(
                request.getfixturevalue("docker_image"), run_id="escape-" + uuid.uuid4().hex[:8]
            )
    except SandboxUnavailable as exc:
        skip_backend(f"{name}: {exc}")
    yield sandbox
    if isinstance(sandbox, DockerSandbox):
        left = sandbox.client.api.containers(all=True, filters={"label": f"{RUN_LABEL}={sandbox.run_id}"})
        sandbox.close()
        assert left == [], "a container was left behind"
    else:
        sandbox.close()


def attack(name: str, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Attack]:
    """Set up the attack `name` (or skip it on a backend that cannot contain it)."""
    if sandbox.name == "process" and name in PROCESS_CANNOT:
        pytest.skip(f"not run on the process backend: {PROCESS_CANNOT[name]}")
    if sandbox.name == "docker" and name in DOCKER_CANNOT:
        pytest.skip(f"not run on the Docker backend: {DOCKER_CANNOT[name]}")
    monkeypatch.setenv("DISCOVERY_TEST_SECRET", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    host_dir.chmod(0o777)  # writable even by nobody, had it been visible
    secret_file = host_dir / "secret.txt"
    secret_file.write_text(SECRET)
    secret_file.chmod(0o644)
    task = make_task(tmp_path / "job", (ESCAPES / f"{name}.py").read_text(), ESCAPE_EVALUATOR)
    listener = Listener()
    marker = "discovery-escape-marker-" + uuid.uuid4().hex
    sentinel = subprocess.Popen(["sleep", "120"])
    params = {
        "port": listener.port,
        "marker": marker,
        "secret": SECRET,
        "secret_file": str(secret_file),
        "home": str(Path.home()),
        "host_task": str(task.task_dir),
        "host_candidate": str(task.candidate_dir),
        "host_dir": str(host_dir),
        "test_pid": os.getpid(),
        "sentinel_pid": sentinel.pid,
    }
    (task.task_dir / "attack.json").write_text(json.dumps(params))
    (task.task_dir / "attack.json").chmod(0o644)
    watched = [
        task.task_dir / "evaluate.py",
        task.task_dir / "attack.json",
        task.candidate,
        REPO / "sandboxes" / "runner.py",
        REPO / "sandboxes" / "discovery_harness" / "errors.py",
    ]
    record = Attack(name, task, listener, marker, host_dir, sentinel, {p: _digest(p) for p in watched})
    try:
        yield record
    finally:
        listener.close()
        for pid in record.survivors():  # never leave an escaped process running, even on failure
            os.kill(pid, signal.SIGKILL)
        sentinel.kill()
        sentinel.wait()


def run(sandbox: Sandbox, a: Attack, limits: Limits = LIMITS) -> SandboxResult:
    """Evaluate the attack once."""
    return asyncio.run(sandbox.run(a.task.job(limits, labels={"discovery.test": a.name})))


def assert_host_unchanged(a: Attack, result: SandboxResult) -> None:
    """The checks every attack must pass: no connection, no file change, no secret out, no survivor."""
    time.sleep(0.3)  # a surviving daemon would have called by now
    assert a.listener.connections == [], f"the listener was reached: {a.listener.connections}"
    assert a.changed_files() == []
    assert SECRET.encode() not in result.stdout + result.stderr
    assert a.survivors() == []
    assert a.sentinel.poll() is None, "a host process was killed"


def score(result: SandboxResult) -> float | None:
    """The score the runner reported, or None when the evaluation failed."""
    parsed = parse_result(result)
    return parsed["score"] if parsed and parsed["status"] == "ok" else None


@pytest.fixture
def make_attack(backend: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A factory: make_attack(name) -> Attack, cleaned up after the test."""
    gens = []

    def make(name: str) -> Attack:
        gen = attack(name, backend, tmp_path, monkeypatch)
        gens.append(gen)
        return next(gen)

    yield make
    for gen in gens:
        for _ in gen:
            pass


def test_tcp_connect_to_host_listener(backend: Sandbox, make_attack) -> None:
    a = make_attack("net_connect")
    result = run(backend, a)
    assert score(result) == 0.0, result.stderr[-1000:]
    assert_host_unchanged(a, result)


def test_no_interface_besides_loopback(backend: Sandbox, make_attack) -> None:
    a = make_attack("net_interfaces")
    result = run(backend, a)
    assert score(result) == 0.0, result.stdout[-1000:] + result.stderr[-1000:]
    assert_host_unchanged(a, result)


def test_write_outside_tmp(backend: Sandbox, make_attack) -> None:
    a = make_attack("write_outside_tmp")
    result = run(backend, a)
    assert score(result) == 0.0, result.stderr[-1000:]
    assert_host_unchanged(a, result)


def test_rewrite_the_evaluator_score(backend: Sandbox, make_attack) -> None:
    a = make_attack("rewrite_score")
    first, second = run(backend, a), run(backend, a)
    assert score(first) == 1.0 and score(second) == 1.0, second.stderr[-1000:]
    assert_host_unchanged(a, second)


def test_host_environment_never_reaches_the_candidate(backend: Sandbox, make_attack) -> None:
    a = make_attack("read_env")
    result = run(backend, a)
    assert score(result) == 0.0
    assert b"OPENAI_API_KEY" not in result.stdout + result.stderr
    assert_host_unchanged(a, result)


def test_read_host_secrets_home_and_proc(backend: Sandbox, make_attack) -> None:
    a = make_attack("read_host_files")
    result = run(backend, a)
    assert score(result) is not None, result.stderr[-1000:]
    assert b"/.ssh/" not in result.stderr
    assert_host_unchanged(a, result)


def test_fork_bomb(backend: Sandbox, make_attack) -> None:
    a = make_attack("fork_bomb")
    result = run(backend, a, Limits(timeout_s=10, memory_mb=512, pids=32))
    assert score(result) is None
    parsed = parse_result(result)
    assert result.timed_out or (parsed and "Resource temporarily unavailable" in parsed["error"]), result
    assert_host_unchanged(a, result)


def test_memory_bomb(backend: Sandbox, make_attack) -> None:
    a = make_attack("memory_bomb")
    result = run(backend, a)
    assert result.memory_exceeded and result.killed_reason == "memory_limit", result
    assert score(result) is None
    assert_host_unchanged(a, result)


def test_infinite_loop_ignoring_sigterm(backend: Sandbox, make_attack) -> None:
    a = make_attack("sigterm_loop")
    result = run(backend, a, Limits(timeout_s=1.5, memory_mb=256))
    assert result.timed_out and result.killed_reason == "timeout"
    assert_host_unchanged(a, result)


def test_sleep_past_the_wall_clock(backend: Sandbox, make_attack) -> None:
    a = make_attack("sleep_past_limit")
    result = run(backend, a, Limits(timeout_s=1.5, memory_mb=256))
    assert result.timed_out and score(result) is None
    assert_host_unchanged(a, result)


def test_daemonised_child_dies_with_the_sandbox(backend: Sandbox, make_attack) -> None:
    a = make_attack("daemonize")
    result = run(backend, a)
    assert score(result) == 1.0, result.stderr[-1000:]
    assert_host_unchanged(a, result)


def test_100mb_of_output(backend: Sandbox, make_attack) -> None:
    a = make_attack("big_stdout")
    result = run(backend, a)
    assert result.output_exceeded and result.killed_reason == "output_limit"
    assert len(result.stdout) + len(result.stderr) <= LIMITS.output_bytes
    assert_host_unchanged(a, result)


def test_kill_host_processes(backend: Sandbox, make_attack) -> None:
    a = make_attack("kill_host")
    result = run(backend, a)
    assert result.killed_reason is None
    assert_host_unchanged(a, result)  # the sentinel, the listener and this test are all alive


def test_forged_result_line(backend: Sandbox, make_attack) -> None:
    # The candidate runs inside the evaluator's process and writes a fake result line to every fd,
    # then exits before the runner can. The host only accepts a line signed with the per-evaluation
    # nonce that it sent on the runner's stdin, so the forgery is caught and recorded as such.
    a = make_attack("forge_result")
    nonce = secrets.token_hex(16)
    job = dataclasses.replace(
        a.task.job(LIMITS, labels={"discovery.test": a.name}), stdin=f"{nonce}\n".encode()
    )
    result = asyncio.run(backend.run(job))
    outcome = evaluation.parse_result(result, nonce)
    assert outcome.status == "failed" and outcome.score is None
    assert "forged" in outcome.failure


def test_auto_never_picks_the_process_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        picked = choose.make_sandbox("auto", run_id="escape-auto")
    except UserError:
        picked = None
    if picked is not None:
        assert picked.name in ("docker", "bwrap") and picked.isolates_network
        picked.close()

    def unavailable(*_args, **_kwargs):
        raise SandboxUnavailable("not here (simulated absence)")

    monkeypatch.setattr(choose, "docker_sandbox", unavailable)
    monkeypatch.setattr(choose, "bwrap_sandbox", unavailable)
    with pytest.raises(UserError, match="bubblewrap"):
        choose.make_sandbox("auto", run_id="escape-auto")


def test_backends_report_isolation_honestly() -> None:
    assert ProcessSandbox.isolates_network is False
    assert BwrapSandbox.isolates_network is True and DockerSandbox.isolates_network is True


def test_kernel_keyring_and_user_namespaces_are_refused(backend: Sandbox, make_attack) -> None:
    if platform.machine() != "x86_64":
        pytest.skip("the attack uses x86-64 syscall numbers")
    a = make_attack("kernel_surface")
    result = run(backend, a)
    assert score(result) == 0.0, result.stderr[-2000:]
    assert_host_unchanged(a, result)


def test_socket_families_a_sandbox_never_needs_are_refused(backend: Sandbox, make_attack) -> None:
    a = make_attack("socket_families")
    result = run(backend, a)
    assert score(result) == 0.0, result.stdout[-2000:] + result.stderr[-2000:]
    assert_host_unchanged(a, result)


def test_a_cpu_time_limit_kill_is_a_timeout(
    backend: Sandbox, make_attack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RLIMIT_CPU at 1 s, far below the 20 s wall clock: the kernel, not the host, stops the job.
    a = make_attack("cpu_burn")
    monkeypatch.setattr(spawn, "cpu_seconds", lambda _limits: 1)
    nonce = secrets.token_hex(16)
    job = a.task.job(Limits(timeout_s=20, memory_mb=256), labels={"discovery.test": a.name})
    result = asyncio.run(backend.run(dataclasses.replace(job, stdin=f"{nonce}\n".encode())))
    assert result.wall_s < 15, result
    assert result.timed_out and result.killed_reason == "timeout", result
    assert evaluation.parse_result(result, nonce).status == "timeout"
    assert_host_unchanged(a, result)


CHILD_EVALUATOR = """
import subprocess, sys

def evaluate(candidate_path, split="train", seed=0):
    out = subprocess.run([sys.executable, candidate_path], capture_output=True, text=True, timeout=20)
    return {"score": 1.0, "feedback": out.stdout + out.stderr}
"""


def test_a_child_cannot_add_lines_to_the_result_stream(backend: Sandbox, tmp_path: Path) -> None:
    # The evaluator runs the candidate in a child process, as README advises for tasks that must
    # resist it: the child must not reach the stream that carries the runner's result line.
    if backend.name == "process":
        pytest.skip("not run on the process backend: it shares the host's pids and /proc")
    task = make_task(tmp_path, (ESCAPES / "inject_result_line.py").read_text(), CHILD_EVALUATOR)
    nonce = secrets.token_hex(16)
    job = dataclasses.replace(
        task.job(LIMITS, labels={"discovery.test": "inject"}), stdin=f"{nonce}\n".encode()
    )
    result = asyncio.run(backend.run(job))
    outcome = evaluation.parse_result(result, nonce)
    assert outcome.status == "ok" and outcome.score == 1.0, (outcome.failure, result.stdout[-2000:])
    assert "REACHED=\n" in (outcome.feedback or ""), outcome.feedback
