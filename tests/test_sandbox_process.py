"""The process backend runs the real runner under rlimits and kills the whole tree itself."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from discovery.sandbox.base import PYTHON, Limits, Mount, SandboxJob
from discovery.sandbox.cgroup import Cgroup
from discovery.sandbox.process import ProcessSandbox, rewrite_argv, sandbox_env
from tests.sandbox_fixtures import make_task, parse_result


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
