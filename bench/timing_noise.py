"""Timing noise of the kernel tasks: the seed program evaluated N times, each in a fresh sandbox.

For each task it prints the coefficient of variation of the measured speedup (target: under 3%
on CPU) and the mean reference/candidate time ratio for the seed program, which is the reference
itself and so must be 1.0 within noise.

It also counts false alarms: evaluations of the honest seed that failed a timing cross-check
("timer disagreement"), which would stop a run at its seed. `--load N` keeps N busy-looping
processes running meanwhile (a loaded machine); target: 0 false alarms in 200 runs under load.

    .venv/bin/python bench/timing_noise.py [--runs 10] [--tasks rmsnorm_training,linear_gelu_residual]
    .venv/bin/python bench/timing_noise.py --runs 200 --load 2 --tasks rmsnorm_training
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from discovery.evaluation import evaluate_once
from discovery.sandbox.process import ProcessSandbox
from discovery.task import load_task

ROOT = Path(__file__).resolve().parents[1]
KERNEL_TASKS = ("rmsnorm_training", "linear_gelu_residual")


@contextlib.contextmanager
def cpu_load(processes: int) -> Iterator[None]:
    """Keep `processes` busy loops running (on top of whatever else the machine runs) for the block."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


async def measure(task_name: str, runs: int, candidate: Path | None) -> tuple[list[dict], list[str]]:
    """Evaluate one candidate `runs` times, each in a new process sandbox; the metrics and false alarms."""
    task = load_task(ROOT / "tasks" / task_name)
    code = (candidate or task.path / task.spec.candidate).read_text()
    sandbox = ProcessSandbox()
    results, alarms = [], []
    for run in range(1, runs + 1):
        outcome = await evaluate_once(sandbox, task, code, "train", 0, {"bench": "timing_noise"})
        if outcome.status == "ok":
            results.append({"score": outcome.score, **outcome.metrics, "wall_s": outcome.wall_s})
        elif "timer disagreement" in (outcome.failure or ""):
            alarms.append(outcome.failure or "")
            print(f"  {task_name} run {run}: false alarm: {outcome.failure}", file=sys.stderr, flush=True)
        else:
            raise SystemExit(f"{task_name}: evaluation failed: {outcome.failure}")
        if run % 20 == 0:
            print(f"  {task_name}: {run} runs, {len(alarms)} false alarms", file=sys.stderr, flush=True)
    sandbox.close()
    return results, alarms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--tasks", default=",".join(KERNEL_TASKS))
    parser.add_argument("--candidate", type=Path, default=None, help="a candidate file instead of the seed")
    parser.add_argument("--load", type=int, default=0, help="busy-looping processes to run meanwhile")
    args = parser.parse_args()
    print(f"extra load: {args.load} busy process(es)")
    print(
        f"{'task':24} {'runs':>4} {'speedup mean':>12} {'CV %':>6} {'min':>6} {'max':>6} "
        f"{'ref ms':>8} {'cand ms':>8} {'eval s':>6} {'false alarms':>12}"
    )
    for name in args.tasks.split(","):
        with cpu_load(args.load):
            rows, alarms = asyncio.run(measure(name, args.runs, args.candidate))
        if not rows:
            print(f"{name:24} {args.runs:>4} every evaluation was a false alarm ({len(alarms)})")
            continue
        speedups = [r["score"] for r in rows]
        mean = statistics.mean(speedups)
        cv = 100 * statistics.stdev(speedups) / mean if len(speedups) > 1 else 0.0
        print(
            f"{name:24} {len(rows):>4} {mean:>12.3f} {cv:>6.2f} {min(speedups):>6.3f} {max(speedups):>6.3f} "
            f"{statistics.mean(r['ref_ms'] for r in rows):>8.3f} "
            f"{statistics.mean(r['cand_ms'] for r in rows):>8.3f} "
            f"{statistics.mean(r['wall_s'] for r in rows):>6.2f} "
            f"{len(alarms):>6} of {args.runs}"
        )


if __name__ == "__main__":
    main()
