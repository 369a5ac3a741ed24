"""Ray executor scaling: evaluations per second against worker slots, and Ray's added latency per evaluation.

A sleep-bound candidate (it sleeps SLEEP_S seconds) keeps the machine's cores out of the way, so the
ideal throughput with n slots is n / SLEEP_S; the ratio to it shows what each executor loses to
start-up and hand-offs. Both executors run the same candidates in the same sandbox backend, side by
side in one run, on a one-machine Ray instance started here with 4 CPU slots.

    PYTHONPATH=. .venv/bin/python bench/ray_scaling.py [--sleep 1.0] [--per-slot 3] [--latency-runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from discovery.evaluation.executors import Executor  # noqa: E402
from discovery.evaluation.executors.local import LocalExecutor  # noqa: E402
from discovery.evaluation.executors.ray import RayExecutor, import_ray  # noqa: E402
from discovery.sandbox.base import SandboxUnavailable  # noqa: E402
from discovery.sandbox.choose import bwrap_sandbox, make_sandbox  # noqa: E402
from discovery.task import Task, load_task  # noqa: E402

SLOTS = (1, 2, 4)


def sleeper(seconds: float, k: int) -> str:
    """A candidate that sleeps, then answers (k keeps every program distinct)."""
    return f"def solve():\n    import time\n    time.sleep({seconds})\n    return {k}\n"


async def throughput(executor: Executor, task: Task, slots: int, count: int, sleep_s: float) -> float:
    """Evaluations per second with `slots` evaluations in flight, over `count` evaluations."""
    codes = asyncio.Queue()
    for k in range(count):
        codes.put_nowait(sleeper(sleep_s, k))

    async def slot() -> None:
        while not codes.empty():
            outcome = await executor.evaluate(task, codes.get_nowait())
            if outcome.status != "ok":
                raise SystemExit(f"evaluation failed: {outcome.status} {outcome.failure}")

    started = time.monotonic()
    await asyncio.gather(*(slot() for _ in range(slots)))
    return count / (time.monotonic() - started)


async def latency(executor: Executor, task: Task, runs: int) -> float:
    """Median seconds for one evaluation of a trivial candidate, one at a time."""
    times = []
    for k in range(runs + 1):
        started = time.monotonic()
        await executor.evaluate(task, sleeper(0, k))
        times.append(time.monotonic() - started)
    return statistics.median(times[1:])  # the first pays one-off costs (bundle unpack, worker start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds each candidate sleeps")
    parser.add_argument("--per-slot", type=int, default=3, help="evaluations per slot at each slot count")
    parser.add_argument("--latency-runs", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    ray = import_ray()
    task = load_task(ROOT / "tests" / "data" / "toy_task")
    try:
        bwrap_sandbox()
        backend = "bwrap"
    except SandboxUnavailable:
        backend = "process"
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private one-machine instance: no token in ~/.ray
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
    ray.init(address="local", num_cpus=max(SLOTS), include_dashboard=False, logging_level=logging.WARNING)
    resources = ray.cluster_resources()
    print(
        f"ray: {resources.get('CPU', 0):g} CPU, {resources.get('memory', 0) / 2**30:.1f} GiB memory for tasks"
    )
    sandbox = make_sandbox(backend)
    local, remote = LocalExecutor(sandbox), RayExecutor("local", backend, task, "bench")
    try:

        async def measure() -> tuple[list[tuple[int, float, float]], float, float]:
            rows = []
            # Start Ray's workers (one per slot) and unpack the bundle before anything is timed.
            await throughput(remote, task, max(SLOTS), max(SLOTS), 0)
            for n in SLOTS:
                count = n * args.per_slot
                rows.append(
                    (
                        n,
                        await throughput(local, task, n, count, args.sleep),
                        await throughput(remote, task, n, count, args.sleep),
                    )
                )
            return (
                rows,
                await latency(local, task, args.latency_runs),
                await latency(remote, task, args.latency_runs),
            )

        rows, local_s, ray_s = asyncio.run(measure())
    finally:
        remote.close()
        sandbox.close()
        ray.shutdown()
    table = Table(
        title=f"evaluations/s, {backend} sandbox, candidates sleep {args.sleep:g} s (ideal: slots / sleep)"
    )
    for column in ("slots", "ideal", "local", "local / ideal", "ray", "ray / ideal"):
        table.add_column(column, justify="right")
    for n, local_rate, ray_rate in rows:
        ideal = n / args.sleep
        table.add_row(
            str(n),
            f"{ideal:.2f}",
            f"{local_rate:.2f}",
            f"{local_rate / ideal:.2f}",
            f"{ray_rate:.2f}",
            f"{ray_rate / ideal:.2f}",
        )
    console = Console()
    console.print(table)
    console.print(
        f"one trivial evaluation (median of {args.latency_runs}): local {local_s * 1000:.0f} ms, "
        f"ray {ray_s * 1000:.0f} ms, Ray adds {(ray_s - local_s) * 1000:.0f} ms ({ray_s / local_s:.2f}x)"
    )


if __name__ == "__main__":
    main()
