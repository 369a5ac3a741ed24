"""Run untrusted candidate code in a child process and call its functions over JSON pipes.

The evaluator (trusted) never imports the candidate. It starts a child interpreter that imports
the candidate file and serves calls; arguments and results cross two dedicated pipes as JSON
lines (never pickle: unpickling a reply from untrusted code would run its code in the evaluator).
So the candidate cannot patch the evaluator, read its memory or held-out data, or fake the score;
it can only return values, which the evaluator validates.

    with CandidateProcess(path, timeout_s=10) as proc:
        centers, radii = proc.call("run_packing")
        scores = proc.map("priority", [(item, bins), ...])   # one round trip, several calls

- numpy arrays in arguments arrive in the child as numpy arrays (sent tagged as lists, same dtype);
  numpy arrays and scalars in results come back as plain lists and numbers. NaN and +-inf pass
  through as numbers: evaluators must check finiteness themselves.
- The child's stdout is redirected to stderr: a candidate's prints never touch the channel.
- A call that overruns its timeout kills the child's whole process group (no threads involved:
  the parent polls the pipe against a deadline), and raises CandidateTimeout.
- An exception in the candidate raises CandidateError with the candidate's traceback tail; so do
  a result that is not JSON-serialisable, a reply that is too large, and a child that exits.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NoReturn

from discovery_harness.errors import CandidateError

# Environment variables the child inherits from the evaluator; everything else is dropped.
_ENV_ALLOWLIST = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES",
    "LD_LIBRARY_PATH",
)
# Agent tasks: the LLM gateway's socket and this evaluation's token (never a provider key), passed
# only to a child that may import the harness (the agent), not to code the agent's model wrote.
_LLM_ENV = ("DISCOVERY_LLM_SOCKET", "DISCOVERY_LLM_TOKEN")
# The folder holding discovery_harness: put on the child's sys.path when it may import the harness.
_HARNESS_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PR_SET_DUMPABLE = 4
_READ_CHUNK = 1 << 16
_TAIL_CHARS = 1500

# The child: import the candidate, then answer one JSON request line with one JSON reply line.
# Kept as source text so it runs under `python3 -I -B -c` with nothing from the evaluator imported.
_BOOTSTRAP = r"""
import importlib.util, json, os, select, sys, traceback

def _decode(obj):
    if "__ndarray__" in obj:
        import numpy
        return numpy.asarray(obj["__ndarray__"], dtype=obj.get("dtype"))
    return obj

def _encode(obj):
    # numpy arrays and scalars (incl. np.int64, which json does not know) become lists / numbers.
    if type(obj).__module__.split(".")[0] == "numpy" and hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON-serialisable")

def _tail(exc, limit):
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == "<string>":
        tb = tb.tb_next  # hide the bootstrap's own frames
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return text[-limit:]

