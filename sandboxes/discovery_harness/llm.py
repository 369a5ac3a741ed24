"""The agent's LLM client inside a sandbox: chat with the run's model through the gateway's Unix socket.

Standard library only. The socket path and this evaluation's token come from the environment
($DISCOVERY_LLM_SOCKET, $DISCOVERY_LLM_TOKEN); there is no network and no provider key here.

    from discovery_harness import llm
    answer = llm.chat([{"role": "user", "content": "2 + 2?"}], temperature=0.0, max_tokens=64)
    votes = llm.chat(messages, temperature=0.8, n=5)          # n > 1: a list of n replies

Over budget, past the wall time, or with a bad request, chat() raises LLMError (BudgetExceeded
for the budget and wall time), which an agent may catch. The model is the run's: a request cannot
choose another. The same socket speaks OpenAI's /v1/chat/completions (see README, "Agent tasks").

Outside discovery (an agent written out by `discovery export`), with no socket set, the client
calls any OpenAI-compatible endpoint directly: $DISCOVERY_LLM_BASE_URL (e.g.
https://api.openai.com/v1), $DISCOVERY_LLM_MODEL and $DISCOVERY_LLM_API_KEY. A sandbox never has
these, and has no network.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import urllib.parse

ENV_SOCKET = "DISCOVERY_LLM_SOCKET"
ENV_TOKEN = "DISCOVERY_LLM_TOKEN"
ENV_BASE_URL = "DISCOVERY_LLM_BASE_URL"  # standalone use only (see the module docstring)
ENV_MODEL = "DISCOVERY_LLM_MODEL"
ENV_API_KEY = "DISCOVERY_LLM_API_KEY"
# Set by the evaluator around each sample (CandidateProcess.call(..., env=...)); recorded with each call.
ENV_SAMPLE = "DISCOVERY_LLM_SAMPLE"
TIMEOUT_S = 600.0


class LLMError(RuntimeError):
    """The gateway refused or failed a call; `kind` says why (e.g. budget_exceeded, prompt_too_large)."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(f"{kind} ({status}): {message}")
        self.status = status
        self.kind = kind


class BudgetExceeded(LLMError):
    """The evaluation's agent budget (calls, tokens, dollars, wall time) does not allow this call."""


class UnixHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection over a Unix socket instead of TCP."""

    def __init__(self, path: str, timeout: float = TIMEOUT_S) -> None:
        super().__init__("gateway", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def available() -> bool:
    """Whether this process can reach a model: a gateway (inside an evaluation) or a direct endpoint."""
    return bool(os.environ.get(ENV_SOCKET) and os.environ.get(ENV_TOKEN)) or bool(
        os.environ.get(ENV_BASE_URL)
    )


def _connection() -> tuple[http.client.HTTPConnection, str, str]:
    """The connection, the path prefix and the bearer token: the gateway's socket, else a direct endpoint."""
    if os.environ.get(ENV_SOCKET):
        return UnixHTTPConnection(os.environ[ENV_SOCKET]), "", os.environ.get(ENV_TOKEN, "")
    url = urllib.parse.urlsplit(os.environ[ENV_BASE_URL])
    cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    prefix = url.path.rstrip("/")
    if prefix.endswith("/v1"):
        prefix = prefix[: -len("/v1")]
    return cls(url.hostname, url.port, timeout=TIMEOUT_S), prefix, os.environ.get(ENV_API_KEY, "")


def request(method: str, path: str, body: dict | None = None) -> dict:
    """One request to the gateway (or the direct endpoint); returns the JSON reply or raises LLMError."""
    if not available():
        raise LLMError(
            0,
            "no_gateway",
            f"${ENV_SOCKET} is not set: not an agent task's evaluation (outside discovery, set ${ENV_BASE_URL},"
            f" ${ENV_MODEL} and ${ENV_API_KEY})",
        )
    if body is not None and not os.environ.get(ENV_SOCKET) and os.environ.get(ENV_MODEL):
        body = {**body, "model": os.environ[ENV_MODEL]}  # the gateway pins the model; an endpoint needs one
    data = json.dumps(body).encode() if body is not None else None
    conn, prefix, token = _connection()
    headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
    sample = os.environ.get(ENV_SAMPLE)
    if sample:
        headers["X-Discovery-Sample"] = sample
    try:
        try:
            conn.request(method, prefix + path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise LLMError(0, "gateway_unreachable", f"{type(exc).__name__}: {exc}") from None
    finally:
        conn.close()
    try:
        payload = json.loads(raw)
    except ValueError:
        raise LLMError(response.status, "bad_reply", raw[:200].decode(errors="replace")) from None
    if response.status != 200:
        error = payload.get("error", {}) if isinstance(payload, dict) else {}
        kind, message = error.get("type", "error"), error.get("message", "")
        cls = (
            BudgetExceeded
            if kind in ("budget_exceeded", "wall_time_exceeded", "run_budget_exceeded")
            else LLMError
        )
        raise cls(response.status, kind, message)
    return payload


def chat(
    messages: list[dict[str, str]] | str,
    temperature: float = 0.7,
    max_tokens: int | None = None,
    n: int = 1,
) -> str | list[str]:
    """Ask the run's model; a string, or a list of n strings when n > 1. A plain string is one user message."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    body: dict = {"messages": messages, "temperature": temperature, "n": n}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    payload = request("POST", "/v1/chat/completions", body)
    texts = [c["message"]["content"] or "" for c in payload["choices"]]
    return texts if n > 1 else texts[0]


def budget() -> dict:
    """What this evaluation has spent, its limits and the seconds left: {'spent', 'budget', 'wall_s_left'}."""
    return request("GET", "/v1/budget")
