"""Spawning a sandboxed job: environment, rlimits, cgroup join, process group, capped output, kill.

The process backend runs jobs with this alone; bwrap wraps the same spawn in its namespaces, and
the Docker backend borrows the environment and the host-gone grace.

Spawning: limits are applied by argv prefixes run in the child (`sh -c 'echo $$ > cgroup.procs'`
to join a cgroup, then util-linux `prlimit --cpu=.. -- cmd`), never by a preexec_fn. A preexec_fn
makes CPython fork() instead of vfork(), and fork() copies the page tables of this big host process
(~30 ms with litellm and torch imported) while the event loop waits. Without one, CPython vforks
(start_new_session and close_fds do not prevent it): the loop is blocked only until exec.
The preexec_fn path remains as a fallback where prlimit or /bin/sh is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import resource
import shutil
import signal
import time
from collections.abc import Callable, Sequence

from discovery.sandbox.base import PYTHON, Limits, Mount, SandboxResult
from discovery.sandbox.cgroup import Cgroup

log = logging.getLogger(__name__)

_CHUNK = 65536
_EOF_GRACE_S = 0.5  # after the child exits, how long to wait for pipes held by strays
_NOFILE = 1024
_SHELL = "/bin/sh"
CPU_KILL_GRACE_S = 2  # CPU seconds between SIGXCPU (soft limit) and SIGKILL (hard limit)
_PRLIMIT_FLAGS = {
    resource.RLIMIT_CPU: "--cpu",
    resource.RLIMIT_FSIZE: "--fsize",
    resource.RLIMIT_CORE: "--core",
    resource.RLIMIT_NOFILE: "--nofile",
    resource.RLIMIT_AS: "--as",
    resource.RLIMIT_NPROC: "--nproc",
}


def sandbox_env(limits: Limits, home: str) -> dict[str, str]:
    """The whole environment a candidate sees: nothing from the host, so no keys can leak."""
    threads = str(max(1, math.ceil(limits.cpus)))
    return {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": home,
        "TMPDIR": home,
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
    }


# One rlimit as the child gets it: (resource, soft, hard).
Rlimit = tuple[int, int, int]


def cpu_seconds(limits: Limits) -> int:
    """RLIMIT_CPU's soft limit: a backstop above the wall clock, which the host enforces itself."""
    return math.ceil(limits.timeout_s * max(1.0, limits.cpus)) + 2


def rlimits(limits: Limits, *, address_space: bool, nproc: int | None) -> list[Rlimit]:
    """The rlimits applied to the child before exec (soft = hard except for CPU time)."""
    mib = 1024 * 1024
    cpu = cpu_seconds(limits)
    # Soft below hard: the kernel sends SIGXCPU at the soft limit, which ends the job as a timeout;
    # with soft = hard it checks the hard limit first and sends SIGKILL, which reads as a crash.
    values = [
        (resource.RLIMIT_CPU, cpu, cpu + CPU_KILL_GRACE_S),
        (resource.RLIMIT_FSIZE, limits.file_size_mb * mib, limits.file_size_mb * mib),
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_NOFILE, _NOFILE, _NOFILE),
    ]
    if address_space:
        values.append((resource.RLIMIT_AS, limits.memory_mb * mib, limits.memory_mb * mib))
    if nproc is not None:
        values.append((resource.RLIMIT_NPROC, nproc, nproc))
    return values


def lowered(values: Sequence[Rlimit]) -> list[Rlimit]:
    """Each limit capped at our own hard limit, which the child inherits: it can only lower them."""
    out = []
    for res, soft, hard in values:
        _soft, ours = resource.getrlimit(res)
        if ours != resource.RLIM_INFINITY:
            # raising a hard limit needs privileges we may lack
            soft, hard = min(soft, ours), min(hard, ours)
        out.append((res, soft, hard))
    return out


def prlimit_argv(prlimit: str, values: Sequence[Rlimit]) -> list[str]:
    """`prlimit --cpu=SOFT:HARD ... --`: sets the limits on itself, then execs the rest of argv."""
    flags = (f"{_PRLIMIT_FLAGS[res]}={soft}:{hard}" for res, soft, hard in lowered(values))
    return [prlimit, *flags, "--"]


def make_preexec(values: Sequence[Rlimit], cgroup: Cgroup | None) -> Callable[[], None]:
    """A preexec_fn that joins the cgroup and lowers the rlimits in the child (fallback: forces fork)."""
    procs_files = cgroup.procs_files() if cgroup is not None else []
    capped = lowered(values)

    def preexec() -> None:
        # Join first, so everything the child ever forks is counted and can be killed.
        for path in procs_files:
            with open(path, "w") as fh:
                fh.write(str(os.getpid()))
        for res, soft, hard in capped:
            resource.setrlimit(res, (soft, hard))

    return preexec


