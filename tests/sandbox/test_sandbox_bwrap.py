"""The bubblewrap backend: real namespaces, real uid switch, the real runner."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from discovery.sandbox.base import Limits, SandboxResult, SandboxUnavailable
from discovery.sandbox.bwrap import BwrapSandbox, bwrap_argv
from discovery.sandbox.uids import JOB_UID_BASE, JOB_UID_COUNT
from tests.sandbox.test_sandbox_process import (
    LAUNCHERS,
    REPORT_LIMITS,
    _cgroups_work,
    assert_rlimits,
    expected_rlimits,
    run_watching_cgroup,
)
from tests.sandbox_fixtures import REPO, make_task, parse_result, skip_backend

pytestmark = pytest.mark.bwrap


@pytest.fixture(scope="module")
def sandbox() -> BwrapSandbox:
    """A bwrap backend, or a skip saying why there is none."""
    try:
        sb = BwrapSandbox()
    except SandboxUnavailable as exc:
        skip_backend(exc)
    return sb


def run(sandbox: BwrapSandbox, job) -> SandboxResult:
    """Run one job to completion."""
    return asyncio.run(sandbox.run(job))


def test_scores_a_candidate(sandbox: BwrapSandbox, tmp_path: Path) -> None:
    task = make_task(tmp_path, "def solve():\n    return 7\n")
    result = run(sandbox, task.job())
    assert result.error is None, result.stderr
    assert parse_result(result)["score"] == 7.0


def test_inside_view(sandbox: BwrapSandbox, tmp_path: Path) -> None:
    task = make_task(
        tmp_path,
        """
        import json, os, socket, sys
        caps = [l.split()[1] for l in open("/proc/self/status") if l.startswith(("CapEff", "CapBnd"))]
        print("VIEW=" + json.dumps({
            "uid": os.getuid(), "gid": os.getgid(), "root": sorted(os.listdir("/")),
            "ifaces": [n for _, n in socket.if_nameindex()], "caps": caps, "cwd": os.getcwd(),
            "env": sorted(os.environ),
        }), file=sys.stderr)
        """,
    )
    result = run(sandbox, task.job())
    assert parse_result(result)["status"] == "ok", result.stderr
    view = json.loads(result.stderr.decode().split("VIEW=")[1].splitlines()[0])
    if os.geteuid() == 0:  # a uid of the job's own, shared with no other job (uids.py)
        assert JOB_UID_BASE <= view["uid"] < JOB_UID_BASE + JOB_UID_COUNT and view["gid"] == view["uid"]
    else:
        assert view["uid"] == 65534 and view["gid"] == 65534
    assert view["ifaces"] == ["lo"]
    assert view["caps"] == ["0000000000000000", "0000000000000000"]
    assert view["cwd"] == "/tmp"
    # /root and /work may appear, recreated empty as parents of the Python install; these never do
    assert not {"home", "run", "mnt", "sys", "var", "srv"} & set(view["root"])
    assert {"task", "runner", "candidate", "tmp", "usr"} <= set(view["root"])
    assert "PATH" in view["env"] and not any(k.endswith("KEY") for k in view["env"])


def test_numpy_and_torch_import_under_the_memory_limit(sandbox: BwrapSandbox, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    task = make_task(
        tmp_path,
        """
        import numpy, torch
        def solve():
            return float(torch.ones(4).sum()) + float(numpy.ones(2).sum())
        """,
    )
    result = run(sandbox, task.job(Limits(timeout_s=60, memory_mb=1024)))
    assert parse_result(result)["score"] == 6.0, result.stderr[-2000:]


def test_tmp_is_private_and_capped(sandbox: BwrapSandbox, tmp_path: Path) -> None:
    task = make_task(
        tmp_path,
        """
        def solve():
            with open("/tmp/fill", "wb") as fh:
                for _ in range(64):
                    fh.write(b"x" * (1024 * 1024))
            return 1
        """,
    )
    result = run(sandbox, task.job(Limits(timeout_s=20, tmp_mb=8, file_size_mb=128)))
    parsed = parse_result(result)
    assert parsed["status"] == "error" and "No space left" in parsed["error"]


def test_argv_orders_tmpfs_before_binds_below_it(tmp_path: Path) -> None:
    task = make_task(tmp_path, "pass\n")
    argv = bwrap_argv(task.job(), bwrap="bwrap", setpriv="setpriv", python="/usr/bin/python3", as_root=True)
    assert argv.index("/tmp") < max(i for i, a in enumerate(argv) if a.startswith(str(tmp_path)))
    assert argv.index("--remount-ro") > argv.index("--proc")
    assert "--unshare-net" in argv and "--clearenv" in argv and "--die-with-parent" in argv
    assert argv[argv.index("--") + 1] == "setpriv"
    assert "/usr/bin/python3" in argv


def test_missing_interpreter_reports_a_backend_error(tmp_path: Path) -> None:
    try:
        sandbox = BwrapSandbox(python=str(tmp_path / "nope" / "python"))
    except SandboxUnavailable as exc:
        skip_backend(exc)
    task = make_task(tmp_path, "pass\n")
    result = run(sandbox, task.job())
    assert result.exit_code != 0
    assert parse_result(result) is None


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_every_rlimit_is_applied_without_a_cgroup(tmp_path: Path, launcher: str) -> None:
    try:
        sandbox = BwrapSandbox(use_cgroup=False, launcher=LAUNCHERS[launcher])
    except SandboxUnavailable as exc:
        skip_backend(exc)
    task = make_task(tmp_path, REPORT_LIMITS)
    limits = Limits(timeout_s=20, cpus=1, memory_mb=700, pids=40, file_size_mb=3)
    result = run(sandbox, task.job(limits))
    # uid 65534 inside: the kernel enforces RLIMIT_NPROC for it (and counts only its own tasks).
    assert_rlimits(result, expected_rlimits(limits, address_space=True, nproc=limits.pids))


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_cgroup_and_rlimits_are_applied(
    tmp_path: Path, launcher: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        sandbox = BwrapSandbox(use_cgroup=True, launcher=LAUNCHERS[launcher])
    except SandboxUnavailable as exc:
        skip_backend(exc)
    if not _cgroups_work():
        pytest.skip("no writable cgroup on this machine")
    task = make_task(tmp_path, REPORT_LIMITS)
    limits = Limits(timeout_s=20, memory_mb=300, pids=24, file_size_mb=3)
    result, members, cgroup = asyncio.run(
        run_watching_cgroup(sandbox, task.job(limits), task.candidate_dir / "go", monkeypatch)
    )
    assert members and all(members), members  # bwrap and the job sat in every controller's folder
    assert_rlimits(
        result,
        expected_rlimits(
            limits, address_space=not cgroup.has_memory, nproc=None if cgroup.has_pids else limits.pids
        ),
    )


NEIGHBOUR = """
import threading
def solve():
    started = []
    for _ in range(6):
        t = threading.Thread(target=lambda: None)
        t.start()
        started.append(t)
    for t in started:
        t.join()
    return len(started)
