"""Agents through the real LLM gateway and real sandboxes (process, bwrap), against the fake model server.

Each test opens a run archive, a Gateway pinned to the fake server's model, and evaluates an agent
candidate with discovery.evaluation, exactly as the search does.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import textwrap
from pathlib import Path

import pytest

from discovery import evaluation
from discovery.archive import Archive
from discovery.llm import LLMClient, ModelSpec
from discovery.llm.gateway import Gateway
from discovery.task import AgentBudget, load_task
from tests.fake_llm import Fail
from tests.sandbox_fixtures import skeleton_image, skip_backend

ROOT = Path(__file__).resolve().parents[2]
MATH_AGENT = ROOT / "tasks" / "math_agent"
SECRET = "sk-secret-provider-key-0123456789"

# The probe task: evaluate() runs the candidate's probe() in a child (as agent tasks do) and reports
# what it returned as a string metric, so a test can read what the agent saw and got.
PROBE_EVALUATOR = textwrap.dedent(
    """
    import json
    from discovery_harness import CandidateProcess

    def evaluate(candidate_path, split="train", seed=0):
        with CandidateProcess(candidate_path, timeout_s=60, import_harness=True) as proc:
            out = proc.call("probe")
        return {"score": 1.0, "probe": json.dumps(out)[:1900]}
    """
)
PROBE_TOML = textwrap.dedent(
    """
    name = "probe"
    brief = "probe"
    [resources]
    timeout_s = 60
    memory_mb = 1024
    [agent]
    calls = {calls}
    concurrent = {concurrent}
    wall_s = {wall_s}
    prompt_bytes = 65536
    """
)
PROBE_SEED = "# EVOLVE-BLOCK-START\ndef probe():\n    return {}\n# EVOLVE-BLOCK-END\n"


def make_sandbox(backend: str, image: str | None = None):
    """A real sandbox of the backend, or a skip naming why it is missing."""
    from discovery.sandbox.base import SandboxUnavailable
    from discovery.sandbox.bwrap import BwrapSandbox
    from discovery.sandbox.docker import DockerSandbox
    from discovery.sandbox.process import ProcessSandbox

    if backend == "process":
        return ProcessSandbox()
    try:
        return BwrapSandbox() if backend == "bwrap" else DockerSandbox(image, run_id="test-gw")
    except SandboxUnavailable as exc:
        skip_backend(exc)


@pytest.fixture(scope="module")
def docker_image():
    """A skeleton Docker image (the host's Python, built offline), removed after the module."""
    yield from skeleton_image()


@pytest.fixture(params=["process", "bwrap", pytest.param("docker", marks=pytest.mark.docker)])
def sandbox(request):
    image = request.getfixturevalue("docker_image") if request.param == "docker" else None
    sb = make_sandbox(request.param, image)
    yield sb
    sb.close()


@pytest.fixture
def archive(tmp_path: Path):
    arc = Archive.create(tmp_path / "run", {"task": "test", "config": {}})
    yield arc
    arc.close()


def gateway_for(server, archive: Archive, attempts: int = 1, **kwargs) -> Gateway:
    """A gateway pinned to the fake server, with a provider key that must never reach a sandbox."""
    model = ModelSpec("openai/fake", 1.0, server.api_base, api_key=SECRET)
    client = LLMClient([model], attempts=attempts, max_wait_s=0.1)
    return Gateway(client, model, archive.record_agent_call, **kwargs)


def probe_task(tmp_path: Path, calls: int = 50, concurrent: int = 4, wall_s: float = 60):
    """A task folder whose evaluator reports what the candidate's probe() returned."""
    folder = tmp_path / "probe_task"
    folder.mkdir()
    (folder / "task.toml").write_text(PROBE_TOML.format(calls=calls, concurrent=concurrent, wall_s=wall_s))
    (folder / "evaluate.py").write_text(PROBE_EVALUATOR)
    (folder / "program.py").write_text(PROBE_SEED)
    for p in (folder, *folder.iterdir()):
        p.chmod(0o755)
    return load_task(folder)


def probe(body: str) -> str:
    """Candidate source defining probe() with the given body."""
    return "from discovery_harness import llm\nimport os, json\n\ndef probe():\n" + textwrap.indent(
        textwrap.dedent(body), "    "
    )


async def run_probe(sandbox, task, code: str, gateway: Gateway, candidate_id: int | None = None) -> dict:
    """Evaluate a probe candidate with a gateway session; returns what probe() returned."""
    agent = gateway.sessions(task.spec.agent, candidate_id, "search")
    outcome = await evaluation.evaluate_once(sandbox, task, code, "train", 0, agent=agent)
    assert outcome.status == "ok", (outcome.failure, outcome.output_tail)
    return json.loads(outcome.metrics["probe"])


def math_replier():
    """A fake model that answers math_agent questions right (train split, seed 0)."""
    import sys

    sys.path.insert(0, str(MATH_AGENT))
    try:
        from problems import make_problems
    finally:
        sys.path.remove(str(MATH_AGENT))
    answers = {p.question: p.answer for p in make_problems("train", 0)}

    def reply(body: dict) -> str:
        text = body["messages"][-1]["content"]
        question = text.split("\n\n")[0]
        return f"Step by step... Answer: {answers.get(question, -1)}"

    return reply


def test_agent_task_scores_and_every_call_is_recorded(sandbox, archive, fake_llm) -> None:
    server = fake_llm(default=math_replier())
    task = load_task(MATH_AGENT)
    gateway = gateway_for(server, archive)
    seed_id = archive.add_seed(task.seed_code, "h")
    try:
        agent = gateway.sessions(task.spec.agent, seed_id, "search")
        outcome = asyncio.run(
            evaluation.evaluate_once(sandbox, task, task.seed_code, "train", 0, agent=agent)
        )
    finally:
        gateway.close()
    assert outcome.status == "ok", (outcome.failure, outcome.output_tail)
    assert outcome.score == 1.0
    assert outcome.metrics["accuracy_ci_low"] == 1.0 and outcome.metrics["agent_calls"] == 20
    calls = archive.agent_calls(seed_id)
    assert [c["sample_index"] for c in calls] == list(range(20))
    assert {c["evaluation"] for c in calls} == {"search:train:0"}
    assert all(c["status"] == "ok" and c["reply"][0].startswith("Step by step") for c in calls)
    assert all(c["prompt_tokens"] > 0 and c["latency_s"] is not None for c in calls)
    assert len(server.requests) == 20 and {r["model"] for r in server.requests} == {"fake"}


def test_the_key_never_enters_the_sandbox_and_the_model_is_pinned(
    sandbox, archive, fake_llm, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server = fake_llm(default="pinned")
    task = probe_task(tmp_path)
    gateway = gateway_for(server, archive)
    code = probe(
        """
        environ = open("/proc/self/environ", "rb").read().decode(errors="replace")
        reply = llm.request("POST", "/v1/chat/completions", {
            "model": "gpt-4o", "api_base": "http://10.0.0.1:9/v1", "base_url": "http://10.0.0.1:9/v1",
            "api_key": "mine", "messages": [{"role": "user", "content": "hi"}]})
        return {"env": dict(os.environ), "proc": environ, "reply": reply["choices"][0]["message"]["content"],
                "model": reply["model"]}
        """
    )
    try:
        seen = asyncio.run(run_probe(sandbox, task, code, gateway))
    finally:
        gateway.close()
    assert SECRET not in json.dumps(seen)
    assert "OPENAI_API_KEY" not in seen["env"]
    assert seen["env"]["DISCOVERY_LLM_TOKEN"] and seen["env"]["DISCOVERY_LLM_SOCKET"].endswith("llm.sock")
    assert seen["reply"] == "pinned" and seen["model"] == "openai/fake"
    # The provider got the run's model; the request's model, URL and key went nowhere.
    assert [r["model"] for r in server.requests] == ["fake"]
    assert archive.agent_calls()[0]["params"]["asked_model"] == "gpt-4o"


def test_agent_code_written_against_openai_works_over_the_socket(
    sandbox, archive, fake_llm, tmp_path
) -> None:
    pytest.importorskip("openai")
    server = fake_llm(default="from the gateway")
    task = probe_task(tmp_path)
    gateway = gateway_for(server, archive)
    code = probe(
        """
        import httpx
        from openai import OpenAI
        client = OpenAI(
            base_url="http://gateway/v1",
            api_key=os.environ["DISCOVERY_LLM_TOKEN"],
            http_client=httpx.Client(transport=httpx.HTTPTransport(uds=os.environ["DISCOVERY_LLM_SOCKET"])),
            max_retries=0,
        )
        first = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        second = client.chat.completions.create(model="any", messages=[{"role": "user", "content": "again"}], n=2)
        return {"first": first.choices[0].message.content, "n": len(second.choices),
                "tokens": first.usage.total_tokens}
        """
    )
    try:
        seen = asyncio.run(run_probe(sandbox, task, code, gateway))
    finally:
        gateway.close()
    assert seen == {"first": "from the gateway", "n": 2, "tokens": seen["tokens"]} and seen["tokens"] > 0
    assert len(server.requests) == 3 and {r["model"] for r in server.requests} == {"fake"}


def test_a_wrong_or_reused_token_is_refused(sandbox, archive, fake_llm, tmp_path) -> None:
    server = fake_llm(default="x")
    task = probe_task(tmp_path)
    gateway = gateway_for(server, archive)
    first = probe(
        "return {'token': os.environ['DISCOVERY_LLM_TOKEN'], 'socket': os.environ['DISCOVERY_LLM_SOCKET']}"
    )
    try:
        old = asyncio.run(run_probe(sandbox, task, first, gateway))
        second = probe(
            f"""
            out = {{}}
            for name, token in (("wrong", "not-a-token"), ("reused", {old["token"]!r})):
                os.environ["DISCOVERY_LLM_TOKEN"] = token
                try:
                    llm.chat("hi")
                    out[name] = "answered"
                except llm.LLMError as exc:
                    out[name] = [exc.status, exc.kind]
            return out
            """
        )
        seen = asyncio.run(run_probe(sandbox, task, second, gateway))
    finally:
        gateway.close()
    assert seen == {"wrong": [401, "invalid_token"], "reused": [401, "invalid_token"]}
    assert server.requests == []


def test_concurrent_calls_cannot_overshoot_the_budget(sandbox, archive, fake_llm, tmp_path) -> None:
    server = fake_llm(default="ok", latency_s=0.2)
    task = probe_task(tmp_path, calls=5, concurrent=2)
    gateway = gateway_for(server, archive)
    code = probe(
        """
        import threading
        results = []
        def one():
            try:
                llm.chat("hi")
                results.append("ok")
            except llm.BudgetExceeded as exc:
                results.append(exc.kind)
        threads = [threading.Thread(target=one) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return {"results": sorted(results)}
        """
    )
    try:
        seen = asyncio.run(run_probe(sandbox, task, code, gateway))
    finally:
        gateway.close()
    assert seen["results"] == ["budget_exceeded"] * 7 + ["ok"] * 5
    assert len(server.requests) == 5 and server.max_in_flight <= 2
    statuses = [c["status"] for c in archive.agent_calls()]
    assert statuses.count("ok") == 5 and statuses.count("refused") == 7


def test_a_50_mb_prompt_is_refused_unread(sandbox, archive, fake_llm, tmp_path) -> None:
    server = fake_llm(default="x")
    task = probe_task(tmp_path)
    gateway = gateway_for(server, archive)
    # Announce 50 MB, send 1 KB, and wait for the answer: a gateway that read the body would hang.
    code = probe(
        """
        import socket, time
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(os.environ["DISCOVERY_LLM_SOCKET"])
        head = ("POST /v1/chat/completions HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer "
                + os.environ["DISCOVERY_LLM_TOKEN"] + "\\r\\nContent-Length: 52428800\\r\\n\\r\\n")
        start = time.monotonic()
        s.sendall(head.encode() + b"{" * 1024)
        answer = s.recv(4096).decode()
        took = time.monotonic() - start
        big = "x" * (50 << 20)
        try:
            llm.chat(big)
            whole = "answered"
        except llm.LLMError as exc:
            whole = exc.kind
        return {"answer": answer, "took": took, "whole": whole}
        """
    )
    try:
        seen = asyncio.run(run_probe(sandbox, task, code, gateway))
    finally:
        gateway.close()
    assert seen["answer"].startswith("HTTP/1.1 413") and "prompt_too_large" in seen["answer"]
    assert seen["took"] < 5
    # The client sending all 50 MB sees the refusal or the gateway hanging up on it.
    assert seen["whole"] in ("prompt_too_large", "gateway_unreachable")
    assert server.requests == []


@pytest.mark.slow
def test_a_call_after_the_wall_time_is_refused(sandbox, archive, fake_llm, tmp_path) -> None:
    server = fake_llm(default="x")
    task = probe_task(tmp_path, wall_s=3.0)
    # The agent waits out what its session says is left (a loaded machine may start it late).
    code = probe(
        """
        import time
        left = llm.budget()["wall_s_left"]
        time.sleep(left + 0.5)
        try:
            llm.chat("late")
            late = "answered"
        except llm.BudgetExceeded as exc:
            late = exc.kind
        return {"left": left, "late": late}
        """
    )
    gateway = gateway_for(server, archive)
    try:
        seen = asyncio.run(run_probe(sandbox, task, code, gateway))
    finally:
        gateway.close()
    assert 0 <= seen["left"] <= 3.0 and seen["late"] == "wall_time_exceeded"
    assert server.requests == []
    assert [c["status"] for c in archive.agent_calls()] == ["refused"]


def test_another_evaluations_socket_is_out_of_reach(sandbox, archive, fake_llm, tmp_path) -> None:
    server = fake_llm(default="x")
    task = probe_task(tmp_path)
    gateway = gateway_for(server, archive)
    holder = probe("import time\ntime.sleep(4)\nreturn {}")

    async def scenario() -> dict:
        first = asyncio.create_task(run_probe(sandbox, task, holder, gateway))
        for _ in range(200):
            sockets = list(gateway._root.glob("*/llm.sock"))
            if sockets:
                break
            await asyncio.sleep(0.02)
        other = str(sockets[0])
        intruder = probe(
            f"""
            import glob
            os.environ["DISCOVERY_LLM_SOCKET"] = {other!r}
            try:
                llm.chat("hi")
                result = "answered"
            except llm.LLMError as exc:
                result = exc.kind
            return {{"result": result, "roots": glob.glob("/tmp/discovery-gw-*")}}
            """
        )
        seen = await run_probe(sandbox, task, intruder, gateway)
        await first
        return seen

    try:
        seen = asyncio.run(scenario())
    finally:
        gateway.close()
    if sandbox.name in ("bwrap", "docker"):
        # Not even visible: the sandbox has only its own socket folder.
        assert seen == {"result": "gateway_unreachable", "roots": []}
    else:
        # The process backend shares the host's files; the socket still refuses another's token.
        assert seen["result"] == "invalid_token"
    assert server.requests == []


def test_a_failing_provider_is_retried_and_a_dead_one_is_a_catchable_error(
    archive, fake_llm, tmp_path
) -> None:
    server = fake_llm([Fail(500), "recovered", Fail(500), Fail(500)], default=Fail(500))
    task = probe_task(tmp_path)
    gateway = gateway_for(server, archive, attempts=2)
    code = probe(
        """
        first = llm.chat("hi")
        try:
            llm.chat("again")
            second = "answered"
        except llm.LLMError as exc:
            second = [exc.status, exc.kind]
        return {"first": first, "second": second}
        """
    )
    try:
        seen = asyncio.run(run_probe(make_sandbox("process"), task, code, gateway))
    finally:
        gateway.close()
    assert seen == {"first": "recovered", "second": [502, "provider_error"]}
    assert [c["status"] for c in archive.agent_calls()] == ["ok", "error"]


def test_the_run_cost_limit_covers_agent_calls(archive, fake_llm, tmp_path) -> None:
    server = fake_llm(default="x")
    task = probe_task(tmp_path)
    gateway = gateway_for(server, archive, run_spent=lambda: 1.0, max_cost=1.0)
    code = probe(
        """
        try:
            llm.chat("hi")
            return {"result": "answered"}
        except llm.BudgetExceeded as exc:
            return {"result": exc.kind}
        """
    )
    try:
        seen = asyncio.run(run_probe(make_sandbox("process"), task, code, gateway))
    finally:
        gateway.close()
    assert seen == {"result": "run_budget_exceeded"}
    assert server.requests == []


@pytest.mark.parametrize("baseline", ["self_consistency", "self_refine"])
def test_adas_baselines_run_as_agents(baseline, archive, fake_llm) -> None:
    replier = math_replier()
    server = fake_llm(
        default=lambda body: (
            "CORRECT" if "Check every step" in body["messages"][-1]["content"] else replier(body)
        )
    )
    task = load_task(MATH_AGENT)
    code = (MATH_AGENT / "baselines" / f"{baseline}.py").read_text()
    gateway = gateway_for(server, archive)
    try:
        agent = gateway.sessions(task.spec.agent, None, "search")
        outcome = asyncio.run(
            evaluation.evaluate_once(make_sandbox("process"), task, code, "train", 0, agent=agent)
        )
    finally:
        gateway.close()
    assert outcome.status == "ok", (outcome.failure, outcome.output_tail)
    assert outcome.score == 1.0
    expected = 5 * 20 if baseline == "self_consistency" else 2 * 20
    assert outcome.metrics["agent_calls"] == expected
    assert len(server.requests) == expected


def test_agent_budget_is_validated(tmp_path: Path) -> None:
    from discovery.errors import UserError

    folder = tmp_path / "t"
    shutil.copytree(MATH_AGENT, folder)
    toml = (folder / "task.toml").read_text()
    (folder / "task.toml").write_text(re.sub(r"concurrent = \d+", "concurrent = 0", toml))
    with pytest.raises(UserError, match=r"agent\.concurrent"):
        load_task(folder)
    assert AgentBudget().calls > 0
