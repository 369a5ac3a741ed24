"""The LLM gateway: how an agent candidate reaches the run's model from a sandbox with no network.

One Gateway per run, on the host, in the run's event loop. Each evaluation of an agent gets a
session: its own Unix socket in its own folder (mounted into that sandbox only), its own random
token (handed over in the sandbox's environment; never a provider key) and a fresh copy of the
task's `[agent]` budget. The socket speaks a small HTTP/1.1 with an OpenAI-compatible
`POST /v1/chat/completions`, so agents use the `discovery_harness.llm` client or the `openai`
package. The gateway alone chooses the model and URL (the run's pinned agent model): a request
naming another model is answered by the pinned one, and any other field is ignored.

Budgets are enforced by reservation before the call: calls exactly, tokens by an upper bound
(the prompt's UTF-8 bytes, since a token is at least one byte, plus max_tokens per completion),
dollars by litellm's price of that bound, so concurrent calls cannot overshoot. Every call, good,
failed or refused for the budget, is recorded (through `record`, the archive) before the agent
gets its reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import os
import secrets
import shutil
import tempfile
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from discovery.llm.client import LLMClient, LLMFailure, ModelSpec, Reply, estimate_cost
from discovery.sandbox.base import GATEWAY_MOUNT, Attachment, Mount
from discovery.sandbox.spawn import pid_alive
from discovery.task import AgentBudget

log = logging.getLogger(__name__)

SOCKET_NAME = "llm.sock"
ENV_SOCKET = "DISCOVERY_LLM_SOCKET"
ENV_TOKEN = "DISCOVERY_LLM_TOKEN"
SAMPLE_HEADER = "x-discovery-sample"
CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
MAX_HEAD_BYTES = 16 * 1024
MESSAGE_OVERHEAD_TOKENS = 8  # role and separators a chat template adds per message
DEFAULT_TEMPERATURE = 0.7
BODY_GRACE_S = 5.0

ROOT_PREFIX = "discovery-gw-"

Recorder = Callable[[dict[str, Any]], Any]


def remove_stale_roots() -> int:
    """Remove the socket folders of gateways whose process is gone (a run killed with kill -9)."""
    removed = 0
    for folder in Path(tempfile.gettempdir()).glob(f"{ROOT_PREFIX}*-*"):
        pid = folder.name[len(ROOT_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or pid_alive(int(pid)):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed


class Refusal(Exception):
    """A request the gateway answers with an HTTP error (and a JSON body the agent can read)."""

    def __init__(self, status: int, kind: str, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.close = close


@dataclasses.dataclass
class RecordedReplies:
    """Replay: answers an agent's calls with the replies archived for them, offline and free.

    Per evaluation and sample index, the calls must come back in the recorded order with the same
    messages and parameters; any other call is a divergence, refused with 409 and listed.
    """

    queues: dict[tuple[str, int | None], deque[dict[str, Any]]]
    divergences: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def from_calls(cls, calls: list[dict[str, Any]]) -> RecordedReplies:
        """Index archived agent calls (the answered and the failed ones; refusals recur by themselves).

        Per evaluation only the last session counts: an evaluation cut off by a killed run and
        done again on resume left the calls of its first attempt too.
        """
        last = {call["evaluation"]: call["session"] for call in sorted(calls, key=lambda c: c["id"])}
        queues: dict[tuple[str, int | None], deque[dict[str, Any]]] = {}
        for call in calls:
            if call["status"] in ("ok", "error") and call["session"] == last[call["evaluation"]]:
                queues.setdefault((call["evaluation"], call["sample_index"]), deque()).append(call)
        return cls(queues)

    def answer(
        self, evaluation: str, sample: int | None, messages: list[dict[str, str]], params: dict[str, Any]
    ) -> list[Reply]:
        """The recorded replies of the next call, or Refusal(409) when this call is not that call."""
        queue = self.queues.get((evaluation, sample))
        where = f"{evaluation}, sample {sample}"
        if not queue:
            self.divergences.append(f"{where}: an extra call that the recorded run did not make")
            raise Refusal(409, "replay_divergence", "no recorded call left for this one")
        recorded = queue[0]
        same = {k: recorded["params"].get(k) for k in ("temperature", "max_tokens", "n")} == {
            k: params[k] for k in ("temperature", "max_tokens", "n")
        }
        if recorded["messages"] != messages or not same:
            self.divergences.append(f"{where}: call differs from recorded call #{recorded['id']}")
            raise Refusal(409, "replay_divergence", f"this call differs from recorded call #{recorded['id']}")
        queue.popleft()
        if recorded["status"] != "ok":
            raise LLMFailure("error", recorded["error"] or "recorded provider error")
        texts = recorded["reply"] or [""]
        first = Reply(
            texts[0], recorded["prompt_tokens"], recorded["completion_tokens"], recorded["cost_usd"], 0.0
        )
        return [first] + [Reply(t, 0, 0, None, 0.0) for t in texts[1:]]

    def unused(self) -> list[str]:
        """Recorded calls the replay never made: also a divergence."""
        return [
            f"{ev}, sample {sample}: {len(q)} recorded call(s) not made"
            for (ev, sample), q in self.queues.items()
            if q
        ]


@dataclasses.dataclass
class Ledger:
    """One evaluation's budget: what is spent and what calls in flight have reserved."""

    budget: AgentBudget
    deadline: float  # time.monotonic() after which every call is refused
    calls: int = 0
    tokens: int = 0
    dollars: float = 0.0
    reserved_tokens: int = 0
    reserved_dollars: float = 0.0

    def reserve(self, calls: int, tokens: int, dollars: float) -> None:
        """Take calls and a token/dollar bound from the budget now, or raise Refusal."""
        b = self.budget
        if time.monotonic() >= self.deadline:
            raise Refusal(403, "wall_time_exceeded", f"the agent's wall time of {b.wall_s:g} s is over")
        if self.calls + calls > b.calls:
            raise Refusal(403, "budget_exceeded", f"call budget spent: {self.calls} of {b.calls} calls used")
        if self.tokens + self.reserved_tokens + tokens > b.tokens:
            raise Refusal(
                403,
                "budget_exceeded",
                f"token budget: {self.tokens} of {b.tokens} used, {self.reserved_tokens} reserved by calls in"
                f" flight, this call may need {tokens} (prompt bytes + max_tokens)",
            )
        if self.dollars + self.reserved_dollars + dollars > b.dollars:
            raise Refusal(
                403, "budget_exceeded", f"dollar budget: ${self.dollars:.4f} of ${b.dollars:.4f} spent"
            )
        self.calls += calls
        self.reserved_tokens += tokens
        self.reserved_dollars += dollars

    def settle(self, reserved_tokens: int, reserved_dollars: float, tokens: int, dollars: float) -> None:
        """Replace a call's reservation by what it actually used."""
        self.reserved_tokens -= reserved_tokens
        self.reserved_dollars -= reserved_dollars
        self.tokens += tokens
        self.dollars += dollars

    def summary(self) -> dict[str, float]:
        """What the evaluation spent, for its metrics."""
        return {"agent_calls": self.calls, "agent_tokens": self.tokens, "agent_cost_usd": self.dollars}


