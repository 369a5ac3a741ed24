"""Loop throughput against its bound min(M / latency, N / eval time), and host-side overhead per candidate.

Runs the real loop (litellm over HTTP to a fake server with a fixed reply latency, the real runner in the
process sandbox, SQLite) on a task whose evaluator sleeps a fixed time. Prints figures; asserts nothing.

    .venv/bin/python bench/overhead.py [--latency 0.5] [--eval 0.25] [--llm 4] [--slots 2] [--budget 48]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import itertools
import multiprocessing
import resource
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from discovery.archive import Archive  # noqa: E402
from discovery.config import ModelConfig, RunConfig  # noqa: E402
from discovery.llm import LLMClient, ModelSpec  # noqa: E402
from discovery.llm.client import _litellm  # noqa: E402
from discovery.sandbox.process import ProcessSandbox  # noqa: E402
from discovery.search.loop import Search  # noqa: E402
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


def serve(latency_s: float, sign: int, ready: multiprocessing.Queue, stop: multiprocessing.Event) -> None:
    """Run a fake server in this (child) process, so its CPU is not counted as the host's."""
    counter = itertools.count(1)
    with FakeLLMServer(
        default=lambda req: f"```python\ndef solve():\n    return {sign * next(counter)}\n```",
        latency_s=latency_s,
    ) as server:
        ready.put(server.api_base)
        stop.wait()


@contextlib.contextmanager
def fake_server(latency_s: float, sign: int) -> Iterator[str]:
    """The api_base of a fake OpenAI-compatible server running in a child process."""
    ctx = multiprocessing.get_context("fork")
    ready, stop = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=serve, args=(latency_s, sign, ready, stop), daemon=True)
    child.start()
    try:
        yield ready.get(timeout=30)
    finally:
        stop.set()
        child.join(5)


def cpu_seconds() -> float:
    """User + system CPU this process has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def client_cpu_per_call(api_base: str, calls: int) -> float:
    """CPU seconds of one LLMClient.complete (litellm, openai, HTTP), sequential and with no latency."""
    spec = ModelSpec("openai/fake", 1.0, api_base, "sk-bench")
    client = LLMClient([spec])

    async def sequential() -> None:
        for seed in range(calls):
            await client.complete(spec, [{"role": "user", "content": "improve solve()"}], seed)

    async def both() -> float:
        await client.complete(spec, [{"role": "user", "content": "warm-up"}], 0)  # litellm's lazy imports
        before = cpu_seconds()
        await sequential()
        return (cpu_seconds() - before) / calls

    return asyncio.run(both())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency", type=float, default=0.5, help="LLM reply latency, s")
    parser.add_argument("--eval", type=float, default=0.25, help="evaluator sleep, s")
    parser.add_argument("--llm", type=int, default=4, help="concurrent LLM calls (M)")
    parser.add_argument("--slots", type=int, default=2, help="evaluation slots (N)")
    parser.add_argument("--budget", type=int, default=48, help="LLM calls")
    parser.add_argument(
        "--improving",
        action="store_true",
        help="every reply beats the best so far, so each child also goes through the promotion gate",
    )
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the run to FILE")
    args = parser.parse_args()

    _litellm()  # import cost is paid once at start-up, not per candidate
    work = Path(tempfile.mkdtemp(prefix="discovery-bench-"))
    task = load_task(make_task(work / "task", args.eval))
    with fake_server(0.0, -1) as instant:
        client_cpu = client_cpu_per_call(instant, 30)
    # By default replies never beat the seed: the figures are the loop's own cost per candidate, not
    # the promotion gate's extra held-out evaluations (measure those with --improving).
    with fake_server(args.latency, 1 if args.improving else -1) as api_base:
        config = RunConfig(
            task=str(task.path),
            models=[ModelConfig(name="openai/fake", api_base=api_base)],
            budget=args.budget,
            reply_format="block",
            llm_concurrency=args.llm,
            eval_slots=args.slots,
        )
        archive = Archive.create(
            work / "run", {"task_path": str(task.path), "task": task.name, "config": config.model_dump()}
        )
        client = LLMClient([ModelSpec("openai/fake", 1.0, api_base, "sk-bench")])
        search = Search(archive, task, config, client, ProcessSandbox(), "bench")
        profiler = cProfile.Profile() if args.profile else None
        cpu0 = cpu_seconds()
        if profiler:
            profiler.enable()
        asyncio.run(search.run())
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
        host_cpu = cpu_seconds() - cpu0

    events = archive.events()
    first_call = min(e["at"] for e in events if e["kind"] == "call_started")
    last_eval = max(e["at"] for e in events if e["kind"] == "candidate_evaluated")
    children = [c for c in archive.candidates() if c.operator != "seed" and c.status == "ok"]
    eval_times = [c.eval_wall_s for c in children]
    latencies = [archive.call(c.call_id)["latency_s"] for c in children]
    elapsed = last_eval - first_call
    # Each child must be proposed and evaluated; the pipeline's first proposal adds one latency of fill.
    throughput = len(children) / elapsed
    # Steady state: from the first child's evaluation to the last, with the pipeline already full.
    done = sorted(e["at"] for e in events if e["kind"] == "candidate_evaluated")[1:]  # [0] is the seed
    steady = (len(done) - 1) / (done[-1] - done[0]) if len(done) > 1 else float("nan")
    mean_eval, mean_latency = statistics.fmean(eval_times), statistics.fmean(latencies)
    nominal_bound = min(args.llm / args.latency, args.slots / args.eval)
    measured_bound = min(args.llm / mean_latency, args.slots / mean_eval)

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
        f"steady state (first to last child evaluated): {steady:.2f} /s, "
        f"{steady / measured_bound:.3f} of the bound with measured times"
    )
    calls = archive.calls_made()
    per_candidate = host_cpu / len(children)
    client_share = client_cpu * calls / len(children)
    print(
        f"host-side CPU per candidate: {1000 * per_candidate:.2f} ms in all: "
        f"{1000 * client_share:.2f} ms in the LLM client (litellm + openai + HTTP, {1000 * client_cpu:.2f} ms "
        f"a call measured alone), {1000 * (per_candidate - client_share):.2f} ms in discovery "
        "(controller, prompts, SQLite, sandbox spawn)"
    )
    archive.close()


if __name__ == "__main__":
    main()
