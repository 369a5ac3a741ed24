"""The sandbox interface: run one command under limits, with read-only mounts, and report what happened."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Protocol

# Where the host's folders appear inside every sandbox. Backends without a mount
# namespace (the process backend) rewrite these prefixes to the host paths.
TASK_MOUNT = "/task"
RUNNER_MOUNT = "/runner"
CANDIDATE_MOUNT = "/candidate"
GATEWAY_MOUNT = "/llm"  # the folder holding this evaluation's LLM gateway socket (agent tasks)
PYTHON = "python3"  # argv[0] token: each backend substitutes the interpreter it runs


@dataclasses.dataclass(frozen=True)
class Limits:
    """Resource limits for one sandboxed run."""

    timeout_s: float = 60.0
    cpus: float = 1.0
    memory_mb: int = 1024
    pids: int = 64
    output_bytes: int = 1_000_000  # stdout + stderr together; the run is killed past this
    tmp_mb: int = 256
    file_size_mb: int = 64
    gpus: int = 0


@dataclasses.dataclass(frozen=True)
class Mount:
    """A host folder (or file) mounted read-only at `target` inside the sandbox."""

    host: Path
    target: str


@dataclasses.dataclass(frozen=True)
class SandboxJob:
    """One command to run in a fresh sandbox."""

    argv: tuple[str, ...]
    mounts: tuple[Mount, ...]
    limits: Limits
    labels: dict[str, str] = dataclasses.field(default_factory=dict)  # e.g. run id, for cleanup
    # Written to the job's stdin, then closed: the runner reads the per-evaluation result nonce here,
    # since argv and the environment are readable by the candidate through /proc.
    stdin: bytes = b""
    # Extra environment for the job (e.g. the LLM gateway's socket path and token): never host
    # variables or keys. Values naming a mount target are rewritten by backends without mounts.
    env: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Attachment:
    """What a host-side service (the LLM gateway) adds to one job: a mount and environment variables.

    `usage` is filled by the service when the job is over (e.g. agent calls, tokens, cost).
    """

    mount: Mount
    env: dict[str, str]
    usage: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class SandboxResult:
    """What a sandboxed run did: exit status, captured output, and why it was stopped, if it was."""

    exit_code: int | None
    stdout: bytes
    stderr: bytes
    wall_s: float
    timed_out: bool = False
    output_exceeded: bool = False
    memory_exceeded: bool = False
    error: str | None = None  # the backend itself failed (engine down, image missing, ...)

    @property
    def killed_reason(self) -> str | None:
        """The limit that stopped the run, if any."""
        if self.timed_out:
            return "timeout"
        if self.output_exceeded:
            return "output_limit"
        if self.memory_exceeded:
            return "memory_limit"
        return None


class SandboxUnavailable(RuntimeError):
    """This backend cannot run on this machine; the message says why and how to fix it."""


class Sandbox(Protocol):
    """A backend that runs jobs in isolation. Implementations: process, bwrap, docker."""

    name: str
    isolates_network: bool  # False only for the resource-only process backend

    async def run(self, job: SandboxJob) -> SandboxResult:
        """Run the job to completion or until a limit stops it; never raises for the job's own failures."""
        ...

    def close(self) -> None:
        """Release backend resources (and anything left running)."""
        ...
