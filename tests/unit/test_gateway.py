"""The gateway's HTTP surface from the host side (no sandbox): parsing, limits, routes and errors."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
from pathlib import Path

import pytest

from discovery.archive import Archive
from discovery.llm import LLMClient, ModelSpec
from discovery.llm.gateway import SOCKET_NAME, Gateway
from discovery.task import AgentBudget

ROOT = Path(__file__).resolve().parents[2]


def raw_request(path: str, head: str, body: bytes = b"") -> tuple[int, dict]:
    """Send one raw HTTP request over the socket; the status and JSON body of the answer."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(60)
        s.connect(path)
        s.sendall(head.encode() + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(
            data.split(b"Content-Length: ", 1)[1].split(b"\r\n", 1)[0] if b"Content-Length: " in data else 0
        ):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head_part, _, payload = data.partition(b"\r\n\r\n")
    return int(head_part.split(b" ")[1]), json.loads(payload)


def post(path: str, token: str, body: dict | bytes, extra: str = "") -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Length: {len(data)}\r\n{extra}Connection: close\r\n\r\n"
    )
    return raw_request(path, head, data)


@pytest.fixture
def session(tmp_path, fake_llm):
    """Run a coroutine against one gateway session: f(socket_path, token) in a thread."""
    server = fake_llm(default="fine")
    archive = Archive.create(tmp_path / "run", {"task": "t"})
    cid = archive.add_seed("x = 1", "h")
    model = ModelSpec("openai/fake", 1.0, server.api_base, api_key="sk-x")

    def run(check, budget: AgentBudget | None = None):
        async def scenario():
            gateway = Gateway(LLMClient([model], attempts=1), model, archive.record_agent_call)
            try:
                async with gateway.session(budget or AgentBudget(), cid, "search:train:0", "train", 0) as att:
                    path = str(att.mount.host / SOCKET_NAME)
                    return await asyncio.to_thread(check, path, att.env["DISCOVERY_LLM_TOKEN"])
            finally:
                gateway.close()

        return asyncio.run(scenario())

    yield run, server, archive
    archive.close()


def test_openai_shapes_are_accepted_and_limits_capped(session) -> None:
    run, server, archive = session
    body = {
        "model": "other",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "he"}, {"type": "text", "text": "llo"}]},
        ],
        "max_completion_tokens": 10**6,
    }
    status, payload = run(lambda path, token: post(path, token, body), AgentBudget(max_tokens=77))
    assert status == 200 and payload["choices"][0]["message"]["content"] == "fine"
    assert server.requests[0]["messages"][1]["content"] == "hello"
    assert server.requests[0]["max_tokens"] == 77
    assert archive.agent_calls(1)[0]["params"]["max_tokens"] == 77


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        (b"{not json", 400, "bad_request"),
        ({"messages": []}, 400, "bad_request"),
        ({"messages": [{"role": "tool", "content": "x"}]}, 400, "bad_request"),
        ({"messages": [{"role": "user", "content": "x"}], "n": 99}, 400, "bad_request"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}, 400, "bad_request"),
    ],
)
def test_bad_requests_get_a_json_error_and_reach_no_model(session, body, status, kind) -> None:
    run, server, _archive = session
    got_status, payload = run(lambda path, token: post(path, token, body))
    assert (got_status, payload["error"]["type"]) == (status, kind)
    assert server.requests == []


