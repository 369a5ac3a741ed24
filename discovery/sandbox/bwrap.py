"""The bubblewrap backend: daemon-less namespaces around each job, about 30 ms per run.

The command line, flag by flag (see `bwrap_argv`):

- `--unshare-net --unshare-ipc --unshare-pid --unshare-uts --unshare-cgroup-try`: everything
  `--unshare-all` does except the user namespace when we are root. A user namespace made by root
  maps only uid 0, so the real switch to the job's uid below would fail; without it, the job's uid
  inside is the same on the host, and the kernel applies RLIMIT_NPROC (it never does to uid 0). As
  root each job gets a uid of its own (discovery/sandbox/uids.py), so per-user kernel limits such
  as RLIMIT_NPROC are never shared with a neighbour job. As a normal user,
  `--unshare-user --uid 65534 --gid 65534` is used instead (no setpriv). The new net namespace
  holds only a down loopback: no network at all.
- `--die-with-parent`: if bwrap dies (we SIGKILL its group at the time limit) the sandbox's init
  gets SIGKILL, and the pid namespace takes every process in it down with it; `--unshare-pid`
  also means a double-forked daemon cannot outlive the job.
- `--new-session`: setsid() inside, so the candidate cannot push keystrokes into a host
  terminal (TIOCSTI).
- `--tmpfs /` and read-only binds of the system folders and the Python install only: homes,
  /root (~/.ssh), /work and the rest of the host root are simply absent. Mount points such as
  /task are made on this tmpfs, never on the host. Parents of the Python install (under /root,
  mode 0700 here) are recreated 0755 on it, so nobody can reach the interpreter.
- `--perms 1777 --size N --tmpfs /tmp` comes before any bind below /tmp: the one writable place,
  private and size-capped.
- `--ro-bind HOST TARGET` for each job mount: task, runner and candidate are read-only.
- `--proc /proc` (the new pid namespace's own, so /proc/1/environ is the sandbox's init) and
  `--dev /dev` (a minimal /dev: null, zero, random, tty...). No /sys: it would list the host's
  network interfaces.
- `--remount-ro /` last: the tmpfs root itself becomes read-only.
- `--clearenv` + `--setenv`: the environment is built from nothing, no host variable or key.
- `--seccomp FD`: a filter (discovery/sandbox/seccomp.py) that refuses the keyring, new
  namespaces, ptrace, BPF, perf events, userfaultfd and mounts, as Docker's default profile does.
- `setpriv --reuid UID --regid UID --clear-groups --inh-caps=-all --bounding-set=-all
  --no-new-privs`: a real switch to the job's own uid; every capability is gone and cannot come back.

Limits: a per-job cgroup (memory, pids) where this process may create one, since RLIMIT_AS
breaks torch's large virtual reservations; RLIMIT_AS and RLIMIT_NPROC otherwise. The other
rlimits (CPU, FSIZE, CORE, NOFILE) always apply. The wall clock is enforced by the host.
bwrap inherits them from the `sh` (cgroup join) and `prlimit` prefixes in front of it, which set
them without a preexec_fn, so spawning can vfork (see discovery/sandbox/process.py).
"""

from __future__ import annotations

import glob
import logging
import os
import platform
import shutil
import sys

from discovery.sandbox import seccomp
from discovery.sandbox.base import PYTHON, Limits, SandboxJob, SandboxResult, SandboxUnavailable
from discovery.sandbox.cgroup import Cgroup
from discovery.sandbox.hostpaths import python_dirs, system_entries
from discovery.sandbox.spawn import Launcher, rlimits, run_group, sandbox_env, user_task_count
from discovery.sandbox.uids import JobUids

log = logging.getLogger(__name__)

NOBODY = 65534
SANDBOX_HOME = "/tmp"


