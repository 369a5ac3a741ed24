"""Cost of one sandbox spawn inside a big host process: limits by preexec_fn (fork) vs argv prefixes (vfork).

Imports litellm and torch first, as a discovery host may, so the process has hundreds of MB of mappings.
Then, for the process and bwrap backends, with and without a per-job cgroup, it times
`await spawn(...)` (the very call run_group makes) with the job's rlimits and cgroup applied two ways:

- preexec_fn: the old way. CPython must fork(), which copies this process's page tables while the
  event loop waits.
- prefixes:   `sh -c 'echo $$ > cgroup.procs; exec "$@"'` (with a cgroup) and `prlimit --cpu=.. --`
  in front of the command. No preexec_fn, so CPython vforks: the loop waits only until exec.

It also times the other way to join a cgroup without a preexec_fn (the parent writes the child's pid
after spawn), and the parent's cgroup create/remove. Prints figures; asserts nothing.

    .venv/bin/python bench/spawn_cost.py [--n 30] [--no-torch]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from discovery.sandbox.base import Limits, SandboxJob, SandboxUnavailable  # noqa: E402
from discovery.sandbox.bwrap import BwrapSandbox, bwrap_argv  # noqa: E402
from discovery.sandbox.cgroup import Cgroup  # noqa: E402
from discovery.sandbox.spawn import Launcher, Rlimit, rlimits, sandbox_env, spawn  # noqa: E402

LIMITS = Limits(timeout_s=30, memory_mb=512, pids=64)
COMMAND = ("/bin/true",)  # the job itself is beside the point: this measures getting it started
# With /bin/true the job is usually gone before the parent's write: it needs a job that lives on.
LIVING = ("/bin/sleep", "0.05")


@dataclass
class Case:
    """One way of starting one backend's job."""

    backend: str
    cgroup: bool
    how: str  # "preexec_fn", "prefixes", or "parent attach" (prlimit prefix, parent writes the pid)


@dataclass
class Sample:
    """Figures for one spawn, in seconds."""

    spawn_wall: float  # the await of spawn(): the event loop is blocked for most of it
    spawn_cpu: float  # this process's CPU (all threads) during that await
    attach: float  # the parent's cgroup.procs writes after spawn ("parent attach" only)
    to_exit: float  # from the start of the spawn to the job's exit (prefix start-up included)
    create: float  # Cgroup.create in the parent
    remove: float  # Cgroup.remove in the parent


