"""The process backend runs the real runner under rlimits and kills the whole tree itself."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from discovery.sandbox.base import PYTHON, Limits, Mount, SandboxJob, SandboxResult
from discovery.sandbox.cgroup import Cgroup
from discovery.sandbox.process import ProcessSandbox
from discovery.sandbox.spawn import HOST_GONE_GRACE_S, Launcher, rewrite_argv, rlimits, run_group, sandbox_env
from tests.sandbox_fixtures import REPO, make_task, parse_result


def run(job: SandboxJob, sandbox: ProcessSandbox | None = None):
    """Run one job through a fresh process sandbox."""
    return asyncio.run((sandbox or ProcessSandbox()).run(job))


def alive(pid: int) -> bool:
    """Whether pid exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _cgroups_work() -> bool:
    """Whether this process may create cgroups (root on a writable cgroup file system)."""
    probe = Cgroup.create(Limits())
    if probe is None:
        return False
    probe.remove()
    return True


def wait_dead(pid: int) -> bool:
    """Give the kernel a moment to finish a SIGKILL; True once pid is gone."""
    for _ in range(200):
        if not alive(pid):
            return True
        time.sleep(0.01)
    return False


def test_scores_a_candidate(tmp_path: Path) -> None:
    task = make_task(tmp_path, "def solve():\n    return 41 + 1\n")
    result = run(task.job())
    assert result.exit_code == 0, result.stderr
    assert parse_result(result) == {
        "status": "ok",
        "score": 42.0,
        "metrics": {"score": 42.0},
        "feedback": None,
    }
    assert result.killed_reason is None and result.error is None


def test_environment_is_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCOVERY_TEST_SECRET", "sk-test-do-not-leak-1234")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-do-not-leak")
    task = make_task(
        tmp_path,
        """
        import os, sys
        print(sorted(os.environ.items()), file=sys.stderr)
        def solve():
            return len(os.environ)
        """,
    )
    result = run(task.job(Limits(timeout_s=20, cpus=2)))
    assert b"do-not-leak" not in result.stdout + result.stderr
    assert parse_result(result)["score"] == 8.0
    env = sandbox_env(Limits(cpus=2), "/tmp/x")
    assert set(env) == {
        "PATH",
        "LANG",
        "HOME",
        "TMPDIR",
        "PYTHONDONTWRITEBYTECODE",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
    }
    assert env["OMP_NUM_THREADS"] == "2"


def test_private_cwd_is_removed(tmp_path: Path) -> None:
    task = make_task(
        tmp_path,
        """
        import os, sys
        open("scratch.txt", "w").write("x")
        print("CWD=" + os.getcwd(), file=sys.stderr)
        """,
    )
    result = run(task.job())
    assert parse_result(result)["status"] == "ok"
    cwd = result.stderr.decode().split("CWD=")[1].split()[0]
    assert cwd != os.getcwd()
    assert not Path(cwd).exists()


def test_timeout_kills_a_loop_that_ignores_sigterm(tmp_path: Path) -> None:
    task = make_task(
        tmp_path,
        """
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            pass
        """,
    )
    result = run(task.job(Limits(timeout_s=1.0)))
    assert result.timed_out
    assert result.killed_reason == "timeout"
    assert result.exit_code == -9
    assert parse_result(result) is None


def test_output_cap_kills_and_truncates(tmp_path: Path) -> None:
    task = make_task(
        tmp_path,
        """
        import sys
        while True:
            sys.stderr.write("x" * 65536)
        """,
    )
    result = run(task.job(Limits(timeout_s=20, output_bytes=100_000)))
    assert result.output_exceeded
    assert result.killed_reason == "output_limit"
    assert len(result.stdout) + len(result.stderr) == 100_000


@pytest.mark.parametrize("use_cgroup", [False, True], ids=["rlimit", "cgroup"])
def test_memory_bomb_is_reported(tmp_path: Path, use_cgroup: bool) -> None:
    if use_cgroup and not _cgroups_work():
        pytest.skip("no writable cgroup on this machine")
    task = make_task(
        tmp_path,
        """
        blocks = []
        while True:
            blocks.append(bytearray(32 * 1024 * 1024))
        """,
    )
    result = run(task.job(Limits(timeout_s=20, memory_mb=256)), ProcessSandbox(use_cgroup=use_cgroup))
    assert result.memory_exceeded
    assert result.killed_reason == "memory_limit"


