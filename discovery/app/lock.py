"""One driver per run: an exclusive flock on a file in the run folder, naming who holds it.

flock is released by the kernel when its holder dies (even by kill -9), so a stale lock of a killed
process is simply taken over; the file's text (pid, host, start time) only serves the error message.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from discovery.errors import UserError

LOCK_FILE = "run.lock"


def _holder(fd: int) -> str:
    """Who holds the lock, as written in the lock file by its holder."""
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["started_at"]))
        return f"pid {info['pid']} on {info['host']} since {since}"
    except (ValueError, KeyError, TypeError, OSError):
        return "another process"


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run's lock for the duration; UserError naming the holder when another process has it."""
    fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"run {Path(run_dir).name!r} is already being driven by {_holder(fd)}; "
                "wait for it to stop (or stop it) before resuming"
            ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the flock