def bwrap_argv(
    job: SandboxJob,
    *,
    bwrap: str,
    setpriv: str | None,
    python: str,
    as_root: bool,
    seccomp_fd: int | None = None,
    uid: int = NOBODY,
) -> list[str]:
    """The full bwrap command line for one job (see the module docstring for why each flag)."""
    limits = job.limits
    argv = [bwrap]
    if as_root:
        argv += ["--unshare-net", "--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
    else:
        argv += ["--unshare-all", "--uid", str(NOBODY), "--gid", str(NOBODY)]
    argv += ["--die-with-parent", "--new-session", "--tmpfs", "/"]
    # /tmp first: binds below it (a venv or checkout under /tmp) must land on top of it, not under it.
    argv += ["--perms", "1777", "--size", str(limits.tmp_mb * 1024 * 1024), "--tmpfs", "/tmp"]
    for path, link in system_entries():
        argv += ["--symlink", link, path] if link is not None else ["--ro-bind", path, path]
    for d in python_dirs(python):
        parents = []
        parent = os.path.dirname(d)
        while parent not in ("/", ""):
            parents.append(parent)
            parent = os.path.dirname(parent)
        for p in reversed(parents):
            argv += ["--perms", "0755", "--dir", p]
        argv += ["--ro-bind", d, d]
    for m in job.mounts:
        argv += ["--ro-bind", str(m.host), m.target]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    if limits.gpus > 0:
        # The minimal /dev has no GPU nodes; pass the NVIDIA ones through (all of them: bwrap has
        # no per-GPU device cgroup, so pick GPUs with CUDA_VISIBLE_DEVICES or use Docker).
        argv += [a for node in sorted(glob.glob("/dev/nvidia*")) for a in ("--dev-bind", node, node)]
    argv += ["--remount-ro", "/", "--chdir", SANDBOX_HOME, "--clearenv"]
    # A job uid has no passwd entry: name it, for getpass.getuser() (torch inductor's cache folder).
    names = {"USER": "sandbox", "LOGNAME": "sandbox"} if as_root else {}
    for key, value in {**sandbox_env(limits, SANDBOX_HOME), **names, **job.env}.items():
        argv += ["--setenv", key, value]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    argv.append("--")
    if as_root:
        assert setpriv is not None
        argv += [
            setpriv,
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        ]
    command = list(job.argv)
    if command and command[0] == PYTHON:
        command[0] = python
    return argv + command


class BwrapSandbox:
    """Runs each job in fresh bubblewrap namespaces, as an unprivileged uid, without network."""

    name = "bwrap"
    isolates_network = True

    def __init__(
        self, python: str | None = None, *, use_cgroup: bool = True, launcher: Launcher | None = None
    ) -> None:
        self.bwrap = shutil.which("bwrap")
        if self.bwrap is None:
            raise SandboxUnavailable(
                "bubblewrap is not installed; install it with: apt-get install -y bubblewrap"
            )
        self.as_root = os.geteuid() == 0
        self.setpriv = shutil.which("setpriv")
        if self.as_root and self.setpriv is None:
            raise SandboxUnavailable(
                "setpriv is missing (util-linux); install it with: apt-get install -y util-linux"
            )
        self.python = python or sys.executable
        self.use_cgroup = use_cgroup
        self.launcher = launcher or Launcher.find()
        self.uids = JobUids()
        self.seccomp = seccomp.program()
        if self.seccomp is None:
            log.info("no seccomp filter for %s: bubblewrap runs without one", platform.machine())

    async def run(self, job: SandboxJob) -> SandboxResult:
        """Run one job to completion or until a limit stops it."""
        cgroup = Cgroup.create(job.limits, job.labels) if self.use_cgroup else None
        seccomp_fd = seccomp.memfd(self.seccomp) if self.seccomp is not None else None
        try:
            with self.uids.lease() as uid:
                result = await self._run_as(job, uid, cgroup, seccomp_fd)
        finally:
            if seccomp_fd is not None:
                os.close(seccomp_fd)
            if cgroup is not None:
                cgroup.remove()
        if result.exit_code == 1 and result.stderr.startswith(b"bwrap: ") and not result.stdout:
            result.error = "bubblewrap failed: " + result.stderr.decode(errors="replace").strip()[:500]
        return result

    async def _run_as(
        self, job: SandboxJob, uid: int, cgroup: Cgroup | None, seccomp_fd: int | None
    ) -> SandboxResult:
        """Spawn bwrap for the job under its rlimits and cgroup, switching to `uid` inside when root."""
        limits: Limits = job.limits
        nproc = None
        if cgroup is None or not cgroup.has_pids:
            # RLIMIT_NPROC counts every task of the uid: a job uid of its own holds none yet, but as a
            # normal user the job is the caller's uid (in a user namespace), which already runs some.
            nproc = limits.pids if self.as_root else user_task_count(os.geteuid()) + limits.pids
        pairs = rlimits(limits, address_space=cgroup is None or not cgroup.has_memory, nproc=nproc)
        argv = bwrap_argv(
            job,
            bwrap=self.bwrap,
            setpriv=self.setpriv,
            python=self.python,
            as_root=self.as_root,
            seccomp_fd=seccomp_fd,
            uid=uid if self.as_root else NOBODY,
        )
        return await run_group(
            argv,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},  # bwrap's own; the job's is set inside
            cwd="/",
            limits=limits,
            rlimit_pairs=pairs,
            cgroup=cgroup,
            launcher=self.launcher,
            stdin=job.stdin,
            pass_fds=() if seccomp_fd is None else (seccomp_fd,),
        )

    def close(self) -> None:
        """Nothing persists between jobs."""