def ended_by_signal(code: int | None) -> int | None:
    """The signal that ended a job: -N from a direct child, 128+N relayed by bwrap, timeout or docker."""
    if code is None:
        return None
    if code < 0:
        return -code
    if 128 < code < 128 + signal.NSIG:
        return code - 128
    return None


@dataclasses.dataclass(frozen=True)
class Launcher:
    """How a child gets its cgroup and rlimits before exec: argv prefixes, so CPython can vfork.

    prlimit or shell None means that part falls back to a preexec_fn (and so to fork()).
    """

    prlimit: str | None
    shell: str | None

    @classmethod
    def find(cls) -> Launcher:
        """Locate util-linux prlimit and /bin/sh; log the slow fallback when one is missing."""
        prlimit = shutil.which("prlimit") or shutil.which("prlimit", path="/usr/bin:/bin:/usr/sbin:/sbin")
        shell = _SHELL if os.access(_SHELL, os.X_OK) else None
        if prlimit is None:
            log.debug("prlimit (util-linux) not found: rlimits via preexec_fn, each spawn forks")
        if shell is None:
            log.debug("%s not found: cgroup join via preexec_fn, each spawn forks", _SHELL)
        return cls(prlimit, shell)

    def wrap(
        self, argv: Sequence[str], pairs: Sequence[Rlimit], cgroup: Cgroup | None
    ) -> tuple[list[str], Callable[[], None] | None]:
        """argv behind the cgroup-join and prlimit prefixes, and the preexec_fn still needed (or None)."""
        prefix: list[str] = []
        join = cgroup
        if cgroup is not None and self.shell is not None:
            # Joined in the child before exec, not by the parent after spawn: no window in which
            # the job runs (and forks) outside its cgroup, and a v1 attach (synchronize_rcu, ms)
            # stalls the child, not the event loop.
            prefix += cgroup.join_argv(self.shell)
            join = None
        rest = pairs
        if pairs and self.prlimit is not None:
            prefix += prlimit_argv(self.prlimit, pairs)
            rest = []
        preexec = make_preexec(rest, join) if rest or join is not None else None
        return prefix + list(argv), preexec


def user_task_count(uid: int) -> int:
    """Tasks (threads included) the uid owns now: RLIMIT_NPROC counts them all, not only ours."""
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            st = os.stat(entry.path)
            if st.st_uid == uid:
                count += max(1, os.stat(entry.path + "/task").st_nlink - 2)
        except OSError:
            continue
    return count


def rewrite_argv(argv: Sequence[str], mounts: Sequence[Mount], python: str) -> list[str]:
    """Map the PYTHON token to the interpreter and mount targets to host paths (no mount namespace)."""
    out = []
    for i, arg in enumerate(argv):
        if i == 0 and arg == PYTHON:
            out.append(python)
            continue
        for m in mounts:
            if arg == m.target or arg.startswith(m.target.rstrip("/") + "/"):
                arg = str(m.host) + arg[len(m.target.rstrip("/")) :]
                break
        out.append(arg)
    return out


def rewrite_env(env: dict[str, str], mounts: Sequence[Mount]) -> dict[str, str]:
    """The job's extra environment with mount targets mapped to host paths (no mount namespace)."""
    return {key: rewrite_argv(["", value], mounts, "")[1] for key, value in env.items()}


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def killpg(pgid: int) -> None:
    """SIGKILL a whole process group; gone already is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class _Capture:
    """Collects stdout and stderr up to a shared byte budget."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self.exceeded = asyncio.Event()
        self.out = bytearray()
        self.err = bytearray()

    async def pump(self, stream: asyncio.StreamReader, sink: bytearray) -> None:
        """Read one stream to EOF, keeping what fits in the budget; flag when it overflows."""
        while True:
            chunk = await stream.read(_CHUNK)
            if not chunk:
                return
            room = self.budget - self.used
            if len(chunk) > room:
                sink += chunk[: max(room, 0)]
                self.used = self.budget
                self.exceeded.set()
                return
            sink += chunk
            self.used += len(chunk)


async def spawn(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cwd: str,
    preexec: Callable[[], None] | None,
    stdin: bytes = b"",
    pass_fds: Sequence[int] = (),
) -> asyncio.subprocess.Process:
    """Start argv in its own session with piped output; vfork()s unless a preexec_fn is given."""
    creating = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=cwd,
            start_new_session=True,  # own session and process group: killpg reaches every child
            preexec_fn=preexec,
            close_fds=True,
            pass_fds=tuple(pass_fds),
        )
    )
    try:
        proc = await asyncio.shield(creating)
    except asyncio.CancelledError:
        # Cancelled while the child was being set up: it exists already and would wait on its
        # stdin forever, outside any group we still track. Finish creating it, kill it, re-raise.
        with contextlib.suppress(Exception):
            orphan = await creating
            killpg(orphan.pid)
            # Close its pipes now: a transport left to the garbage collector after the loop has
            # closed prints "Event loop is closed" with a traceback on the way out.
            orphan._transport.close()  # type: ignore[attr-defined]
        raise
    if stdin:
        assert proc.stdin is not None
        # Small (a nonce): fits the pipe buffer, so this never blocks on a child that does not read.
        proc.stdin.write(stdin)
        proc.stdin.close()
    return proc


