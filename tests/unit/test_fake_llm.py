"""The fake OpenAI-compatible server, driven through the real litellm and openai HTTP code paths."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
from typing import Any

import pytest

# litellm would otherwise fetch its price list from the internet at import time.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import litellm  # noqa: E402

from tests.fake_llm import Empty, Fail, FakeLLMServer, Hang, Refuse  # noqa: E402

litellm.suppress_debug_info = True
# Both knobs at 0: litellm's own retry loop (num_retries) and the openai SDK's (max_retries, default 2).
NO_RETRIES: dict[str, Any] = {"num_retries": 0, "max_retries": 0}


def _ask(server: FakeLLMServer, content: str = "hello there", **kwargs: Any) -> Any:
    """One litellm.acompletion call against the fake server."""
    return asyncio.run(
        litellm.acompletion(
            model="openai/fake",
            api_base=server.api_base,
            api_key="sk-fake",
            messages=[{"role": "user", "content": content}],
            **{**NO_RETRIES, **kwargs},
        )
    )


def test_reply_usage_model_and_seed() -> None:
    with FakeLLMServer(["def f(x):\n    return x"]) as server:
        resp = _ask(server, "one two three", seed=1234)
        assert resp.choices[0].message.content == "def f(x):\n    return x"
        assert resp.choices[0].finish_reason == "stop"
        assert resp.model == "fake"
        assert resp.usage.prompt_tokens == 3
        assert resp.usage.completion_tokens == 4  # the fake counts whitespace-separated words
        assert resp.usage.total_tokens == 7
        (body,) = server.requests
        assert body["seed"] == 1234
        assert body["model"] == "fake"
        assert server.paths == ["/v1/chat/completions"]


def test_callable_reply_sees_the_request() -> None:
    def echo(body: dict[str, Any]) -> str:
        return "you said: " + body["messages"][-1]["content"]

    with FakeLLMServer([echo]) as server:
        assert _ask(server, "ping").choices[0].message.content == "you said: ping"


def test_script_order_then_repeat_last() -> None:
    with FakeLLMServer(["a", "b"]) as server:
        got = [_ask(server).choices[0].message.content for _ in range(4)]
    assert got == ["a", "b", "b", "b"]


def test_default_after_script() -> None:
    with FakeLLMServer(["a"], default=lambda body: f"n={len(body['messages'])}") as server:
        got = [_ask(server).choices[0].message.content for _ in range(3)]
    assert got == ["a", "n=1", "n=1"]


@pytest.mark.parametrize(
    ("status", "exc_class"),
    [
        (500, litellm.InternalServerError),
        (429, litellm.RateLimitError),
        (401, litellm.AuthenticationError),
    ],
)
def test_http_errors_map_to_litellm_exceptions(status: int, exc_class: type[Exception]) -> None:
    with FakeLLMServer([Fail(status, "scripted failure")]) as server:
        with pytest.raises(exc_class) as info:
            _ask(server)
        assert info.value.status_code == status
        assert "scripted failure" in str(info.value)
        # No retry inside litellm or the openai SDK: exactly one request reached the server.
        assert len(server.requests) == 1


def test_sdk_retries_unless_disabled() -> None:
    # Documents why NO_RETRIES matters: left alone, the openai SDK retries a 500 twice.
    with FakeLLMServer([], default=Fail(500)) as server:
        with pytest.raises(litellm.InternalServerError):
            asyncio.run(
                litellm.acompletion(
                    model="openai/fake",
                    api_base=server.api_base,
                    api_key="sk-fake",
                    messages=[{"role": "user", "content": "x"}],
                )
            )
        assert len(server.requests) == 3


def test_empty_and_refused_replies() -> None:
    with FakeLLMServer([Empty(), Refuse()]) as server:
        empty = _ask(server)
        refused = _ask(server)
    assert empty.choices[0].message.content == ""
    assert refused.choices[0].message.content is None
    assert refused.choices[0].finish_reason == "content_filter"


def test_hang_surfaces_as_litellm_timeout() -> None:
    with FakeLLMServer([Hang(30)]) as server:
        with pytest.raises(litellm.Timeout):
            _ask(server, timeout=0.3)
        assert len(server.requests) == 1


def test_concurrent_requests_are_served_concurrently() -> None:
    async def four(server: FakeLLMServer) -> list[Any]:
        calls = [
            litellm.acompletion(
                model="openai/fake",
                api_base=server.api_base,
                api_key="sk-fake",
                messages=[{"role": "user", "content": f"q{i}"}],
                **NO_RETRIES,
            )
            for i in range(4)
        ]
        return await asyncio.gather(*calls)

    with FakeLLMServer([], default="ok", latency_s=0.5) as server:
        replies = asyncio.run(four(server))
        assert [r.choices[0].message.content for r in replies] == ["ok"] * 4
        assert server.max_in_flight >= 2


def test_cost_of_an_unknown_model() -> None:
    with FakeLLMServer(["two words"]) as server:
        unpriced = _ask(server, "a b c")
        priced = _ask(server, "a b c", input_cost_per_token=1e-6, output_cost_per_token=2e-6)
    # An unmapped openai/<name> has no cost: None in hidden params, and completion_cost raises.
    assert unpriced._hidden_params["response_cost"] is None
    with pytest.raises(litellm.exceptions.ModelNotMappedError):
        litellm.completion_cost(completion_response=unpriced)
    # Per-call prices make litellm compute it: 3 prompt tokens * 1e-6 + 2 completion tokens * 2e-6.
    assert priced._hidden_params["response_cost"] == pytest.approx(7e-6)


def test_openai_client_and_bare_path() -> None:
    from openai import OpenAI

    with FakeLLMServer(["via sdk", "via bare path"]) as server:
        client = OpenAI(base_url=server.api_base, api_key="sk-fake", max_retries=0)
        resp = client.chat.completions.create(
            model="m1", messages=[{"role": "user", "content": "hi"}], seed=5
        )
        assert resp.choices[0].message.content == "via sdk"
        assert resp.model == "m1"
        root = server.api_base.removesuffix("/v1")
        req = urllib.request.Request(
            root + "/chat/completions",
            data=json.dumps({"model": "m2", "messages": [{"role": "user", "content": "x"}]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as raw:
            payload = json.loads(raw.read())
        assert payload["object"] == "chat.completion"
        assert payload["choices"][0]["message"]["content"] == "via bare path"
        assert server.paths == ["/v1/chat/completions", "/chat/completions"]