def _main():
    path, rfd, wfd, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    # A multi-file candidate's entry file imports its sibling files (the candidate's own folder).
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    if len(sys.argv) > 5:
        sys.path.insert(0, sys.argv[5])  # the harness (discovery_harness.llm for agents)
    if len(sys.argv) > 6:
        # Landlock before any candidate code runs: it then holds for the candidate and its children.
        from discovery_harness.confine import confine
        rules = json.loads(sys.argv[6])
        # The evaluator knows from landlock_abi() whether this held (a candidate could claim anything).
        confine(rules["write"], [os.path.dirname(os.path.abspath(path))], rules["hidden"])
    os.set_blocking(rfd, False)
    poller = select.poll()  # poll + non-blocking reads wake up faster than a blocking read
    poller.register(rfd, select.POLLIN)

    def requests():
        buf = b""
        while True:
            end = buf.find(b"\n")
            if end >= 0:
                yield buf[:end]
                buf = buf[end + 1:]
                continue
            poller.poll()
            try:
                chunk = os.read(rfd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                return
            buf += chunk

    def send(msg):
        try:
            data = json.dumps(msg, default=_encode, separators=(",", ":")).encode()
        except Exception as exc:
            fn = msg.get("fn", "the call")
            data = json.dumps({"id": msg.get("id"), "ok": False, "kind": "encode",
                               "error": f"the result of {fn}() is not JSON-serialisable: "
                                        f"{type(exc).__name__}: {exc}"}).encode()
        view = memoryview(data + b"\n")
        while view:
            view = view[os.write(wfd, view):]

    try:
        spec = importlib.util.spec_from_file_location("candidate", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["candidate"] = module
        spec.loader.exec_module(module)
    except BaseException as exc:
        send({"id": 0, "ok": False, "kind": "import",
              "error": f"importing the candidate raised {type(exc).__name__}: {exc}",
              "traceback": _tail(exc, limit)})
        return
    send({"id": 0, "ok": True, "result": None})
    for line in requests():
        req = json.loads(line, object_hook=_decode)
        fn_name = req["fn"]
        os.environ.update(req.get("env") or {})
        fn = getattr(module, fn_name, None)
        if not callable(fn):
            send({"id": req["id"], "ok": False, "kind": "missing",
                  "error": f"the candidate defines no function {fn_name}()"})
            continue
        try:
            if req["map"]:
                result = [fn(*args) for args in req["args"]]
            else:
                result = fn(*req["args"], **req["kwargs"])
        except BaseException as exc:
            send({"id": req["id"], "ok": False, "kind": "raised",
                  "error": f"{fn_name}() raised {type(exc).__name__}: {exc}",
                  "traceback": _tail(exc, limit)})
            continue
        send({"id": req["id"], "fn": fn_name, "ok": True, "result": result})

_main()
"""


class CandidateTimeout(CandidateError):
    """A call to the candidate did not finish within its time limit; the child was killed."""


def make_undumpable() -> bool:
    """Mark this process non-dumpable (Linux), so a same-uid child cannot ptrace it or open its /proc files."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _encode_arg(obj: Any) -> Any:
    """JSON form of numpy values in call arguments: arrays tagged so the child rebuilds them."""
    if type(obj).__module__.split(".")[0] == "numpy":
        if hasattr(obj, "shape") and hasattr(obj, "dtype") and getattr(obj, "ndim", 0) > 0:
            return {"__ndarray__": obj.tolist(), "dtype": obj.dtype.str}
        if hasattr(obj, "item"):
            return obj.item()
    raise TypeError(f"cannot send an argument of type {type(obj).__name__} to the candidate")


def _child_env(extra: Mapping[str, str] | None, llm: bool) -> dict[str, str]:
    """A minimal environment for the child: an allowlist from ours (the gateway's if llm), plus explicit extras."""
    names = _ENV_ALLOWLIST + (_LLM_ENV if llm else ())
    env = {k: os.environ[k] for k in names if k in os.environ}
    env.setdefault("PATH", "/usr/bin:/bin")
    env.update(extra or {})
    return env


class CandidateProcess:
    """A candidate program imported in a child interpreter; call its functions with call() / map()."""

    def __init__(
        self,
        candidate_path: str | os.PathLike[str],
        timeout_s: float = 10.0,
        start_timeout_s: float | None = None,
        max_reply_bytes: int = 16 << 20,
        env: Mapping[str, str] | None = None,
        import_harness: bool = False,
        confine: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.candidate_path = os.fspath(candidate_path)
        self.import_harness = import_harness  # `from discovery_harness import llm`, and the gateway socket
        # {"write": [folders], "hidden": [folders]}: Landlock the child (discovery_harness.confine); it
        # fails closed: where Landlock exists but a step fails, the child dies before the candidate loads.
        self.confine_rules = confine
        self.call_env: dict[str, str] = {}  # set in the child's environment before each call
        self.timeout_s = timeout_s
        self.start_timeout_s = timeout_s if start_timeout_s is None else start_timeout_s
        self.max_reply_bytes = max_reply_bytes
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None
        self._to_child = -1
        self._from_child = -1
        self._buffer = bytearray()
        self._next_id = 1
        self._dead_reason: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> CandidateProcess:
        """Start the child and wait until it has imported the candidate (or raise CandidateError)."""
        if self._proc is not None:
            return self
        make_undumpable()
        confine_arg = json.dumps(dict(self.confine_rules)) if self.confine_rules is not None else ""
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-B",
                    "-c",
                    _BOOTSTRAP,
                    self.candidate_path,
                    str(req_r),
                    str(rep_w),
                    str(_TAIL_CHARS),
                    *([_HARNESS_PARENT] if self.import_harness or confine_arg else []),
                    *([confine_arg] if confine_arg else []),
                ],
                stdin=subprocess.DEVNULL,
                stdout=2,  # the candidate's prints go to stderr, never into the channel
                pass_fds=(req_r, rep_w),
                close_fds=True,
                start_new_session=True,  # its own process group, so a timeout kills its children too
                env=_child_env(self._env, self.import_harness),
            )
        except BaseException:
            os.close(req_w)
            os.close(rep_r)
            raise
        finally:
            os.close(req_r)
            os.close(rep_w)
        self._to_child, self._from_child = req_w, rep_r
        os.set_blocking(req_w, False)
        os.set_blocking(rep_r, False)
        try:
            self._await_reply(0, "importing the candidate", self.start_timeout_s)
        except BaseException:
            self.close()  # `with` does not call __exit__ when __enter__ raises
            raise
        return self

    def close(self) -> None:
        """Kill the child's process group and release the pipes; later calls raise CandidateError."""
        for fd in (self._to_child, self._from_child):
            if fd >= 0:
                os.close(fd)
        self._to_child = self._from_child = -1
        self._kill()
        self._dead_reason = self._dead_reason or "the candidate process was closed"

    def __enter__(self) -> CandidateProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _kill(self) -> None:
        """SIGKILL the child's process group, then reap the child.

        Only while the child is unreaped: until then its pid (= the group id) cannot be reused,
        so the signal never reaches an unrelated process group.
        """
        if self._proc is None or self._proc.returncode is not None:
            return
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._proc.wait()

    # -- calls -------------------------------------------------------------------------------

    def call(self, fn: str, *args: Any, timeout_s: float | None = None, **kwargs: Any) -> Any:
        """Call candidate function `fn(*args, **kwargs)` in the child and return its JSON-decoded result."""
        return self._request(fn, list(args), kwargs, False, timeout_s)

    def map(self, fn: str, args_list: Iterable[Sequence[Any]], timeout_s: float | None = None) -> list[Any]:
        """Call `fn(*args)` for each args tuple in one round trip; returns the list of results."""
        return self._request(fn, [list(a) for a in args_list], {}, True, timeout_s)

    def _request(
        self, fn: str, args: list[Any], kwargs: dict[str, Any], is_map: bool, timeout_s: float | None
    ) -> Any:
        """Send one request line and wait for its reply against a deadline."""
        self.start()
        if self._dead_reason is not None:
            raise CandidateError(f"cannot call {fn}(): {self._dead_reason}")
        limit_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + limit_s
        req_id = self._next_id
        self._next_id += 1
        msg = {"id": req_id, "fn": fn, "args": args, "kwargs": kwargs, "map": is_map, "env": self.call_env}
        data = json.dumps(msg, default=_encode_arg, separators=(",", ":")).encode() + b"\n"
        self._send(data, fn, deadline, limit_s)
        return self._await_reply(req_id, f"{fn}()", limit_s, deadline)

    def _send(self, data: bytes, what: str, deadline: float, limit_s: float) -> None:
        """Write a request without ever blocking past the deadline (a child may stop reading)."""
        view = memoryview(data)
        poller = select.poll()
        poller.register(self._to_child, select.POLLOUT)
        while view:
            try:
                view = view[os.write(self._to_child, view) :]
                continue
            except BlockingIOError:
                pass
            except BrokenPipeError:
                self._fail(f"the candidate process exited{self._exit_note()} before {what}() was sent")
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                self._timeout(f"{what}()", limit_s)

    def _await_reply(self, req_id: int, what: str, limit_s: float, deadline: float | None = None) -> Any:
        """Read lines until the reply to req_id arrives; enforce deadline, size limit and protocol."""
        deadline = time.monotonic() + limit_s if deadline is None else deadline
        poller = select.poll()
        poller.register(self._from_child, select.POLLIN)
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return self._decode_reply(line, req_id, what)
            if len(self._buffer) > self.max_reply_bytes:
                self._kill()
                self._fail(f"the reply to {what} is larger than {self.max_reply_bytes} bytes")
            left = deadline - time.monotonic()
            if left <= 0:
                self._timeout(what, limit_s)
            if not poller.poll(left * 1000):
                continue  # the loop re-checks the deadline
            try:
                chunk = os.read(self._from_child, _READ_CHUNK)
            except BlockingIOError:
                continue
            if not chunk:
                self._fail(f"the candidate process exited{self._exit_note()} during {what}")
            self._buffer += chunk

    def _decode_reply(self, line: bytes, req_id: int, what: str) -> Any:
        """Parse one reply line from the (untrusted) child; raise CandidateError on anything odd."""
        try:
            reply = json.loads(line)
        except (ValueError, RecursionError) as exc:
            self._kill()
            self._fail(f"the candidate process sent a malformed reply to {what}: {type(exc).__name__}")
        if not isinstance(reply, dict) or reply.get("id") != req_id or not isinstance(reply.get("ok"), bool):
            self._kill()
            self._fail(f"the candidate process sent an out-of-protocol reply to {what}")
        if reply["ok"]:
            return reply.get("result")
        error = str(reply.get("error", "failed"))
        tail = reply.get("traceback")
        if reply.get("kind") == "import":
            self._kill()
            self._dead_reason = error
        raise CandidateError(error + (f"\n{str(tail)[-_TAIL_CHARS:]}" if tail else ""))

    def _exit_note(self) -> str:
        """' with code N' / ' (killed by signal N)' if the child exited by itself; kills it either way."""
        proc = self._proc
        if proc is None:
            return ""
        exited = proc.returncode is not None
        deadline = time.monotonic() + 1.0
        while not exited and time.monotonic() < deadline:
            if hasattr(os, "waitid"):  # peek without reaping, so _kill can still signal the group
                exited = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None
            else:
                exited = proc.poll() is not None
            if not exited:
                time.sleep(0.005)
        self._kill()  # also ends any processes it left behind
        code = proc.returncode
        if not exited or code is None:
            return " (it closed its reply pipe)"
        if code < 0:
            return f" (killed by signal {-code}{', out of memory?' if -code == signal.SIGKILL else ''})"
        return f" with code {code}"

    def _timeout(self, what: str, limit_s: float) -> NoReturn:
        """Kill the child and raise CandidateTimeout."""
        self._kill()
        self._dead_reason = f"the candidate process was killed after {what} timed out"
        raise CandidateTimeout(
            f"timeout: {what} did not finish within {limit_s:.3g} s; the candidate process was killed"
        )

    def _fail(self, reason: str) -> NoReturn:
        """Record that the child is unusable and raise CandidateError."""
        self._dead_reason = reason
        raise CandidateError(reason)
