"""A scripted OpenAI-compatible chat server on 127.0.0.1 for tests (stdlib only).

Usage:
    with FakeLLMServer(replies=["hello", Fail(429), lambda req: "..."], latency_s=0.1) as srv:
        litellm.acompletion(model="openai/fake", api_base=srv.api_base, api_key="sk-fake", ...)
        srv.requests  # every JSON body received, in arrival order

Replies are consumed in order, one per chat request; when the script runs out, `default`
answers (a string, a callable, or an instruction), or the last reply repeats if default is None.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")


@dataclass(frozen=True)
class Fail:
    """Answer with an HTTP error status and an OpenAI-style error body."""

    status: int = 500
    body: dict[str, Any] | str | None = None


@dataclass(frozen=True)
class Empty:
    """Answer 200 with empty assistant content."""


@dataclass(frozen=True)
class Refuse:
    """Answer 200 with content null and finish_reason "content_filter"."""


@dataclass(frozen=True)
class Hang:
    """Wait this long before answering (then answer with `then`, default the text "late")."""

    seconds: float
    then: str = "late"


Reply = str | Callable[[dict[str, Any]], str] | Fail | Empty | Refuse | Hang

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_api_key",
    403: "permission_denied",
    404: "not_found_error",
    429: "rate_limit_exceeded",
}


def count_tokens(text: str) -> int:
    """A crude, deterministic token count (whitespace words) for `usage`."""
    return len(text.split())


@dataclass
class _State:
    """Script and records shared by handler threads; every access holds `lock`."""

    replies: list[Reply]
    default: Reply | None
    latency_s: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    last: Reply | None = None
    # Set on shutdown so that handlers sleeping in latency or Hang return at once.
    stopping: threading.Event = field(default_factory=threading.Event)

    def next_reply(self, body: dict[str, Any], path: str) -> Reply:
        """Record the request and pop the next scripted reply (or the default)."""
        with self.lock:
            self.requests.append(body)
            self.paths.append(path)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self.replies:
                reply = self.replies.pop(0)
                self.last = reply
            elif self.default is not None:
                reply = self.default
            elif self.last is not None:
                reply = self.last
            else:
                reply = "ok"
            return reply

    def done(self) -> None:
        """Mark one request finished."""
        with self.lock:
            self.in_flight -= 1


def _completion(body: dict[str, Any], content: str | None, finish_reason: str) -> dict[str, Any]:
    """A chat.completion object with usage, echoing the requested model."""
    prompt_text = " ".join(
        m.get("content") if isinstance(m.get("content"), str) else json.dumps(m.get("content"))
        for m in body.get("messages", [])
        if isinstance(m, dict)
    )
    prompt_tokens = count_tokens(prompt_text)
    completion_tokens = count_tokens(content or "")
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:24],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "system_fingerprint": "fake-llm",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _error_body(fail: Fail) -> dict[str, Any]:
    """OpenAI-style {"error": {...}} body for a Fail."""
    if isinstance(fail.body, dict):
        return fail.body
    message = fail.body if isinstance(fail.body, str) else f"fake error {fail.status}"
    err_type = _ERROR_TYPES.get(fail.status, "server_error")
    return {"error": {"message": message, "type": err_type, "param": None, "code": err_type}}


class _Handler(BaseHTTPRequestHandler):
    """Serves POST chat completions from the script and GET /v1/models."""

    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silence the per-request stderr log."""

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        """Write a JSON response with Content-Length (keep-alive safe)."""
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        """GET /v1/models and /health, for clients that probe."""
        path = self.path.split("?", 1)[0]
        if path in ("/v1/models", "/models"):
            self._send_json(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
        elif path == "/health":
            self._send_json(200, {"status": "ok"})
        else:
            self._send_json(404, {"error": {"message": f"no route {path}", "type": "not_found_error"}})

    def do_POST(self) -> None:  # noqa: N802
        """POST /v1/chat/completions: answer with the next scripted reply."""
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if path not in CHAT_PATHS:
            self._send_json(404, {"error": {"message": f"no route {path}", "type": "not_found_error"}})
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            self._send_json(400, {"error": {"message": f"bad JSON: {exc}", "type": "invalid_request_error"}})
            return
        state = self.server.state
        reply = state.next_reply(body, path)
        try:
            self._answer(reply, body, state)
        finally:
            state.done()

    def _answer(self, reply: Reply, body: dict[str, Any], state: _State) -> None:
        """Sleep the latency, then write the response the reply describes."""
        if state.latency_s > 0 and state.stopping.wait(state.latency_s):
            return
        if isinstance(reply, Hang):
            if state.stopping.wait(reply.seconds):
                return
            reply = reply.then
        if isinstance(reply, Fail):
            headers = {"Retry-After": "0"} if reply.status == 429 else None
            self._send_json(reply.status, _error_body(reply), headers)
        elif isinstance(reply, Empty):
            self._send_json(200, _completion(body, "", "stop"))
        elif isinstance(reply, Refuse):
            self._send_json(200, _completion(body, None, "content_filter"))
        elif isinstance(reply, str):
            self._send_json(200, _completion(body, reply, "stop"))
        elif callable(reply):
            try:
                content = str(reply(body))
            except Exception as exc:  # a broken test callable shows up as a 500 naming the error
                self._send_json(500, _error_body(Fail(500, f"reply callable raised {exc!r}")))
                return
            self._send_json(200, _completion(body, content, "stop"))
        else:
            raise TypeError(f"unknown scripted reply {reply!r}")


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the shared state; handler threads are daemons."""

    daemon_threads = True
    # Many concurrent clients connect at once; the default backlog of 5 could refuse some.
    request_queue_size = 64

    def __init__(self, state: _State) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that hung up (timeouts are part of the script); report anything else."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class FakeLLMServer:
    """Context manager running the scripted server in a background thread on a free port."""

    def __init__(
        self, replies: Iterable[Reply] = (), latency_s: float = 0.0, default: Reply | None = None
    ) -> None:
        self._state = _State(replies=list(replies), default=default, latency_s=latency_s)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def api_base(self) -> str:
        """Base URL for OpenAI clients: http://127.0.0.1:PORT/v1."""
        if self._server is None:
            raise RuntimeError("FakeLLMServer is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A copy of every chat request body received so far."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def paths(self) -> list[str]:
        """The URL path of every chat request received so far."""
        with self._state.lock:
            return list(self._state.paths)

    @property
    def max_in_flight(self) -> int:
        """The most chat requests that were being served at the same moment."""
        with self._state.lock:
            return self._state.max_in_flight

    def add_replies(self, *replies: Reply) -> None:
        """Append replies to the script while running."""
        with self._state.lock:
            self._state.replies.extend(replies)

    def __enter__(self) -> FakeLLMServer:
        self._state.stopping.clear()
        self._server = _Server(self._state)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._state.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None