@dataclasses.dataclass
class Session:
    """One evaluation's access: socket, token, budget, concurrency and whose calls these are."""

    token: str
    folder: Path
    ledger: Ledger
    slots: asyncio.Semaphore
    label: dict[str, Any]  # candidate_id, evaluation, split, seed: stored with every call
    server: asyncio.AbstractServer | None = None
    tasks: set[asyncio.Task] = dataclasses.field(default_factory=set)
    writers: set[asyncio.StreamWriter] = dataclasses.field(default_factory=set)


@dataclasses.dataclass
class Request:
    """A parsed HTTP request head."""

    method: str
    path: str
    headers: dict[str, str]


def _parse_head(head: bytes) -> Request:
    """Request line and headers (lower-cased names); Refusal on anything malformed."""
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
    except ValueError:
        raise Refusal(400, "bad_request", "malformed HTTP request line", close=True) from None
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise Refusal(400, "bad_request", f"malformed header line {line[:80]!r}", close=True)
        headers[name.strip().lower()] = value.strip()
    return Request(method.upper(), target.split("?", 1)[0], headers)


def _content(value: Any) -> str:
    """A message's text: a string, or OpenAI's list of text parts joined; Refusal otherwise."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in value
    ):
        return "".join(p["text"] for p in value)
    raise Refusal(400, "bad_request", "a message's content must be a string or a list of text parts")


def _messages(body: Any) -> list[dict[str, str]]:
    """The request's messages, each {role, content} with string content; Refusal otherwise."""
    if not isinstance(body, dict):
        raise Refusal(400, "bad_request", "the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Refusal(400, "bad_request", "'messages' must be a non-empty list of {role, content}")
    out = []
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise Refusal(400, "bad_request", "each message must be {'role': str, 'content': str}")
        if m["role"] not in ("system", "user", "assistant", "developer"):
            raise Refusal(400, "bad_request", f"unknown message role {m['role']!r}")
        role = "system" if m["role"] == "developer" else m["role"]
        out.append({"role": role, "content": _content(m.get("content"))})
    return out


def _number(body: dict, key: str, default: float, low: float, high: float) -> float:
    """A numeric request field within [low, high]; Refusal otherwise."""
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise Refusal(400, "bad_request", f"'{key}' must be a number in [{low:g}, {high:g}]")
    return value


def _response(status: int, payload: dict[str, Any], close: bool) -> bytes:
    """A complete HTTP/1.1 response with a JSON body."""
    data = json.dumps(payload).encode()
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
    head = (
        f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: {'close' if close else 'keep-alive'}\r\n\r\n"
    )
    return head.encode() + data


def _error(refusal: Refusal) -> dict[str, Any]:
    """An OpenAI-style error body."""
    return {"error": {"message": str(refusal), "type": refusal.kind, "code": refusal.kind, "param": None}}


def _completion(model: str, texts: list[str], prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """An OpenAI chat.completion object."""
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:24],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": t},
                "finish_reason": "stop",
                "logprobs": None,
            }
            for i, t in enumerate(texts)
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


