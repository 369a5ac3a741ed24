"""Sandbox overhead: an empty candidate through the real runner, per backend, against a bare subprocess.

Prints, per backend: median wall ms per evaluation, ms over bare, the ratio, and evaluations/second
with 1 and 2 concurrent slots. Targets: bwrap < 50 ms over bare, docker < 300 ms (fresh container).

    .venv/bin/python bench/sandbox_overhead.py [--runs 20] [--jobs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from discovery.errors import UserError
from discovery.sandbox.base import (
    CANDIDATE_MOUNT,
    PYTHON,
    RUNNER_MOUNT,
    TASK_MOUNT,
    Limits,
    Mount,
    Sandbox,
    SandboxJob,
    SandboxUnavailable,
)

REPO = Path(__file__).resolve().parent.parent
EVALUATOR = (
    "def evaluate(candidate_path, split='train', seed=0):\n"
    "    namespace = {}\n"
    "    exec(open(candidate_path).read(), namespace)\n"
    "    return {'score': 1.0}\n"
)
BENCH_IMAGE = "discovery-bench-skeleton:latest"


def make_job(root: Path) -> SandboxJob:
    """The runner on an empty candidate, with the standard mounts."""
    task, cand = root / "task", root / "cand"
    task.mkdir()
    cand.mkdir()
    (task / "evaluate.py").write_text(EVALUATOR)
    (cand / "program.py").write_text("")
    for p in (root, task, cand, task / "evaluate.py", cand / "program.py"):
        p.chmod(0o755)
    argv = (PYTHON, "-I", "-B", f"{RUNNER_MOUNT}/runner.py", "--task", TASK_MOUNT)
    argv += ("--candidate", f"{CANDIDATE_MOUNT}/program.py", "--split", "train", "--seed", "0")
    mounts = (Mount(REPO / "sandboxes", RUNNER_MOUNT), Mount(task, TASK_MOUNT), Mount(cand, CANDIDATE_MOUNT))
    return SandboxJob(argv=argv, mounts=mounts, limits=Limits(timeout_s=60, memory_mb=1024))


async def bare(job: SandboxJob) -> None:
    """The same runner command as a plain subprocess: no limits, no isolation."""
    from discovery.sandbox.process import rewrite_argv

    argv = rewrite_argv(job.argv, job.mounts, sys.executable)
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if b'"status": "ok"' not in out:
        raise RuntimeError(f"bare run failed: {err.decode()[-500:]}")


def via(sandbox: Sandbox, job: SandboxJob) -> Callable[[], Awaitable[None]]:
    """A zero-argument coroutine function that evaluates the job in the sandbox and checks it worked."""

    async def once() -> None:
        result = await sandbox.run(job)
        if b'"status": "ok"' not in result.stdout:
            raise RuntimeError(f"{sandbox.name} run failed: {result.error or result.stderr.decode()[-500:]}")

    return once


async def timed_ms(fn: Callable[[], Awaitable[None]]) -> float:
    """Wall time of one call, in ms."""
    start = time.perf_counter()
    await fn()
    return (time.perf_counter() - start) * 1000


async def interleaved_ms(fns: dict[str, Callable[[], Awaitable[None]]], runs: int) -> dict[str, list[float]]:
    """Each function's wall times over `runs` rounds, one call of each per round (after a warm-up round).

    Interleaving puts the bare run and every backend in the same moments of a noisy machine, so
    their per-round differences cancel the drift that sequential blocks of runs pick up.
    """
    for fn in fns.values():
        await fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for round_ in range(runs):
        shift = round_ % len(names)  # rotate the order: no backend always runs right after another
        for name in names[shift:] + names[:shift]:
            times[name].append(await timed_ms(fns[name]))
    return times


async def throughput(fn: Callable[[], Awaitable[None]], jobs: int, slots: int) -> float:
    """Evaluations per second with `slots` running at once."""
    gate = asyncio.Semaphore(slots)

    async def one() -> None:
        async with gate:
            await fn()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(jobs)))
    return jobs / (time.perf_counter() - start)


def backends() -> list[tuple[str, Callable[[], Sandbox]]]:
    """Each backend's constructor (Docker with a skeleton image built for the bench)."""
    from discovery.sandbox.bwrap import BwrapSandbox
    from discovery.sandbox.choose import bwrap_sandbox, docker_sandbox
    from discovery.sandbox.process import ProcessSandbox

    return [
        ("process", ProcessSandbox),
        ("process+cgroup", lambda: ProcessSandbox(use_cgroup=True)),
        ("bwrap", bwrap_sandbox),
        # What the per-job cgroup costs bwrap (a v1 attach is tens of ms); not a configuration to run.
        ("bwrap, no cgroup", lambda: BwrapSandbox(use_cgroup=False)),
        ("docker", lambda: docker_sandbox(BENCH_IMAGE, "bench")),
    ]


async def main(runs: int, jobs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="discovery-bench-") as tmp:
        job = make_job(Path(tmp))
        sandboxes: dict[str, Sandbox] = {}
        for name, make in backends():
            try:
                sandboxes[name] = make()
            except (SandboxUnavailable, UserError) as exc:
                print(f"{name:16} unavailable: {exc}")
        fns = {"bare subprocess": lambda: bare(job), **{n: via(sb, job) for n, sb in sandboxes.items()}}
        try:
            times = await interleaved_ms(fns, runs)
            tps = {name: [await throughput(fn, jobs, s) for s in (1, 2)] for name, fn in fns.items()}
        finally:
            for sandbox in sandboxes.values():
                sandbox.close()
        print(
            f"{runs} interleaved rounds; 'over bare' is the median of each round's difference from the bare run"
        )
        print(
            f"{'backend':16} {'median ms':>10} {'over bare':>10} {'ratio':>6} {'eval/s 1 slot':>14} {'eval/s 2 slots':>15}"
        )
        base = times["bare subprocess"]
        for name, ms in times.items():
            over = statistics.median(t - b for t, b in zip(ms, base, strict=True))
            median = statistics.median(ms)
            ratio = median / statistics.median(base)
            tp = tps[name]
            print(f"{name:16} {median:10.1f} {over:10.1f} {ratio:6.2f} {tp[0]:14.1f} {tp[1]:15.1f}")
    try:
        from discovery.sandbox.images import docker_client

        docker_client().images.remove(BENCH_IMAGE, force=True)
    except Exception:  # noqa: BLE001 - no engine, or already gone
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="sequential runs for the median")
    parser.add_argument("--jobs", type=int, default=20, help="jobs per throughput measurement")
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.jobs))
