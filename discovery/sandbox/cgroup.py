"""Per-job cgroups (v1 or v2) for the process and bwrap backends: memory and pid caps, and a tree kill.

A cgroup follows every descendant, even ones that call setsid() to leave the process group, so
killing its members kills the whole tree. RSS limits also spare torch the address-space limit
(RLIMIT_AS) that breaks its large virtual reservations. Used only when this process may write the
cgroup file system (root, or delegated); otherwise backends fall back to rlimits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import time
import uuid
from pathlib import Path

from discovery.sandbox.base import Limits

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
_PREFIX = "discovery-"


def _own_path(controller: str) -> str:
    """This process's cgroup path for a v1 controller ('' for the v2 unified entry)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return "/"
    for line in lines:
        _id, names, path = line.split(":", 2)
        if controller in names.split(",") or (controller == "" and names == ""):
            return path
    return "/"


def _write(path: Path, value: str) -> None:
    """Write one cgroup control file."""
    with open(path, "w") as fh:
        fh.write(value)


class Cgroup:
    """One job's cgroup: a folder per v1 controller (memory, pids) or one v2 folder."""

    def __init__(self, dirs: list[Path], *, v2: bool, has_memory: bool, has_pids: bool) -> None:
        self.dirs = dirs
        self.v2 = v2
        self.has_memory = has_memory
        self.has_pids = has_pids

    @classmethod
    def create(cls, limits: Limits, labels: dict[str, str] | None = None) -> Cgroup | None:
        """Make a cgroup with the job's memory and pid caps; None when cgroups are not writable here."""
        name = _PREFIX + (labels or {}).get("discovery.run", "job")[:40] + "-" + uuid.uuid4().hex[:12]
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        try:
            if (CGROUP_ROOT / "memory").is_dir() or (CGROUP_ROOT / "pids").is_dir():
                return cls._create_v1(name, limits)
            if (CGROUP_ROOT / "cgroup.controllers").is_file():
                return cls._create_v2(name, limits)
        except OSError as exc:
            log.debug("no cgroup for this job: %s", exc)
        return None

    @classmethod
    def _create_v1(cls, name: str, limits: Limits) -> Cgroup | None:
        """v1: a child of our own cgroup under the memory and pids hierarchies that exist."""
        made = []
        has_memory = has_pids = False
        try:
            mem_root = CGROUP_ROOT / "memory"
            if mem_root.is_dir() and os.access(mem_root, os.W_OK):
                d = mem_root / _own_path("memory").lstrip("/") / name
                d.mkdir()
                made.append(d)
                limit = str(limits.memory_mb * 1024 * 1024)
                _write(d / "memory.limit_in_bytes", limit)
                if (d / "memory.memsw.limit_in_bytes").exists():
                    # memory+swap cap too, or a bomb just swaps instead of being stopped
                    with contextlib.suppress(OSError):
                        _write(d / "memory.memsw.limit_in_bytes", limit)
                has_memory = True
            pids_root = CGROUP_ROOT / "pids"
            if pids_root.is_dir() and os.access(pids_root, os.W_OK):
                d = pids_root / _own_path("pids").lstrip("/") / name
                d.mkdir()
                made.append(d)
                _write(d / "pids.max", str(limits.pids))
                has_pids = True
        except OSError:
            for d in made:
                with contextlib.suppress(OSError):
                    d.rmdir()
            raise
        if not made:
            return None
        return cls(made, v2=False, has_memory=has_memory, has_pids=has_pids)

    @classmethod
    def _create_v2(cls, name: str, limits: Limits) -> Cgroup | None:
        """v2: a folder next to ours; needs memory and pids enabled in the parent's subtree_control."""
        parent = CGROUP_ROOT / _own_path("").lstrip("/")
        if parent != CGROUP_ROOT:
            parent = parent.parent  # a v2 cgroup holding processes may not have children with controllers
        wanted = {"memory", "pids"}
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
        if not wanted <= enabled:
            _write(parent / "cgroup.subtree_control", " ".join("+" + c for c in wanted - enabled))
        d = parent / name
        d.mkdir()
        try:
            _write(d / "memory.max", str(limits.memory_mb * 1024 * 1024))
            with contextlib.suppress(OSError):
                _write(d / "memory.swap.max", "0")
            _write(d / "pids.max", str(limits.pids))
        except OSError:
            d.rmdir()
            raise
        return cls([d], v2=True, has_memory=True, has_pids=True)

    def procs_files(self) -> list[str]:
        """The cgroup.procs files a child writes its pid into to join (all controllers)."""
        return [str(d / "cgroup.procs") for d in self.dirs]

    def join_argv(self, shell: str) -> list[str]:
        """An argv prefix whose shell moves itself into this cgroup, then execs the rest (same pid).

        It fails closed: if a join fails, the shell exits 125 and the job never starts.
        """
        joins = "".join(f"echo $$ >{shlex.quote(p)} || exit 125\n" for p in self.procs_files())
        return [shell, "-c", joins + 'exec "$@"', "discovery-cgroup-join"]

    def pids(self) -> set[int]:
        """Every process in the cgroup now."""
        found: set[int] = set()
        for d in self.dirs:
            with contextlib.suppress(OSError):
                found.update(int(x) for x in (d / "cgroup.procs").read_text().split())
        return found

    def kill_all(self) -> None:
        """SIGKILL every member, repeating while a fork race adds new ones."""
        if self.v2 and (self.dirs[0] / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                _write(self.dirs[0] / "cgroup.kill", "1")
                return
        for _ in range(100):
            members = self.pids()
            if not members:
                return
            for pid in members:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def memory_exceeded(self) -> bool:
        """Whether the kernel's OOM killer fired in this cgroup."""
        for d in self.dirs:
            name = "memory.events" if self.v2 else "memory.oom_control"
            with contextlib.suppress(OSError):
                for line in (d / name).read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and int(value) > 0:
                        return True
        return False

    def remove(self) -> None:
        """Kill what is left and delete the cgroup folders (they must be empty first)."""
        self.kill_all()
        for d in self.dirs:
            for attempt in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    # killed members take a moment to be reaped
                    if attempt % 10 == 9:
                        self.kill_all()
                    time.sleep(0.002)
            else:
                log.warning("could not remove cgroup %s", d)