def test_stray_child_is_killed_after_exit(tmp_path: Path) -> None:
    task = make_task(
        tmp_path,
        """
        import subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        print("CHILD=%d" % child.pid, file=sys.stderr)
        """,
    )
    result = run(task.job())
    assert parse_result(result)["status"] == "ok"
    pid = int(result.stderr.decode().split("CHILD=")[1].split()[0])
    assert wait_dead(pid)


def test_daemonised_child_dies_with_the_sandbox(tmp_path: Path) -> None:
    if not _cgroups_work():
        pytest.skip("no writable cgroup: the process backend cannot follow a setsid() child")
    task = make_task(
        tmp_path,
        """
        import os, sys, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.write(2, ("DAEMON=%d\\n" % os.getpid()).encode())
                os.close(1); os.close(2)
                time.sleep(600)
            os._exit(0)
        os.wait()
        time.sleep(0.2)
        """,
    )
    result = run(task.job(), ProcessSandbox(use_cgroup=True))
    assert parse_result(result)["status"] == "ok"
    pid = int(result.stderr.decode().split("DAEMON=")[1].split()[0])
    assert wait_dead(pid)


def test_cancellation_kills_the_tree(tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    task = make_task(
        tmp_path,
        f"""
        import os, time
        open({str(marker)!r}, "w").write(str(os.getpid()))
        time.sleep(600)
        """,
    )

    async def cancel_midway() -> None:
        job = asyncio.ensure_future(ProcessSandbox().run(task.job(Limits(timeout_s=60))))
        for _ in range(500):
            if marker.exists() and marker.read_text():
                break
            await asyncio.sleep(0.01)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job

    asyncio.run(cancel_midway())
    assert wait_dead(int(marker.read_text()))


def test_file_size_limit(tmp_path: Path) -> None:
    task = make_task(
        tmp_path,
        """
        import os
        with open(os.path.join(os.environ["TMPDIR"], "big"), "wb") as fh:
            fh.write(b"x" * (3 * 1024 * 1024))
        """,
    )
    result = run(task.job(Limits(timeout_s=20, file_size_mb=1)))
    parsed = parse_result(result)
    # SIGXFSZ is ignored by Python, so the write fails with EFBIG inside the evaluator.
    assert parsed is not None and parsed["status"] == "error"
    assert "File too large" in parsed["error"]


def test_missing_interpreter_is_a_backend_error(tmp_path: Path) -> None:
    job = SandboxJob(argv=(PYTHON, "-c", "pass"), mounts=(), limits=Limits(timeout_s=5))
    result = run(job, ProcessSandbox(python=str(tmp_path / "no-such-python")))
    assert result.error is not None and result.exit_code is None


def test_rewrite_argv_maps_mounts_and_python() -> None:
    mounts = (Mount(Path("/h/task"), "/task"), Mount(Path("/h/run"), "/runner"))
    argv = rewrite_argv([PYTHON, "/runner/runner.py", "--task", "/task", "/taskx", "python3"], mounts, "/py")
    assert argv == ["/py", "/h/run/runner.py", "--task", "/h/task", "/taskx", "python3"]


def test_without_cgroup_uses_rlimits(tmp_path: Path) -> None:
    task = make_task(
        tmp_path,
        """
        import resource
        def solve():
            return resource.getrlimit(resource.RLIMIT_AS)[0] // (1024 * 1024)
        """,
    )
    result = run(task.job(Limits(timeout_s=20, memory_mb=700)), ProcessSandbox(use_cgroup=False))
    assert parse_result(result)["score"] == 700.0
    assert sys.executable  # the interpreter the backend defaults to


# --- limits applied without a preexec_fn (argv prefixes), and by the preexec_fn fallback ---

LAUNCHERS = {"prefix": Launcher.find(), "preexec": Launcher(prlimit=None, shell=None)}
REPORT_LIMITS = """
import json, os, sys, time
cand = sys.argv[sys.argv.index("--candidate") + 1]
go = os.path.join(os.path.dirname(cand), "go")
for _ in range(1500):  # a test may hold the job here while it inspects the cgroup from the host
    if not os.path.exists(go + ".wait") or os.path.exists(go):
        break
    time.sleep(0.01)
print("LIMITS=" + json.dumps(open("/proc/self/limits").read()), file=sys.stderr)
"""


def read_limits(result: SandboxResult) -> dict[str, tuple[str, str]]:
    """The job's /proc/self/limits as {name: (soft, hard)}, from what REPORT_LIMITS printed."""
    text = json.loads(result.stderr.decode().split("LIMITS=")[1].splitlines()[0])
    out = {}
    for line in text.splitlines()[1:]:
        name, soft, hard, *_units = re.split(r"\s{2,}", line.strip())
        out[name] = (soft, hard)
    return out


def expected_rlimits(
    limits: Limits, *, address_space: bool, nproc: int | None
) -> dict[str, tuple[int, int] | None]:
    """What /proc/self/limits must show as (soft, hard); None: this rlimit is not ours to set."""
    mib = 1024 * 1024
    cpu = math.ceil(limits.timeout_s * max(1.0, limits.cpus)) + 2

    def same(value: int | None) -> tuple[int, int] | None:
        return None if value is None else (value, value)

    return {
        "Max cpu time": (cpu, cpu + 2),  # soft below hard: SIGXCPU (a timeout) before SIGKILL
        "Max file size": same(limits.file_size_mb * mib),
        "Max core file size": same(0),
        "Max open files": same(1024),
        "Max address space": same(limits.memory_mb * mib) if address_space else None,
        "Max processes": same(nproc),
    }


def assert_rlimits(result: SandboxResult, expected: dict[str, tuple[int, int] | None]) -> None:
    """Each expected rlimit is in force in the job, soft and hard as given."""
    assert parse_result(result)["status"] == "ok", result.stderr[-2000:]
    seen = read_limits(result)
    for name, value in expected.items():
        if value is not None:
            assert seen[name] == (str(value[0]), str(value[1])), (name, seen[name])


async def run_watching_cgroup(
    sandbox, job: SandboxJob, go: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[SandboxResult, list[set[int]], Cgroup]:
    """Run a REPORT_LIMITS job; while it waits, record every member of each of its cgroup folders."""
    created: list[Cgroup] = []
    real_create = Cgroup.create

    def create(limits: Limits, labels: dict[str, str] | None = None) -> Cgroup | None:
        cgroup = real_create(limits, labels)
        created.append(cgroup)
        return cgroup

    monkeypatch.setattr(Cgroup, "create", create)
    (go.parent / (go.name + ".wait")).write_text("")
    running = asyncio.ensure_future(sandbox.run(job))
    members: list[set[int]] = []
    try:
        for _ in range(1000):
            if created and all(cgroup_members(d) for d in created[0].dirs):
                members = [cgroup_members(d) for d in created[0].dirs]
                break
            if running.done():
                break
            await asyncio.sleep(0.01)
    finally:
        go.write_text("")
    return await running, members, created[0]


def cgroup_members(folder: Path) -> set[int]:
    """The pids in one cgroup folder now (empty once it is gone)."""
    try:
        return {int(x) for x in (folder / "cgroup.procs").read_text().split()}
    except OSError:
        return set()


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_every_rlimit_is_applied(tmp_path: Path, launcher: str) -> None:
    task = make_task(tmp_path, REPORT_LIMITS)
    limits = Limits(timeout_s=20, cpus=1, memory_mb=700, pids=40, file_size_mb=3)
    result = run(task.job(limits), ProcessSandbox(use_cgroup=False, launcher=LAUNCHERS[launcher]))
    expected = expected_rlimits(limits, address_space=True, nproc=limits.pids)
    if os.geteuid() != 0:
        expected["Max processes"] = None  # the uid's current task count is added: checked below
        assert int(read_limits(result)["Max processes"][0]) >= limits.pids
    assert_rlimits(result, expected)


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_cgroup_is_joined_before_the_job_runs(
    tmp_path: Path, launcher: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not _cgroups_work():
        pytest.skip("no writable cgroup on this machine")
    task = make_task(tmp_path, REPORT_LIMITS)
    limits = Limits(timeout_s=20, memory_mb=300, pids=24, file_size_mb=3)
    sandbox = ProcessSandbox(use_cgroup=True, launcher=LAUNCHERS[launcher])
    result, members, cgroup = asyncio.run(
        run_watching_cgroup(sandbox, task.job(limits), task.candidate_dir / "go", monkeypatch)
    )
    # The job sat in every controller's folder (memory and pids) while it ran.
    assert members and all(members), members
    assert cgroup.has_memory and cgroup.has_pids
    # With the cgroup's RSS cap the address-space rlimit is left off (torch needs the room).
    assert read_limits(result)["Max address space"] != (str(300 * 1024 * 1024),) * 2
    assert_rlimits(result, expected_rlimits(limits, address_space=False, nproc=None))


def test_launcher_needs_no_preexec_fn(tmp_path: Path) -> None:
    launcher = Launcher.find()
    if launcher.prlimit is None or launcher.shell is None:
        pytest.skip("prlimit (util-linux) or /bin/sh is missing: the preexec_fn fallback is used")
    cgroup = Cgroup([tmp_path / "cg"], v2=True, has_memory=True, has_pids=True)
    pairs = rlimits(Limits(), address_space=True, nproc=10)
    argv, preexec = launcher.wrap(["/bin/true", "x"], pairs, cgroup)
    assert preexec is None  # so CPython vforks instead of copying this process's page tables
    assert argv[0] == launcher.shell and argv[-2:] == ["/bin/true", "x"]
    assert argv[argv.index(launcher.prlimit) :][-3:] == ["--", "/bin/true", "x"]
    fallback_argv, fallback = Launcher(None, None).wrap(["/bin/true"], pairs, cgroup)
    assert fallback_argv == ["/bin/true"] and fallback is not None


def test_failed_cgroup_join_never_starts_the_job(tmp_path: Path) -> None:
    if Launcher.find().shell is None:
        pytest.skip("no /bin/sh: the cgroup is joined by a preexec_fn")
    marker = tmp_path / "ran"
    missing = Cgroup([tmp_path / "no-such-cgroup"], v2=True, has_memory=True, has_pids=True)
    limits = Limits(timeout_s=10)
    result = asyncio.run(
        run_group(
            [sys.executable, "-c", f"open({str(marker)!r}, 'w')"],
            env=sandbox_env(limits, str(tmp_path)),
            cwd=str(tmp_path),
            limits=limits,
            rlimit_pairs=rlimits(limits, address_space=True, nproc=None),
            cgroup=missing,
            launcher=Launcher.find(),
        )
    )
    assert result.exit_code == 125
    assert not marker.exists()


HOST = """
import asyncio, sys
from pathlib import Path
from discovery.sandbox.base import Limits
from discovery.sandbox.process import ProcessSandbox
from tests.sandbox_fixtures import make_task
code = "import os, time\\nopen(%r, 'w').write(str(os.getpid()))\\ntime.sleep(600)\\n" % sys.argv[2]
task = make_task(Path(sys.argv[1]), code)
asyncio.run(ProcessSandbox().run(task.job(Limits(timeout_s=1))))
"""


def test_job_dies_soon_after_its_limit_when_the_host_is_killed(tmp_path: Path) -> None:
    if shutil.which("timeout", path="/usr/bin:/bin") is None:
        pytest.skip("coreutils timeout is missing: nothing backs up the host's own time limit")
    marker = tmp_path / "pid"
    host = subprocess.Popen([sys.executable, "-c", HOST, str(tmp_path / "task"), str(marker)], cwd=REPO)
    try:
        for _ in range(1000):
            if marker.exists() and marker.read_text():
                break
            time.sleep(0.01)
        job = int(marker.read_text())
        host.kill()  # kill -9: the host cannot clean up after itself
        host.wait()
        assert alive(job)  # nothing else has killed it yet
        deadline = time.monotonic() + 1 + HOST_GONE_GRACE_S + 10
        while alive(job) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(job), "the job outlived its time limit after the host was killed"
    finally:
        host.kill()