def test_routes_and_framing(session) -> None:
    run, _server, _archive = session

    def check(path, token):
        auth = f"Authorization: Bearer {token}\r\n"
        return (
            raw_request(path, f"GET /v1/models HTTP/1.1\r\n{auth}Connection: close\r\n\r\n"),
            raw_request(path, f"GET /v1/budget HTTP/1.1\r\n{auth}Connection: close\r\n\r\n"),
            raw_request(
                path, f"POST /v1/chat/completions HTTP/1.1\r\n{auth}Transfer-Encoding: chunked\r\n\r\n"
            ),
            raw_request(path, f"POST /v1/chat/completions HTTP/1.1\r\n{auth}\r\n"),
            raw_request(path, f"GET /etc/passwd HTTP/1.1\r\n{auth}Connection: close\r\n\r\n"),
            raw_request(path, "GET /v1/models HTTP/1.1\r\nConnection: close\r\n\r\n"),
        )

    models, budget, chunked, no_length, unknown, no_token = run(check)
    assert models == (200, {"object": "list", "data": [{"id": "openai/fake", "object": "model"}]})
    assert budget[0] == 200 and budget[1]["budget"]["calls"] == AgentBudget().calls
    assert chunked[0] == 411 and no_length[0] == 411 and unknown[0] == 404
    assert no_token[0] == 401


def test_the_harness_client_works_from_the_host(session, monkeypatch) -> None:
    run, _server, archive = session
    spec = importlib.util.spec_from_file_location(
        "harness_llm", ROOT / "sandboxes" / "discovery_harness" / "llm.py"
    )
    llm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(llm)

    def check(path, token):
        monkeypatch.setenv("DISCOVERY_LLM_SOCKET", path)
        monkeypatch.setenv("DISCOVERY_LLM_TOKEN", token)
        monkeypatch.setenv("DISCOVERY_LLM_SAMPLE", "4")
        return llm.chat("hi", n=3), llm.budget()["spent"]

    replies, spent = run(check)
    assert replies == ["fine"] * 3 and spent["agent_calls"] == 3
    assert archive.agent_calls()[0]["sample_index"] == 4


def test_token_reservations_stop_concurrent_calls_from_overshooting(tmp_path, fake_llm) -> None:
    from concurrent.futures import ThreadPoolExecutor

    server = fake_llm(default="short reply", latency_s=0.5)
    archive = Archive.create(tmp_path / "run", {"task": "t"})
    model = ModelSpec("openai/fake", 1.0, server.api_base, api_key="sk-x")
    # Each call reserves its prompt bytes + 8 + max_tokens = 2 + 8 + 100 = 110 of 300 tokens.
    budget = AgentBudget(tokens=300, max_tokens=100, concurrent=8)
    body = {"messages": [{"role": "user", "content": "hi"}]}

    def check(path, token):
        with ThreadPoolExecutor(4) as pool:
            first = sorted(s for s, _ in pool.map(lambda _: post(path, token, body), range(4)))
        # Settled to the real usage (a few tokens each), the budget has room again.
        return first, post(path, token, body)[0]

    async def scenario():
        gateway = Gateway(LLMClient([model], attempts=1), model, archive.record_agent_call)
        try:
            async with gateway.session(budget, None, "search:train:0", "train", 0) as att:
                path = str(att.mount.host / SOCKET_NAME)
                return await asyncio.to_thread(check, path, att.env["DISCOVERY_LLM_TOKEN"])
        finally:
            gateway.close()

    try:
        first, later = asyncio.run(scenario())
        assert first == [200, 200, 403, 403] and later == 200
        assert len(server.requests) == 3
        ok = [c for c in archive.agent_calls() if c["status"] == "ok"]
        assert sum(c["prompt_tokens"] + c["completion_tokens"] for c in ok) <= 300
    finally:
        archive.close()


def test_socket_folders_of_a_killed_run_are_removed_by_the_next_gateway(tmp_path, monkeypatch) -> None:
    import subprocess
    import sys
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = tmp_path / f"discovery-gw-{dead.stdout.strip()}-abc"
    live = tmp_path / "discovery-gw-1-abc"  # pid 1 is alive
    for folder in (stale, live):
        (folder / "session").mkdir(parents=True)
    model = ModelSpec("openai/fake", 1.0, "http://127.0.0.1:9/v1")
    gateway = Gateway(LLMClient([model]), model, lambda call: None)
    try:
        assert not stale.exists() and live.exists()
        assert gateway._root.parent == tmp_path and gateway._root.exists()
    finally:
        gateway.close()
    assert not gateway._root.exists()
