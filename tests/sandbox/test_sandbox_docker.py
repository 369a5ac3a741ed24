"""The Docker backend against a real engine and a real (offline-built) skeleton image."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from discovery.sandbox.base import Limits, SandboxResult, SandboxUnavailable
from discovery.sandbox.docker import RUN_LABEL, DockerSandbox, cleanup_stale, visible_gpus
from discovery.sandbox.spawn import HOST_GONE_GRACE_S
from tests.sandbox_fixtures import REPO, docker_or_skip, make_task, parse_result, skeleton_image

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    """A skeleton image built for this module, removed afterwards."""
    yield from skeleton_image()


@pytest.fixture
def sandbox(image: str) -> Iterator[DockerSandbox]:
    """A Docker backend with its own run label, so leftovers can be counted."""
    sb = DockerSandbox(image, run_id="test-" + uuid.uuid4().hex[:8])
    yield sb
    sb.close()


def leftovers(sb: DockerSandbox) -> list[dict]:
    """Containers (running or not) that carry this backend's run label."""
    return sb.client.api.containers(all=True, filters={"label": f"{RUN_LABEL}={sb.run_id}"})


def run(sb: DockerSandbox, job) -> SandboxResult:
    """Run one job to completion."""
    return asyncio.run(sb.run(job))


def test_scores_a_candidate_and_leaves_nothing(sandbox: DockerSandbox, tmp_path: Path) -> None:
    task = make_task(tmp_path, "def solve():\n    return 5\n")
    result = run(sandbox, task.job())
    assert result.error is None, result.stderr
    assert parse_result(result)["score"] == 5.0
    assert leftovers(sandbox) == []


def test_inside_view(sandbox: DockerSandbox, tmp_path: Path) -> None:
    task = make_task(
        tmp_path,
        """
        import json, os, socket, sys
        caps = [l.split()[1] for l in open("/proc/self/status") if l.startswith(("CapEff", "CapBnd"))]
        try:
            open("/etc/owned", "w")
            root_writable = True
        except OSError:
            root_writable = False
        print("VIEW=" + json.dumps({
            "uid": os.getuid(), "ifaces": [n for _, n in socket.if_nameindex()], "caps": caps,
            "root_writable": root_writable, "env": sorted(os.environ),
        }), file=sys.stderr)
        """,
    )
    result = run(sandbox, task.job())
    assert parse_result(result)["status"] == "ok", result.stderr
    view = json.loads(result.stderr.decode().split("VIEW=")[1].splitlines()[0])
    assert view["uid"] == 65534
    assert view["ifaces"] == ["lo"]
    assert view["caps"][0] == "0000000000000000"
    assert view["root_writable"] is False
    assert not any("KEY" in k or "SECRET" in k for k in view["env"])


def test_timeout_kills_and_removes(sandbox: DockerSandbox, tmp_path: Path) -> None:
    task = make_task(
        tmp_path, "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass\n"
    )
    result = run(sandbox, task.job(Limits(timeout_s=1.5)))
    assert result.timed_out and result.killed_reason == "timeout"
    assert leftovers(sandbox) == []


def test_output_cap(sandbox: DockerSandbox, tmp_path: Path) -> None:
    task = make_task(tmp_path, "import sys\nwhile True:\n    sys.stderr.write('y' * 65536)\n")
    result = run(sandbox, task.job(Limits(timeout_s=20, output_bytes=200_000)))
    assert result.output_exceeded
    assert len(result.stdout) + len(result.stderr) == 200_000
    assert leftovers(sandbox) == []


def test_oom_is_memory_exceeded(sandbox: DockerSandbox, tmp_path: Path) -> None:
    task = make_task(tmp_path, "b = []\nwhile True:\n    b.append(bytearray(16 * 1024 * 1024))\n")
    result = run(sandbox, task.job(Limits(timeout_s=30, memory_mb=128)))
    assert result.memory_exceeded and result.killed_reason == "memory_limit"


def test_cancellation_removes_the_container(sandbox: DockerSandbox, tmp_path: Path) -> None:
    task = make_task(tmp_path, "import time\ntime.sleep(600)\n")

    async def cancel_when_running() -> None:
        job = asyncio.ensure_future(sandbox.run(task.job(Limits(timeout_s=120))))
        for _ in range(1000):
            running = sandbox.client.api.containers(filters={"label": f"{RUN_LABEL}={sandbox.run_id}"})
            if running:
                break
            await asyncio.sleep(0.02)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job

    asyncio.run(cancel_when_running())
    assert leftovers(sandbox) == []


