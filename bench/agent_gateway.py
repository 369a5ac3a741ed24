"""The LLM gateway's cost: latency it adds per agent call, and calls per second with 8 agents at once.

An agent process calls the fake OpenAI-compatible server (in a child process, no latency) either
directly over TCP (raw HTTP, the cheapest possible call) or through a gateway session: the
harness client over the Unix socket, the gateway's checks and budget, litellm + tenacity to the
same server, and the SQLite record of the call before the reply. litellm called directly from the
host is timed too, so the gateway's own share is visible apart from litellm's. Prints figures;
asserts nothing.

    .venv/bin/python bench/agent_gateway.py [--calls 200] [--agents 8] [--per-agent 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from discovery.archive import Archive  # noqa: E402
from discovery.llm import LLMClient, ModelSpec  # noqa: E402
from discovery.llm.gateway import ENV_SOCKET, SOCKET_NAME, Gateway  # noqa: E402
from discovery.task import AgentBudget  # noqa: E402
from tests.fake_llm import FakeLLMServer  # noqa: E402

MESSAGES = [{"role": "user", "content": "What is 17 * 23? Think step by step."}]

# The agent: N sequential calls, each timed; prints the latencies as JSON.
AGENT = """
import http.client, json, sys, time, urllib.parse
mode, calls, target = sys.argv[1], int(sys.argv[2]), sys.argv[3]
messages = json.loads(sys.argv[4])
if mode == "gateway":
    sys.path.insert(0, target)
    from discovery_harness import llm
    call = lambda: llm.chat(messages, temperature=0.0, max_tokens=64)
else:
    url = urllib.parse.urlparse(target)
    body = json.dumps({"model": "fake", "messages": messages, "temperature": 0.0, "max_tokens": 64})
    def call():
        conn = http.client.HTTPConnection(url.hostname, url.port)
        conn.request("POST", url.path + "/chat/completions", body, {"Content-Type": "application/json"})
        conn.getresponse().read()
        conn.close()
call()  # warm-up: imports, first connection
out = []
for _ in range(calls):
    start = time.perf_counter()
    call()
    out.append(time.perf_counter() - start)
print(json.dumps(out))
"""


def serve(ready: multiprocessing.Queue, stop: multiprocessing.Event) -> None:
    """The fake server in a child process, so its CPU is not the gateway's."""
    from tests import fake_llm

    # Its handler writes headers and body apart; with Nagle on, a keep-alive client (litellm)
    # waits ~40 ms for the delayed ACK on every call, which would hide everything measured here.
    fake_llm._Handler.disable_nagle_algorithm = True
    with FakeLLMServer(default="17 * 23 = 391. Answer: 391") as server:
        ready.put(server.api_base)
        stop.wait()


@contextlib.contextmanager
def fake_server() -> Iterator[str]:
    """The api_base of a fake server in a child process."""
    ctx = multiprocessing.get_context("fork")
    ready, stop = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=serve, args=(ready, stop), daemon=True)
    child.start()
    try:
        yield ready.get(timeout=30)
    finally:
        stop.set()
        child.join(5)


async def agent(mode: str, calls: int, target: str, env: dict[str, str] | None = None) -> list[float]:
    """Run the agent script in its own process; its per-call latencies."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        AGENT,
        mode,
        str(calls),
        target,
        json.dumps(MESSAGES),
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    return json.loads(out)


async def through_gateway(gateway: Gateway, budget: AgentBudget, calls: int, label: str) -> list[float]:
    """One agent process calling through its own gateway session."""
    async with gateway.session(budget, None, label, "train", 0) as attachment:
        env = dict(attachment.env)
        env[ENV_SOCKET] = str(attachment.mount.host / SOCKET_NAME)  # no mount namespace here
        return await agent("gateway", calls, str(ROOT / "sandboxes"), env)


async def litellm_direct(client: LLMClient, model: ModelSpec, calls: int) -> list[float]:
    """litellm from the host straight to the server: what the gateway itself pays per call."""
    await client.request(model, MESSAGES, None, 0.0, 64)
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        await client.request(model, MESSAGES, None, 0.0, 64)
        out.append(time.perf_counter() - start)
    return out


def pct(values: list[float], q: float) -> float:
    """The q-quantile, in milliseconds."""
    return (
        statistics.quantiles(values, n=100)[int(q * 100) - 1] * 1000 if len(values) > 1 else values[0] * 1000
    )


async def main_async(args: argparse.Namespace, api_base: str, archive: Archive) -> None:
    model = ModelSpec("openai/fake", 1.0, api_base, api_key="sk-bench")
    client = LLMClient([model], attempts=1)
    gateway = Gateway(client, model, archive.record_agent_call)
    budget = AgentBudget(calls=100_000, tokens=10**9, dollars=1000, concurrent=8, wall_s=3600)
    try:
        raw = await agent("direct", args.calls, api_base)
        via_litellm = await litellm_direct(client, model, args.calls)
        via_gateway = await through_gateway(gateway, budget, args.calls, "bench:latency")
        print(f"per call, {args.calls} sequential calls, p50 / p90 in ms:")
        print(f"  direct raw HTTP (agent -> server)       {pct(raw, 0.5):7.2f} / {pct(raw, 0.9):7.2f}")
        print(
            f"  direct litellm (host -> server)          {pct(via_litellm, 0.5):7.2f} / {pct(via_litellm, 0.9):7.2f}"
        )
        print(
            f"  through the gateway (agent -> server)    {pct(via_gateway, 0.5):7.2f} / {pct(via_gateway, 0.9):7.2f}"
        )
        print(
            f"  added by the gateway over raw HTTP, p50: {pct(via_gateway, 0.5) - pct(raw, 0.5):.2f} ms "
            f"(of which litellm's own {pct(via_litellm, 0.5) - pct(raw, 0.5):.2f} ms; socket, checks, budget "
            f"and the SQLite record {pct(via_gateway, 0.5) - pct(via_litellm, 0.5):.2f} ms)"
        )
        total = args.agents * args.per_agent
        start = time.perf_counter()
        await asyncio.gather(*(agent("direct", args.per_agent, api_base) for _ in range(args.agents)))
        direct_rate = total / (time.perf_counter() - start)
        start = time.perf_counter()
        await asyncio.gather(
            *(through_gateway(gateway, budget, args.per_agent, f"bench:agent{k}") for k in range(args.agents))
        )
        gateway_rate = total / (time.perf_counter() - start)
        print(f"{args.agents} agents at once, {args.per_agent} calls each ({os.cpu_count()} cores):")
        print(f"  direct raw HTTP      {direct_rate:7.1f} calls/s")
        print(
            f"  through the gateway  {gateway_rate:7.1f} calls/s ({gateway_rate / direct_rate:.2f}x direct)"
        )
        print(f"  calls recorded in the archive: {archive.agent_usage()['calls']}")
    finally:
        gateway.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="sequential calls for the latency figures")
    parser.add_argument("--agents", type=int, default=8, help="agents at once for the throughput figure")
    parser.add_argument("--per-agent", type=int, default=50, help="calls each agent makes")
    args = parser.parse_args()
    with fake_server() as api_base, tempfile.TemporaryDirectory() as tmp:
        archive = Archive.create(Path(tmp) / "run", {"task": "bench"})
        try:
            asyncio.run(main_async(args, api_base, archive))
        finally:
            archive.close()


if __name__ == "__main__":
    main()