def host_cpu() -> float:
    """User + system CPU seconds of this process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def status_kb(field: str) -> int:
    """A size field of /proc/self/status, in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def command_for(
    case: Case, bwrap: BwrapSandbox | None, command: tuple[str, ...]
) -> tuple[list[str], dict[str, str], str]:
    """argv, environment and cwd exactly as the backend builds them (before the limit prefixes)."""
    if case.backend == "process":
        home = tempfile.gettempdir()
        return list(command), sandbox_env(LIMITS, home), home
    assert bwrap is not None
    job = SandboxJob(argv=command, mounts=(), limits=LIMITS)
    argv = bwrap_argv(
        job, bwrap=bwrap.bwrap, setpriv=bwrap.setpriv, python=bwrap.python, as_root=bwrap.as_root
    )
    return argv, {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, "/"


def pairs_for(case: Case, cgroup: Cgroup | None) -> list[Rlimit]:
    """The rlimits the backend applies (as in ProcessSandbox.run and BwrapSandbox.run)."""
    address_space = cgroup is None or not cgroup.has_memory
    if case.backend == "process":
        return rlimits(LIMITS, address_space=address_space, nproc=LIMITS.pids)
    return rlimits(
        LIMITS,
        address_space=address_space,
        nproc=LIMITS.pids if cgroup is None or not cgroup.has_pids else None,
    )


async def one(
    case: Case, launcher: Launcher, bwrap: BwrapSandbox | None, command: tuple[str, ...] = COMMAND
) -> Sample:
    """Spawn the case's job once and wait for it to exit (attach is NaN if it exited before the write)."""
    t0 = time.perf_counter()
    cgroup = Cgroup.create(LIMITS, {"discovery.run": "spawn-bench"}) if case.cgroup else None
    create = time.perf_counter() - t0
    try:
        argv, env, cwd = command_for(case, bwrap, command)
        pairs = pairs_for(case, cgroup)
        if case.how == "preexec_fn":
            full, preexec = Launcher(prlimit=None, shell=None).wrap(argv, pairs, cgroup)
        elif case.how == "parent attach":
            full, preexec = launcher.wrap(argv, pairs, None)
        else:
            full, preexec = launcher.wrap(argv, pairs, cgroup)
        cpu0, t1 = host_cpu(), time.perf_counter()
        proc = await spawn(full, env=env, cwd=cwd, preexec=preexec)
        spawn_wall, spawn_cpu = time.perf_counter() - t1, host_cpu() - cpu0
        attach = 0.0
        if case.how == "parent attach" and cgroup is not None:
            t2 = time.perf_counter()
            try:
                for path in cgroup.procs_files():
                    with open(path, "w") as fh:
                        fh.write(str(proc.pid))
                attach = time.perf_counter() - t2
            except ProcessLookupError:
                attach = float("nan")  # the job ran, and exited, entirely outside its cgroup
        await proc.communicate()
        to_exit = time.perf_counter() - t1
        if proc.returncode != 0:
            raise RuntimeError(f"{case}: exit {proc.returncode}")
    finally:
        t3 = time.perf_counter()
        if cgroup is not None:
            cgroup.remove()
        remove = time.perf_counter() - t3
    return Sample(spawn_wall, spawn_cpu, attach, to_exit, create, remove)


def ms(values: Sequence[float]) -> str:
    """Median and 90th percentile of seconds, as 'a / b' milliseconds."""
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"{1000 * statistics.median(ordered):6.2f} / {1000 * p90:6.2f}"


async def measure(n: int) -> None:
    """Run every case n times (after a warm-up) and print one line each."""
    launcher = Launcher.find()
    try:
        bwrap: BwrapSandbox | None = BwrapSandbox()
    except SandboxUnavailable as exc:
        print(f"bwrap: skipped ({exc})")
        bwrap = None
    probe = Cgroup.create(LIMITS)
    cgroups = probe is not None
    if probe is not None:
        probe.remove()
    cases = []
    for backend in ("process", "bwrap"):
        if backend == "bwrap" and bwrap is None:
            continue
        for with_cgroup in (False, True) if cgroups else (False,):
            hows = ["preexec_fn", "prefixes"] + (["parent attach"] if with_cgroup else [])
            cases += [Case(backend, with_cgroup, how) for how in hows]
    print(
        f"{'backend':8} {'cgroup':6} {'limits applied by':14} | {'spawn await ms':>15} | "
        f"{'host CPU ms':>11} | {'parent attach':>13} | {'start->exit ms':>15} | {'cgroup mk/rm ms':>15}"
    )
    print(f"{'':31}| {'median / p90':>15} | {'per spawn':>11} | {'ms, median':>13} | {'median / p90':>15} |")
    for case in cases:
        command = LIVING if case.how == "parent attach" else COMMAND
        for _ in range(3):
            await one(case, launcher, bwrap, command)
        samples = [await one(case, launcher, bwrap, command) for _ in range(n)]
        attach = (
            f"{1000 * statistics.median(s.attach for s in samples):13.2f}"
            if case.how == "parent attach"
            else " " * 13
        )
        cg = (
            f"{1000 * statistics.median(s.create for s in samples):6.2f} / "
            f"{1000 * statistics.median(s.remove for s in samples):5.2f}"
            if case.cgroup
            else ""
        )
        print(
            f"{case.backend:8} {'yes' if case.cgroup else 'no':6} {case.how:14} | {ms([s.spawn_wall for s in samples])} | "
            f"{1000 * statistics.fmean(s.spawn_cpu for s in samples):11.2f} | {attach} | "
            f"{ms([s.to_exit for s in samples])} | {cg}"
        )
        if case.how == "parent attach":
            raced = [await one(case, launcher, bwrap) for _ in range(n)]
            gone = sum(1 for s in raced if s.attach != s.attach)
            print(
                f"{'':31}| with {' '.join(COMMAND)}: the job had exited before the parent's write {gone}/{n} times"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=30, help="spawns per case")
    parser.add_argument("--no-torch", action="store_true", help="import litellm only")
    args = parser.parse_args()

    rss0 = status_kb("VmRSS")
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # no network fetch at import
    import litellm  # noqa: F401

    if not args.no_torch:
        import torch  # noqa: F401
    print(
        f"host process: litellm{'' if args.no_torch else ' + torch'} imported; VmRSS {rss0 // 1024} -> "
        f"{status_kb('VmRSS') // 1024} MB, VmSize {status_kb('VmSize') // 1024} MB, "
        f"page tables (VmPTE) {status_kb('VmPTE') / 1024:.1f} MB"
    )
    print(
        f"CPython {sys.version.split()[0]}: subprocess._USE_VFORK={subprocess._USE_VFORK} "  # type: ignore[attr-defined]
        f"_USE_POSIX_SPAWN={subprocess._USE_POSIX_SPAWN}; prlimit: {shutil.which('prlimit')}"  # type: ignore[attr-defined]
    )
    print(f"each case: {args.n} spawns of {' '.join(COMMAND)} after 3 warm-ups\n")
    asyncio.run(measure(args.n))
    print(
        "\nspawn await: time the event loop waits in create_subprocess_exec (fork+exec or vfork+exec)."
        "\nparent attach: the alternative to the sh prefix; the parent writes the pid into cgroup.procs after"
        f"\n  spawn, blocking the loop for that long, and the job runs outside its cgroup until then"
        f" (its job is {' '.join(LIVING)}, so its start->exit includes that sleep)."
    )


if __name__ == "__main__":
    main()
