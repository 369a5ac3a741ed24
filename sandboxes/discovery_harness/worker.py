"""Run candidate code on its own thread, so that walking up its frames never reaches the harness.

A frame's f_back chain ends at its thread's bootstrap. The harness keeps its state (expected
outputs, private data, the Guard) on the main thread's stack; the candidate is imported and every
call into it is made on this worker thread, whose stack holds only the job being run. The two
ways across threads, sys._current_frames() and gc object walks, are refused by the Guard's audit
hook. The main thread blocks while a job runs, so jobs are timed without interference.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import threading
import traceback
from collections.abc import Callable
from typing import Any

from discovery_harness.errors import CandidateError


def _serve(requests: queue.SimpleQueue, replies: queue.SimpleQueue, setup: Callable[[], None]) -> None:
    """The worker loop: run each job, reply (ok, value) or (False, formatted error text)."""
    setup()
    while True:
        job = requests.get()
        if job is None:
            return
        nonce, function, args = job
        del job
        try:
            value = function(*args)
        except CandidateError as exc:
            del function, args
            replies.put((nonce, False, "CandidateError", str.__str__(str(exc))))
            continue
        except BaseException:  # noqa: BLE001 - a candidate's failure, whatever it is, is reported
            del function, args
            replies.put((nonce, False, "exception", traceback.format_exc()[-3000:]))
            continue
        del function, args
        replies.put((nonce, True, "", value))
        del value


class CandidateThread:
    """A single worker thread that runs candidate-facing jobs one at a time."""

    def __init__(self, setup: Callable[[], None]) -> None:
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._replies: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=_serve, args=(self._requests, self._replies, setup), name="candidate", daemon=True
        )
        self._thread.start()

    def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run function(*args) on the worker; a failure there raises CandidateError here."""
        nonce = int.from_bytes(os.urandom(8), "little")
        self._requests.put((nonce, function, args))
        reply = self._replies.get()
        # A candidate that reaches the reply queue could answer for a job; the job's own reply then
        # arrives late and mismatches the next nonce, which close() also checks.
        if type(reply) is not tuple or len(reply) != 4 or reply[0] != nonce:
            raise CandidateError("a reply from the candidate thread was forged or out of order")
        _, ok, kind, value = reply
        if not ok:
            if kind == "CandidateError":
                raise CandidateError(value)
            last = value.strip().splitlines()[-1] if value.strip() else "error"
            raise CandidateError(f"the candidate raised {last}\n{value}")
        return value

    def flush(self) -> None:
        """Raise CandidateError if a stray reply is pending (a forged reply leaves the real one behind)."""
        self.run(_noop)

    def close(self) -> None:
        """Stop the worker after its current job; never raises."""
        self._requests.put(None)
        self._thread.join(timeout=5)


def _noop() -> None:
    """Job: nothing; used to flush the reply queue."""


def import_candidate(path: str, names: tuple[str, ...]) -> tuple[Any, ...]:
    """Job: import the candidate file and return the named attributes (looked up here, not on main)."""
    spec = importlib.util.spec_from_file_location("candidate_program", path)
    if spec is None or spec.loader is None:
        raise CandidateError(f"cannot import the candidate file {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = []
    for name in names:
        value = getattr(module, name, None)
        if value is None:
            raise CandidateError(f"the candidate must define {name!r}")
        found.append(value)
    return tuple(found)
