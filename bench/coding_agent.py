"""The coding_agent task's seed agent against a real model: resolve rate on train and held-out, cost per instance.

Evaluates tasks/coding_agent/program.py in a real sandbox, through a real LLM gateway, on the first
N instances of each split (stage `first-N`), with the embedded local model by default. Prints per
split: instances resolved (hidden tests pass) with the 95 % interval, and per instance the agent's
calls, tokens, model seconds (the calls' latency) and wall seconds. Asserts nothing.

    .venv/bin/python bench/coding_agent.py [--instances 2] [--sandbox bwrap] [--timeout 900]
    .venv/bin/python bench/coding_agent.py --agent-model openai/qwen --agent-api-base http://127.0.0.1:8000/v1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from discovery import evaluation  # noqa: E402
from discovery.archive import Archive  # noqa: E402
from discovery.config import LOCAL_MODEL  # noqa: E402
from discovery.llm import LLMClient, ModelSpec  # noqa: E402
from discovery.llm.gateway import Gateway  # noqa: E402
from discovery.sandbox.choose import make_sandbox  # noqa: E402
from discovery.task import load_task  # noqa: E402

TASK = ROOT / "tasks" / "coding_agent"


def task_copy(folder: Path, timeout_s: int) -> Path:
    """The task with a longer time limit (the embedded model is slow on CPU)."""
    copy = folder / "coding_agent"
    shutil.copytree(TASK, copy, ignore=shutil.ignore_patterns("__pycache__"))
    toml = copy / "task.toml"
    text = re.sub(r"(?m)^timeout_s = \d+", f"timeout_s = {timeout_s}", toml.read_text())
    toml.write_text(re.sub(r"(?m)^wall_s = \d+", f"wall_s = {timeout_s - 20}", text))
    for path in (folder, copy, *copy.iterdir()):
        path.chmod(0o755)
    return copy


@contextlib.contextmanager
def agent_model(name: str, api_base: str | None):
    """The agent model's spec; starts the embedded server for `local`."""
    if name != LOCAL_MODEL:
        yield ModelSpec(name, 1.0, api_base)
        return
    from discovery.llm.local.server import LocalModelServer

    with LocalModelServer() as server:
        yield ModelSpec(f"openai/{server.model_name}", 1.0, server.api_base, api_key="local")


def measure(args: argparse.Namespace, folder: Path, model: ModelSpec) -> None:
    """Evaluate the seed on each split and print its figures."""
    task = load_task(task_copy(folder, args.timeout))
    archive = Archive.create(folder / "run", {"task": "coding_agent", "config": {}})
    sandbox = make_sandbox(args.sandbox, image=task.spec.image, run_id="bench-coding-agent")
    gateway = Gateway(LLMClient([model], timeout_s=args.timeout), model, archive.record_agent_call)
    print(
        f"coding_agent seed agent, model {model.name}, sandbox {sandbox.name}, first {args.instances} instances"
    )
    print("split    resolved  rate [95% CI]       calls/inst  tokens/inst  model s/inst  wall s/inst")
    try:
        for split in ("train", "heldout"):
            candidate = archive.add_seed(task.seed_code + f"\n# {split}\n", split)
            sessions = gateway.sessions(task.spec.agent, candidate, "search")
            start = time.monotonic()
            outcome = asyncio.run(
                evaluation.evaluate_once(
                    sandbox, task, task.seed_code, split, 0, stage=f"first-{args.instances}", agent=sessions
                )
            )
            wall = time.monotonic() - start
            calls = archive.agent_calls(candidate)
            n = args.instances
            if outcome.status != "ok":
                print(f"{split:8} {outcome.status}: {outcome.failure}")
                continue
            m = outcome.metrics
            tokens = sum((c["prompt_tokens"] or 0) + (c["completion_tokens"] or 0) for c in calls)
            latency = sum(c["latency_s"] or 0.0 for c in calls)
            print(
                f"{split:8} {int(m['resolved'])}/{int(m['instances'])}       {m['resolve_rate']:.2f} "
                f"[{m['resolve_rate_ci_low']:.2f}, {m['resolve_rate_ci_high']:.2f}]   {len(calls) / n:10.1f}  "
                f"{tokens / n:11.0f}  {latency / n:12.1f}  {wall / n:11.1f}"
            )
            print(f"         {(outcome.feedback or '').splitlines()[-1][:160]}")
    finally:
        gateway.close()
        sandbox.close()
        archive.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=2, help="instances per split (the first N)")
    parser.add_argument("--sandbox", default="bwrap", choices=["auto", "docker", "bwrap", "process"])
    parser.add_argument("--timeout", type=int, default=900, help="seconds per evaluation (all N instances)")
    parser.add_argument("--agent-model", default=LOCAL_MODEL)
    parser.add_argument("--agent-api-base", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-coding-agent-") as tmp:
        with agent_model(args.agent_model, args.agent_api_base) as model:
            measure(args, Path(tmp), model)


if __name__ == "__main__":
    main()