def test_cleanup_stale_removes_labelled_containers(sandbox: DockerSandbox, image: str) -> None:
    label = "stale-" + uuid.uuid4().hex[:8]
    sandbox.client.api.create_container(image, command=["/bin/true"], labels={RUN_LABEL: label})
    assert cleanup_stale(sandbox.client, label) == 1
    assert sandbox.client.api.containers(all=True, filters={"label": f"{RUN_LABEL}={label}"}) == []


def test_missing_image_is_unavailable() -> None:
    client = docker_or_skip()
    with pytest.raises(SandboxUnavailable, match="sandbox build"):
        DockerSandbox("discovery-no-such-image:" + uuid.uuid4().hex[:8], client=client)


def test_gpu_request(sandbox: DockerSandbox, tmp_path: Path) -> None:
    task = make_task(
        tmp_path, "def solve():\n    import torch\n    return float(torch.cuda.is_available())\n"
    )
    result = run(sandbox, task.job(Limits(timeout_s=60, memory_mb=2048, gpus=1)))
    if not visible_gpus():
        assert result.error is not None and "GPU" in result.error
        pytest.skip("no GPU on this machine: checked only that a GPU job is refused clearly")
    assert parse_result(result)["score"] == 1.0, result.stderr[-2000:]


HOST = """
import asyncio, sys
from pathlib import Path
from discovery.sandbox.base import Limits
from discovery.sandbox.docker import DockerSandbox
from tests.sandbox_fixtures import make_task
task = make_task(Path(sys.argv[1]), "import time\\ntime.sleep(600)\\n")
asyncio.run(DockerSandbox(sys.argv[2], run_id=sys.argv[3]).run(task.job(Limits(timeout_s=1))))
"""
NEXT_START = (
    "import sys; from discovery.sandbox.docker import DockerSandbox; DockerSandbox(sys.argv[1]).close()"
)


def with_own_hostname(argv: list[str], hostname: str) -> list[str]:
    """argv under a hostname of its own (a UTS namespace; root only, else argv unchanged).

    A discovery process removes, as orphans, the containers of dead processes with its own host
    identity (hostname, boot, pid namespace). Test sessions sharing this engine would otherwise
    remove this test's orphan, by design, before the test has watched it end by itself.
    """
    unshare, name = shutil.which("unshare"), shutil.which("hostname")
    if os.geteuid() != 0 or unshare is None or name is None:
        return argv
    return [unshare, "--uts", "sh", "-c", f'{name} "$0" && exec "$@"', hostname, *argv]


def test_containers_of_a_killed_host_end_and_are_removed(image: str, tmp_path: Path) -> None:
    run_id = "killed-" + uuid.uuid4().hex[:8]
    hostname = "discovery-test-" + uuid.uuid4().hex[:8]
    argv = [sys.executable, "-c", HOST, str(tmp_path), image, run_id]
    host = subprocess.Popen(with_own_hostname(argv, hostname), cwd=REPO)
    client = docker_or_skip()
    try:

        def containers(status: str) -> list[dict]:
            filters = {"label": f"{RUN_LABEL}={run_id}", "status": status}
            return client.api.containers(all=True, filters=filters)

        deadline = time.monotonic() + 60
        while not containers("running") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert containers("running"), "the host never started its container"
        host.kill()  # kill -9: the host cannot remove its container
        host.wait()
        # The container kills itself soon after its time limit, with no host to do it...
        deadline = time.monotonic() + 1 + HOST_GONE_GRACE_S + 15
        while containers("running") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not containers("running"), "the container outlived its time limit after the host was killed"
        assert containers("exited"), "the stopped container is still there, for the next start to remove"
        # ...and the next discovery process (of the same host identity) removes what the killed one left.
        subprocess.run(
            with_own_hostname([sys.executable, "-c", NEXT_START, image], hostname), cwd=REPO, check=True
        )
        assert client.api.containers(all=True, filters={"label": f"{RUN_LABEL}={run_id}"}) == []
    finally:
        host.kill()
        cleanup_stale(client, run_id)
