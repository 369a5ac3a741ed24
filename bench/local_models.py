"""Local model speed: tokens per second and one call's latency on a task's mutation prompt.

Serves each named local model with xllamacpp (the way `discovery run --model local:NAME` does),
sends the block-format mutation prompt of the task's seed program a few times with different
seeds, and prints per model and thread count: prompt tokens, completion tokens, latency, tokens/s
of the whole call, llama.cpp's own prompt and generation rates, and whether the reply held a fenced
code block. Models are fetched (and hash-checked) first.

    .venv/bin/python bench/local_models.py [--task tasks/circle_packing] [--models smollm2-135m,qwen2.5-coder-0.5b]
        [--threads 2,1] [--calls 2] [--max-tokens 512]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openai import OpenAI  # noqa: E402

from discovery.config import LOCAL_DEFAULTS  # noqa: E402
from discovery.domain import Candidate  # noqa: E402
from discovery.llm.local.fetch import ensure_model  # noqa: E402
from discovery.llm.local.models import CATALOGUE  # noqa: E402
from discovery.llm.local.server import LocalModelServer  # noqa: E402
from discovery.program.prompts import mutation_prompt  # noqa: E402
from discovery.task import load_task  # noqa: E402


def _seed_candidate(code: str) -> Candidate:
    """The task's seed as the loop shows it to the model (no score yet: 0 stands in)."""
    return Candidate(
        id=1, parent_id=None, call_id=None, operator="seed", code=code, status="ok", score=0.0, fitness=0.0,
        metrics={}, feedback=None, failure=None, output_tail=None, sandbox=None, created_at=time.time(),
        eval_wall_s=None,
    )  # fmt: skip


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main() -> None:
    """Measure each model at each thread count and print one row per (model, threads)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="tasks/circle_packing")
    ap.add_argument("--models", default="smollm2-135m,qwen2.5-coder-0.5b")
    ap.add_argument("--threads", default="2,1")
    ap.add_argument("--calls", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=512)
    args = ap.parse_args()
    task = load_task(args.task)
    messages = mutation_prompt(task, _seed_candidate(task.seed_code), "block")
    print(f"task {task.name}: block prompt of {sum(len(m['content']) for m in messages)} characters")
    print(
        f"{'model':22} {'thr':>3} {'prompt tok':>10} {'compl tok':>9} {'latency s':>9} {'tok/s':>6} "
        f"{'prefill/s':>9} {'decode/s':>8} {'code':>5}"
    )
    for name in args.models.split(","):
        path = ensure_model(CATALOGUE[name])
        for threads in (int(t) for t in args.threads.split(",")):
            with LocalModelServer(path, n_threads=threads, n_parallel=1, model_name=name) as server:
                client = OpenAI(base_url=server.api_base, api_key="local", max_retries=0, timeout=900)
                rows = []
                for seed in range(args.calls):
                    t0 = time.monotonic()
                    resp = client.chat.completions.create(
                        model=name,
                        messages=messages,  # type: ignore[arg-type]
                        max_tokens=args.max_tokens,
                        temperature=float(LOCAL_DEFAULTS["temperature"]),  # type: ignore[arg-type]
                        seed=seed,
                    )
                    latency = time.monotonic() - t0
                    usage = resp.usage
                    text = resp.choices[0].message.content or ""
                    rows.append((usage.prompt_tokens, usage.completion_tokens, latency, "```" in text))
                    timings = (resp.model_extra or {}).get("timings") or {}  # llama.cpp's own counters
                    prefill, decode = timings.get("prompt_per_second"), timings.get("predicted_per_second")
                    print(
                        f"{name:22} {threads:>3} {usage.prompt_tokens:>10} {usage.completion_tokens:>9} "
                        f"{latency:>9.1f} {usage.completion_tokens / latency:>6.1f} "
                        f"{_rate(prefill):>9} {_rate(decode):>8} {'yes' if rows[-1][3] else 'no':>5}",
                        flush=True,
                    )
                mean_rate = statistics.mean(r[1] / r[2] for r in rows)
                print(
                    f"{name:22} {threads:>3} mean {mean_rate:.1f} tokens/s, {60 / statistics.mean(r[2] for r in rows):.2f} calls/min"
                )


if __name__ == "__main__":
    main()
