"""Timing noise of the kernel tasks: the seed program evaluated N times, each in a fresh sandbox.

For each task it prints the coefficient of variation of the measured speedup (target: under 3%
on CPU) and the mean reference/candidate time ratio for the seed program, which is the reference
itself and so must be 1.0 within noise.

    .venv/bin/python bench/timing_noise.py [--runs 10] [--tasks rmsnorm_training,linear_gelu_residual]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from pathlib import Path

from discovery.evaluation import evaluate_once
from discovery.sandbox.process import ProcessSandbox
from discovery.task import load_task

ROOT = Path(__file__).resolve().parents[1]
KERNEL_TASKS = ("rmsnorm_training", "linear_gelu_residual")


async def measure(task_name: str, runs: int, candidate: Path | None) -> list[dict]:
    """Evaluate one candidate `runs` times, each in a new process sandbox; return the metrics."""
    task = load_task(ROOT / "tasks" / task_name)
    code = (candidate or task.path / task.spec.candidate).read_text()
    sandbox = ProcessSandbox()
    results = []
    for _ in range(runs):
        outcome = await evaluate_once(sandbox, task, code, "train", 0, {"bench": "timing_noise"})
        if outcome.status != "ok":
            raise SystemExit(f"{task_name}: evaluation failed: {outcome.failure}")
        results.append({"score": outcome.score, **outcome.metrics, "wall_s": outcome.wall_s})
    sandbox.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--tasks", default=",".join(KERNEL_TASKS))
    parser.add_argument("--candidate", type=Path, default=None, help="a candidate file instead of the seed")
    args = parser.parse_args()
    print(
        f"{'task':24} {'runs':>4} {'speedup mean':>12} {'CV %':>6} {'min':>6} {'max':>6} "
        f"{'ref ms':>8} {'cand ms':>8} {'eval s':>6}"
    )
    for name in args.tasks.split(","):
        rows = asyncio.run(measure(name, args.runs, args.candidate))
        speedups = [r["score"] for r in rows]
        mean = statistics.mean(speedups)
        cv = 100 * statistics.stdev(speedups) / mean if len(speedups) > 1 else 0.0
        print(
            f"{name:24} {len(rows):>4} {mean:>12.3f} {cv:>6.2f} {min(speedups):>6.3f} {max(speedups):>6.3f} "
            f"{statistics.mean(r['ref_ms'] for r in rows):>8.3f} "
            f"{statistics.mean(r['cand_ms'] for r in rows):>8.3f} "
            f"{statistics.mean(r['wall_s'] for r in rows):>6.2f}"
        )


if __name__ == "__main__":
    main()
