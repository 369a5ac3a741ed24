"""Loop throughput against its bound min(M / latency, N / eval time), and host-side overhead per candidate.

Runs the real loop (litellm over HTTP to a fake server with a fixed reply latency, the real runner in the
process sandbox, SQLite) on a task whose evaluator sleeps a fixed time. Prints figures; asserts nothing.

    .venv/bin/python bench/overhead.py [--latency 0.5] [--eval 0.25] [--llm 4] [--slots 2] [--budget 48]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import resource
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from discovery.archive import Archive  # noqa: E402
from discovery.config import ModelConfig, RunConfig  # noqa: E402
from discovery.llm import LLMClient, ModelSpec, _litellm  # noqa: E402
from discovery.loop import Search  # noqa: E402
from discovery.sandbox.process import ProcessSandbox  # noqa: E402
from discovery.task import load_task  # noqa: E402
from tests.fake_llm import FakeLLMServer  # noqa: E402

EVALUATOR = """
import importlib.util, time

def evaluate(candidate_path, split, seed):
    spec = importlib.util.spec_from_file_location("candidate", candidate_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    time.sleep({eval_s})
    return {{"score": float(module.solve())}}
"""


def make_task(folder: Path, eval_s: float) -> Path:
    """A task whose evaluation takes eval_s seconds (plus the interpreter's start-up)."""
    folder.mkdir(parents=True)
    (folder / "task.toml").write_text(
        'name = "sleepy"\nbrief = "Return a big number."\n[resources]\ntimeout_s = 30\n'
    )
    (folder / "program.py").write_text(
        "# EVOLVE-BLOCK-START\ndef solve():\n    return 0\n# EVOLVE-BLOCK-END\n"
    )
    (folder / "evaluate.py").write_text(EVALUATOR.format(eval_s=eval_s))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency", type=float, default=0.5, help="LLM reply latency, s")
    parser.add_argument("--eval", type=float, default=0.25, help="evaluator sleep, s")
    parser.add_argument("--llm", type=int, default=4, help="concurrent LLM calls (M)")
    parser.add_argument("--slots", type=int, default=2, help="evaluation slots (N)")
    parser.add_argument("--budget", type=int, default=48, help="LLM calls")
    args = parser.parse_args()

    _litellm()  # import cost is paid once at start-up, not per candidate
    counter = itertools.count(1)
    work = Path(tempfile.mkdtemp(prefix="discovery-bench-"))
    task = load_task(make_task(work / "task", args.eval))
    with FakeLLMServer(
        default=lambda req: f"```python\ndef solve():\n    return {next(counter)}\n```",
        latency_s=args.latency,
    ) as server:
        config = RunConfig(
            task=str(task.path),
            models=[ModelConfig(name="openai/fake", api_base=server.api_base)],
            budget=args.budget,
            reply_format="block",
            llm_concurrency=args.llm,
            eval_slots=args.slots,
        )
        archive = Archive.create(
            work / "run", {"task_path": str(task.path), "task": task.name, "config": config.model_dump()}
        )
        client = LLMClient([ModelSpec("openai/fake", 1.0, server.api_base, "sk-bench")])
        search = Search(archive, task, config, client, ProcessSandbox(), "bench")
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        asyncio.run(search.run())
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)

    events = archive.events()
    first_call = min(e["at"] for e in events if e["kind"] == "call_started")
    last_eval = max(e["at"] for e in events if e["kind"] == "candidate_evaluated")
    children = [c for c in archive.candidates() if c.operator != "seed" and c.status == "ok"]
    eval_times = [c.eval_wall_s for c in children]
    latencies = [archive.call(c.call_id)["latency_s"] for c in children]
    elapsed = last_eval - first_call
    # Each child must be proposed and evaluated; the pipeline's first proposal adds one latency of fill.
    throughput = len(children) / elapsed
    mean_eval, mean_latency = statistics.fmean(eval_times), statistics.fmean(latencies)
    nominal_bound = min(args.llm / args.latency, args.slots / args.eval)
    measured_bound = min(args.llm / mean_latency, args.slots / mean_eval)
    host_cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)

    print(f"M={args.llm} LLM slots, latency {args.latency:.3f} s (measured {mean_latency:.3f} s)")
    print(
        f"N={args.slots} eval slots, evaluator sleep {args.eval:.3f} s (measured in sandbox {mean_eval:.3f} s,"
        " interpreter start-up included)"
    )
    print(f"candidates evaluated: {len(children)} in {elapsed:.2f} s -> {throughput:.2f} /s")
    print(
        f"bound min(M/latency, N/eval): nominal {nominal_bound:.2f} /s, with measured times {measured_bound:.2f} /s"
    )
    fill = (mean_latency + mean_eval) / elapsed  # one pipeline fill at the start cannot overlap
    print(
        f"fraction of bound: {throughput / measured_bound:.3f} (measured times), "
        f"{throughput / nominal_bound:.3f} (nominal); pipeline fill is {fill:.3f} of the run"
    )
    print(
        f"host-side CPU per candidate: {1000 * host_cpu / len(children):.2f} ms "
        "(controller, litellm, HTTP, SQLite, process spawn)"
    )
    archive.close()


if __name__ == "__main__":
    main()
