"""The process backend: a plain subprocess under rlimits, in its own session, killed as a group.

It limits resources only: no network or file-system isolation. Use it where neither Docker nor
bubblewrap exists, and only when the user names it.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile

from discovery.sandbox.base import SandboxJob, SandboxResult
from discovery.sandbox.cgroup import Cgroup
from discovery.sandbox.spawn import (
    HOST_GONE_GRACE_S,
    Launcher,
    rewrite_argv,
    rewrite_env,
    rlimits,
    run_group,
    sandbox_env,
    user_task_count,
)

log = logging.getLogger(__name__)


class ProcessSandbox:
    """Runs jobs as host subprocesses with rlimits and a scrubbed environment; no isolation.

    use_cgroup=True also puts each job in its own cgroup (memory, pids), which follows children
    that leave the process group with setsid(); it costs 10-20 ms per job (cgroup v1 attach), so
    it is off by default for this backend, whose point is being cheap.
    """

    name = "process"
    isolates_network = False

    def __init__(
        self, python: str | None = None, *, use_cgroup: bool = False, launcher: Launcher | None = None
    ) -> None:
        self.python = python or sys.executable
        self.use_cgroup = use_cgroup
        self.launcher = launcher or Launcher.find()
        # coreutils timeout as a backstop: if the host is killed (-9), nothing outlives the limit long.
        self.backstop = shutil.which("timeout", path="/usr/bin:/bin")

    async def run(self, job: SandboxJob) -> SandboxResult:
        """Run one job in a private temporary working directory, removed afterwards."""
        limits = job.limits
        home = tempfile.mkdtemp(prefix="discovery-sbx-")
        cgroup = Cgroup.create(limits, job.labels) if self.use_cgroup else None
        try:
            uid = os.geteuid()
            # Root ignores RLIMIT_NPROC; for others it counts every task of the uid, so add ours.
            nproc = limits.pids if uid == 0 else user_task_count(uid) + limits.pids
            # With a cgroup the memory limit is real RSS; RLIMIT_AS would break torch's reservations.
            pairs = rlimits(limits, address_space=cgroup is None or not cgroup.has_memory, nproc=nproc)
            argv = rewrite_argv(job.argv, job.mounts, self.python)
            if self.backstop and shutil.which(argv[0]):
                # The host kills the group at timeout_s; this fires only when the host is gone.
                argv = [self.backstop, "-s", "KILL", f"{limits.timeout_s + HOST_GONE_GRACE_S:g}", *argv]
            return await run_group(
                argv,
                env={**sandbox_env(limits, home), **rewrite_env(job.env, job.mounts)},
                cwd=home,
                limits=limits,
                rlimit_pairs=pairs,
                cgroup=cgroup,
                launcher=self.launcher,
                stdin=job.stdin,
            )
        finally:
            if cgroup is not None:
                cgroup.remove()
            shutil.rmtree(home, ignore_errors=True)

    def close(self) -> None:
        """Nothing persists between jobs."""