"""
HOLD_EVALUATOR = """
import os
def evaluate(candidate_path, split="train", seed=0):
    namespace = {"__name__": "candidate", "ATTACK": {"hold_s": 8}}
    with open(candidate_path) as fh:
        exec(compile(fh.read(), candidate_path, "exec"), namespace)
    return {"score": float(namespace.get("SCORE", 0.0))}
"""


def test_a_job_holding_every_task_it_may_start_leaves_its_neighbour_room(tmp_path: Path) -> None:
    # Without a pids cgroup the only task cap is RLIMIT_NPROC, which the kernel counts per uid:
    # one job that uses up its share must not stop another job, running beside it, from starting.
    if os.geteuid() != 0:
        pytest.skip("as a normal user each job is the caller's uid in a user namespace")
    try:
        sandbox = BwrapSandbox(use_cgroup=False)
    except SandboxUnavailable as exc:
        skip_backend(exc)
    attack = (REPO / "tests" / "escapes" / "hold_all_tasks.py").read_text()
    hog = make_task(tmp_path / "hog", attack, HOLD_EVALUATOR)
    neighbour = make_task(tmp_path / "neighbour", NEIGHBOUR)
    limits = Limits(timeout_s=30, memory_mb=512, pids=24)

    async def both() -> tuple[SandboxResult, SandboxResult]:
        holding = asyncio.ensure_future(sandbox.run(hog.job(limits)))
        await asyncio.sleep(3)  # the hog has reached its limit and holds it for 8 s
        beside = await sandbox.run(neighbour.job(limits))
        return await holding, beside

    held, beside = asyncio.run(both())
    assert 0 < parse_result(held)["score"] < limits.pids, held.stderr[-2000:]  # it stopped at its cap
    assert held.wall_s > 8
    assert parse_result(beside) == {**parse_result(beside), "status": "ok", "score": 6.0}, beside


AS_A_USER = """
import asyncio, subprocess, sys
from pathlib import Path
from discovery.sandbox.base import Limits
from discovery.sandbox.bwrap import BwrapSandbox
from tests.sandbox_fixtures import make_task, parse_result
held = [subprocess.Popen(["sleep", "120"]) for _ in range(40)]  # the user runs other programs too
try:
    task = make_task(Path(sys.argv[1]), "def solve():\\n    return 7\\n")
    result = asyncio.run(BwrapSandbox(sys.executable, use_cgroup=False).run(task.job(Limits(timeout_s=60, pids=16))))
    print("RESULT", parse_result(result), result.stderr[-500:])
finally:
    for p in held:
        p.kill()
"""


def test_as_a_normal_user_the_task_limit_leaves_room_for_the_users_other_programs() -> None:
    # Unprivileged bwrap runs the job as the caller's uid (in a user namespace), whose task count
    # RLIMIT_NPROC includes: the job's own limit comes on top of what the user already runs.
    setpriv, bwrap, python = shutil.which("setpriv"), shutil.which("bwrap"), "/usr/bin/python3"
    if os.geteuid() != 0 or setpriv is None or bwrap is None or not os.access(python, os.X_OK):
        pytest.skip("needs root (to become a fresh normal user), bubblewrap and a system python3")
    uid = 0x6F000000 + secrets.randbelow(1 << 20)  # a user no other process runs as
    as_user = [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    probe = subprocess.run(
        [*as_user, bwrap, "--unshare-all", "--ro-bind", "/", "/", "/bin/true"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip(f"unprivileged bubblewrap does not work here: {probe.stderr[-300:]!r}")
    work = Path(tempfile.mkdtemp(prefix="discovery-user-"))
    try:
        work.chmod(0o777)
        proc = subprocess.run(
            [*as_user, python, "-c", AS_A_USER, str(work)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=work,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        )
        assert "RESULT {'status': 'ok', 'score': 7.0" in proc.stdout, proc.stdout + proc.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)
