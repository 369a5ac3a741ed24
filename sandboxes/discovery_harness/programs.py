"""Run code that a model wrote (e.g. an ARC agent's `transform`): in its own child process, bounded in time.

Such code is untrusted twice over (the agent is, and so is the model it asked), so it never runs in
the caller's process: it is written to a private temporary file and imported by a CandidateProcess,
whose calls are timed from outside and whose whole process group is killed on overrun (no threads
as timeouts). The child gets no LLM gateway access (CandidateProcess passes the socket only to a
child that may import the harness), so running a program never spends an agent's budget.

    from discovery_harness import programs
    code = programs.extract_python(reply)                      # the last ```python block, else the text
    outputs = programs.run_function(code, "transform", [(grid,) for grid in inputs], timeout_s=3)
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from discovery_harness.candidate import CandidateProcess

FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)
MAX_REPLY_BYTES = 4 << 20  # far above any ARC grid list; a flood is cut off, not buffered


def extract_python(text: str) -> str:
    """The code in a model's reply: its last fenced block (```python or bare), else the whole text."""
    blocks = FENCE.findall(text or "")
    return (blocks[-1] if blocks else text or "").strip() + "\n"


def run_function(
    source: str, fn: str, args_list: Sequence[Sequence[Any]], timeout_s: float = 3.0
) -> list[Any]:
    """fn(*args) for each args in a fresh child importing `source`; import and all calls share timeout_s.

    Raises CandidateError (the code raised, is missing fn, or returned something not JSON-able) or
    CandidateTimeout (the child was killed at the deadline).
    """
    deadline = time.monotonic() + timeout_s
    with tempfile.TemporaryDirectory(prefix="program-") as folder:
        path = os.path.join(folder, "program.py")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(source)
        with CandidateProcess(path, timeout_s=timeout_s, max_reply_bytes=MAX_REPLY_BYTES) as proc:
            left = max(0.001, deadline - time.monotonic())
            return proc.map(fn, [list(args) for args in args_list], timeout_s=left)
