"""A private uid for each bubblewrap job run as root, so no per-user kernel limit is shared.

The kernel keeps several limits per uid, not per process tree: RLIMIT_NPROC (tasks), pending
signals, pipe buffer pages, inotify instances, POSIX message queue bytes. Were every job nobody
(65534), a fork-bombing candidate would use up the neighbour job's RLIMIT_NPROC (where there is no
pids cgroup) and the others likewise. Each job therefore runs as a uid of its own, drawn at random
from a range above the 16-bit ids of system accounts and of the usual subordinate-id ranges of
user namespaces (/etc/subuid starts at 100000 and grows in 65536 steps); uids this process has
handed out and not yet taken back are never drawn twice. Another process on the host (a second
run) draws from the same 2^24 ids: two of their jobs at once share one with odds of 1 in 16 million.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

JOB_UID_BASE = 0x70000000  # 1879048192: far above system, user and subuid ranges
JOB_UID_COUNT = 1 << 24


class JobUids:
    """Hands out job uids, each held by one job at a time within this process."""

    def __init__(self, base: int = JOB_UID_BASE, count: int = JOB_UID_COUNT) -> None:
        self.base = base
        self.count = count
        self.held: set[int] = set()

    @contextlib.contextmanager
    def lease(self) -> Iterator[int]:
        """A uid no other job of this process holds, given back when the job is over."""
        uid = self.base + secrets.randbelow(self.count)
        while uid in self.held:
            uid = self.base + secrets.randbelow(self.count)
        self.held.add(uid)
        try:
            yield uid
        finally:
            self.held.discard(uid)