async def run_group(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cwd: str,
    limits: Limits,
    rlimit_pairs: Sequence[Rlimit],
    cgroup: Cgroup | None = None,
    launcher: Launcher,
    stdin: bytes = b"",
    pass_fds: Sequence[int] = (),
) -> SandboxResult:
    """Run argv in a new session; kill the whole group at timeout, on output overflow and after exit."""
    start = time.monotonic()
    # The prefixes exec argv[0] themselves, where a failure is only an exit status: check it here,
    # so a missing interpreter stays a backend error, as when we exec'd it directly.
    exe = argv[0] if "/" not in argv[0] else os.path.join(cwd, argv[0])  # relative: from the child's cwd
    if shutil.which(exe, path=env.get("PATH", os.defpath)) is None:
        return SandboxResult(None, b"", b"", 0.0, error=f"could not start {argv[0]}: no such executable file")
    full_argv, preexec = launcher.wrap(argv, rlimit_pairs, cgroup)
    try:
        proc = await spawn(full_argv, env=env, cwd=cwd, preexec=preexec, stdin=stdin, pass_fds=pass_fds)
    except (OSError, subprocess_error()) as exc:
        return SandboxResult(
            None, b"", b"", time.monotonic() - start, error=f"could not start {argv[0]}: {exc}"
        )

    def kill_all() -> None:
        killpg(proc.pid)
        if cgroup is not None:
            cgroup.kill_all()

    cap = _Capture(limits.output_bytes)
    assert proc.stdout is not None and proc.stderr is not None
    pumps = [
        asyncio.ensure_future(cap.pump(proc.stdout, cap.out)),
        asyncio.ensure_future(cap.pump(proc.stderr, cap.err)),
    ]
    # Not proc.wait(): in asyncio that also waits for the pipes, which escaped children can hold.
    waiter = asyncio.ensure_future(exited(proc))
    overflow = asyncio.ensure_future(cap.exceeded.wait())
    timed_out = False
    try:
        done, _ = await asyncio.wait(
            {waiter, overflow}, timeout=limits.timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if not done:
            timed_out = True
        kill_all()  # timeout, overflow, or stray children left after a normal exit
        await waiter
        # Children that escaped the group may still hold the pipes: do not wait on them long.
        await asyncio.wait(pumps, timeout=_EOF_GRACE_S)
    except BaseException:
        kill_all()  # cancelled (or anything else): never leave the tree running
        raise
    finally:
        for task in (*pumps, overflow, waiter):
            task.cancel()
        # Close our pipe ends even if an escaped child still holds the others.
        with contextlib.suppress(Exception):
            proc._transport.close()  # type: ignore[attr-defined]
    wall = time.monotonic() - start
    code = proc.returncode
    memory = False
    if cgroup is not None:
        memory = cgroup.memory_exceeded()
    if not memory and not timed_out:
        memory = b"MemoryError" in bytes(cap.err[-4000:]) or b'"MemoryError' in bytes(cap.out)
    if ended_by_signal(code) == signal.SIGXCPU:
        timed_out = True  # RLIMIT_CPU's soft limit fired: the CPU-time form of the time limit
    return SandboxResult(
        exit_code=code,
        stdout=bytes(cap.out),
        stderr=bytes(cap.err),
        wall_s=wall,
        timed_out=timed_out,
        output_exceeded=cap.exceeded.is_set() and not timed_out,
        memory_exceeded=memory and not timed_out,
    )


async def exited(proc: asyncio.subprocess.Process) -> int:
    """Wait for the child itself to exit (a pidfd where the kernel has them), not for its pipes."""
    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        pidfd = None
    if pidfd is not None:
        ready = loop.create_future()
        loop.add_reader(pidfd, lambda: ready.done() or ready.set_result(None))
        try:
            await ready
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
    # The event loop's child watcher reaps it and records the status a moment later.
    delay = 0.0005
    while proc.returncode is None:
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.02)
    return proc.returncode


def subprocess_error() -> type[Exception]:
    """subprocess.SubprocessError (raised when preexec_fn fails), imported lazily."""
    import subprocess

    return subprocess.SubprocessError


# Seconds past the time limit after which a job kills itself if the host has not (host killed).
HOST_GONE_GRACE_S = 10