@dataclasses.dataclass
class Gateway:
    """The run's gateway: opens a session per agent evaluation and forwards its calls to the pinned model."""

    client: LLMClient
    model: ModelSpec
    record: Recorder
    run_spent: Callable[[], float] = lambda: 0.0
    max_cost: float | None = None
    replies: RecordedReplies | None = None  # replay mode: answer from the archive, never the model
    _root: Path | None = None
    _reserved_dollars: float = 0.0  # reserved by calls in flight, across sessions, for --max-cost

    def __post_init__(self) -> None:
        remove_stale_roots()
        # Short path: a Unix socket path must fit in 108 bytes. The pid lets a later run tidy up
        # after a killed one.
        self._root = Path(tempfile.mkdtemp(prefix=f"{ROOT_PREFIX}{os.getpid()}-"))
        self._root.chmod(0o711)  # sandboxes (uid 65534) may traverse it, nobody may list it

    def close(self) -> None:
        """Remove every session folder left behind."""
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)

    def sessions(
        self, budget: AgentBudget, candidate_id: int | None, purpose: str
    ) -> Callable[[str, int], contextlib.AbstractAsyncContextManager[Attachment]]:
        """A factory of sessions for one candidate's evaluations: call it with (split, seed)."""

        def open_session(split: str, seed: int) -> contextlib.AbstractAsyncContextManager[Attachment]:
            return self.session(budget, candidate_id, f"{purpose}:{split}:{seed}", split, seed)

        return open_session

    @contextlib.asynccontextmanager
    async def session(
        self, budget: AgentBudget, candidate_id: int | None, evaluation: str, split: str, seed: int
    ) -> AsyncIterator[Attachment]:
        """A fresh socket, token and budget for one evaluation; everything is torn down on exit."""
        assert self._root is not None
        session_id = secrets.token_hex(8)
        folder = self._root / session_id
        folder.mkdir(mode=0o755)
        folder.chmod(0o755)
        session = Session(
            token=secrets.token_urlsafe(32),
            folder=folder,
            ledger=Ledger(budget, time.monotonic() + budget.wall_s),
            slots=asyncio.Semaphore(budget.concurrent),
            label={
                "candidate_id": candidate_id,
                "evaluation": evaluation,
                "session": session_id,
                "split": split,
                "seed": seed,
            },
        )
        path = folder / SOCKET_NAME
        session.server = await asyncio.start_unix_server(
            lambda r, w: self._connection(session, r, w), path=str(path), limit=MAX_HEAD_BYTES
        )
        path.chmod(0o666)  # connect() needs write permission; the sandbox runs as another uid
        attachment = Attachment(
            Mount(folder, GATEWAY_MOUNT),
            {ENV_SOCKET: f"{GATEWAY_MOUNT}/{SOCKET_NAME}", ENV_TOKEN: session.token},
        )
        try:
            yield attachment
        finally:
            await self._end(session)
            attachment.usage.update(session.ledger.summary())

    async def _end(self, session: Session) -> None:
        """Close the socket, drop every connection and cancel calls still in flight."""
        session.ledger.deadline = 0.0
        if session.server is not None:
            session.server.close()
        for writer in list(session.writers):
            writer.transport.abort()
        for task in list(session.tasks):
            task.cancel()
        await asyncio.gather(*session.tasks, return_exceptions=True)
        shutil.rmtree(session.folder, ignore_errors=True)

    # ----- HTTP ------------------------------------------------------------------------------

    async def _connection(
        self, session: Session, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Serve one connection, request after request (keep-alive), until it closes or errs."""
        task = asyncio.current_task()
        assert task is not None
        session.tasks.add(task)
        session.writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                except asyncio.LimitOverrunError:
                    writer.write(
                        _response(431, _error(Refusal(431, "bad_request", "headers too large")), True)
                    )
                    await writer.drain()
                    return
                try:
                    request = _parse_head(head)
                    payload = await self._handle(session, request, reader)
                    status, close = 200, request.headers.get("connection", "").lower() == "close"
                except Refusal as refusal:
                    status, payload, close = refusal.status, _error(refusal), refusal.close
                writer.write(_response(status, payload, close))
                await writer.drain()
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            # Only _end cancels these; ending quietly keeps asyncio's stream callback (which calls
            # task.exception() on Python 3.11) from logging a cancelled task as an error.
            return
        finally:
            session.tasks.discard(task)
            session.writers.discard(writer)
            writer.close()  # flushes the last answer first (abort() would drop it)

    def _authorise(self, session: Session, request: Request) -> None:
        """The session's own token, as `Authorization: Bearer TOKEN`; Refusal otherwise."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), session.token.encode()
        ):
            raise Refusal(
                401, "invalid_token", "missing or wrong token: use $DISCOVERY_LLM_TOKEN", close=True
            )

    async def _handle(
        self, session: Session, request: Request, reader: asyncio.StreamReader
    ) -> dict[str, Any]:
        """Route one request; returns the JSON payload of a 200 or raises Refusal."""
        # The body is read (within the size limit) before the token is checked, so a refused
        # client still gets its answer instead of a broken pipe while it is sending.
        raw = await self._read_body(session, request, reader)
        self._authorise(session, request)
        if request.method == "GET" and request.path in ("/v1/models", "/models"):
            return {"object": "list", "data": [{"id": self.model.name, "object": "model"}]}
        if request.method == "GET" and request.path == "/v1/budget":
            left = max(0.0, session.ledger.deadline - time.monotonic())
            return {
                "spent": session.ledger.summary(),
                "budget": session.ledger.budget.model_dump(),
                "wall_s_left": left,
            }
        if request.method != "POST" or request.path not in CHAT_PATHS:
            raise Refusal(404, "not_found", f"no route {request.method} {request.path}")
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise Refusal(400, "bad_request", f"the body is not valid JSON: {exc}") from None
        return await self._chat(session, request, body)

    async def _read_body(self, session: Session, request: Request, reader: asyncio.StreamReader) -> bytes:
        """The raw body, refused unread when it is larger than the budget's prompt size."""
        if "transfer-encoding" in request.headers:
            raise Refusal(411, "bad_request", "send the body with Content-Length, not chunked", close=True)
        if "content-length" not in request.headers and request.method == "GET":
            return b""
        try:
            length = int(request.headers.get("content-length", ""))
        except ValueError:
            raise Refusal(411, "bad_request", "Content-Length is required", close=True) from None
        limit = session.ledger.budget.prompt_bytes
        if length < 0 or length > limit:
            # Answer and hang up without reading: a 50 MB prompt never enters this process.
            raise Refusal(
                413, "prompt_too_large", f"request of {length} bytes; the limit is {limit}", close=True
            )
        try:
            # A grace past the wall time, so a late call gets its refusal instead of a broken pipe.
            async with asyncio.timeout(max(0.0, session.ledger.deadline - time.monotonic()) + BODY_GRACE_S):
                return await reader.readexactly(length)
        except TimeoutError:
            raise Refusal(403, "wall_time_exceeded", "the agent's wall time ran out", close=True) from None

    async def _chat(self, session: Session, request: Request, body: Any) -> dict[str, Any]:
        """Check, reserve, forward to the pinned model, record, then answer."""
        budget = session.ledger.budget
        messages = _messages(body)
        temperature = _number(body, "temperature", DEFAULT_TEMPERATURE, 0, 2)
        asked = (
            body.get("max_completion_tokens") if body.get("max_tokens") is None else body.get("max_tokens")
        )
        max_tokens = int(
            min(_number({"max_tokens": asked}, "max_tokens", budget.max_tokens, 1, 1e9), budget.max_tokens)
        )
        n = int(_number(body, "n", 1, 1, budget.max_n))
        sample = request.headers.get(SAMPLE_HEADER)
        record = {
            **session.label,
            "sample_index": int(sample) if sample and sample.lstrip("-").isdigit() else None,
            "started_at": time.time(),
            "model": self.model.name,
            "messages": messages,
            "params": {
                "temperature": temperature,
                "max_tokens": max_tokens,
                "n": n,
                "asked_model": body.get("model"),
            },
        }
        prompt_bound = prompt_token_bound(messages)
        tokens = n * (prompt_bound + max_tokens)
        dollars = n * estimate_cost(self.model, prompt_bound, max_tokens)
        try:
            self._check_run_cost(dollars)
            session.ledger.reserve(n, tokens, dollars)
        except Refusal as refusal:
            self.record({**record, "status": "refused", "error": str(refusal)})
            raise
        self._reserved_dollars += dollars
        try:
            async with session.slots:
                remaining = session.ledger.deadline - time.monotonic()
                async with asyncio.timeout(max(0.0, remaining)):
                    replies = await self._forward(session, record, messages, temperature, max_tokens, n)
        except TimeoutError:
            self.record(
                {**record, "status": "error", "error": "the agent's wall time ran out during the call"}
            )
            raise Refusal(
                403, "wall_time_exceeded", "the agent's wall time ran out during the call"
            ) from None
        except LLMFailure as failure:
            self.record({**record, "status": "error", "error": str(failure)})
            raise Refusal(502, "provider_error", f"the model failed: {failure}") from None
        except asyncio.CancelledError:
            # The evaluation ended with the call in flight; it stays on the record and counted.
            self.record({**record, "status": "cancelled", "error": "the evaluation ended during the call"})
            raise
        finally:
            self._reserved_dollars -= dollars
            # Settled below with the real usage; on failure only the calls stay spent.
            session.ledger.settle(tokens, dollars, 0, 0.0)
        texts = [reply.text for reply, _finish, _refused in replies]
        prompt_tokens = sum(r.prompt_tokens for r, _f, _x in replies)
        completion_tokens = sum(r.completion_tokens for r, _f, _x in replies)
        costs = [r.cost_usd for r, _f, _x in replies]
        cost = None if all(c is None for c in costs) else sum(c or 0.0 for c in costs)
        spent_tokens, spent_dollars = prompt_tokens + completion_tokens, cost or 0.0
        session.ledger.settle(0, 0.0, spent_tokens, spent_dollars)
        self.record(
            {
                **record,
                "reply": texts,
                "status": "ok",
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "cost_usd": cost,
                "latency_s": max(r.latency_s for r, _f, _x in replies),
            }
        )
        return _completion(self.model.name, texts, prompt_tokens, completion_tokens)

    async def _forward(
        self,
        session: Session,
        record: dict[str, Any],
        messages: list[dict[str, str]],
        temperature: float,
        max_tokens: int,
        n: int,
    ) -> list[tuple[Reply, str | None, bool]]:
        """n completions from the pinned model (n requests at once), or the recorded ones in replay."""
        if self.replies is not None:
            params = {"temperature": temperature, "max_tokens": max_tokens, "n": n}
            try:
                recorded = self.replies.answer(
                    session.label["evaluation"], record["sample_index"], messages, params
                )
            except Refusal as refusal:
                self.record({**record, "status": "refused", "error": str(refusal)})
                raise
            return [(reply, "stop", False) for reply in recorded]
        return await asyncio.gather(
            *(self.client.request(self.model, messages, None, temperature, max_tokens) for _ in range(n))
        )

    def _check_run_cost(self, dollars: float) -> None:
        """The run's --max-cost covers mutation and agent calls together."""
        if self.max_cost is None:
            return
        committed = self.run_spent() + self._reserved_dollars
        if committed >= self.max_cost or committed + dollars > self.max_cost:
            raise Refusal(
                403, "run_budget_exceeded", f"the run's cost limit of ${self.max_cost:.2f} is reached"
            )


def prompt_token_bound(messages: list[dict[str, str]]) -> int:
    """An upper bound on a prompt's tokens: its UTF-8 bytes plus a per-message overhead."""
    return sum(len(m["content"].encode()) + MESSAGE_OVERHEAD_TOKENS for m in messages)
