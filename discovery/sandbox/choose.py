"""Picking a sandbox backend (`--sandbox auto|docker|bwrap|process`) and checking which ones work here."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import time
from typing import TYPE_CHECKING, Literal

from discovery.errors import UserError
from discovery.sandbox.base import PYTHON, Limits, Sandbox, SandboxJob, SandboxUnavailable

if TYPE_CHECKING:
    from rich.table import Table

log = logging.getLogger(__name__)

BackendName = Literal["auto", "docker", "bwrap", "process"]
DEFAULT_IMAGE = "discovery-sandbox:py"
HOW_TO_GET_ONE = (
    "no isolating sandbox works here: install bubblewrap (`apt-get install -y bubblewrap`) or start a "
    "Docker engine (`dockerd --iptables=false --ip-masq=false --bridge=none &`, then "
    "`discovery sandbox build`); `--sandbox process` runs candidates unisolated (resource limits only)"
)
# What the check job prints: uid, and how many network interfaces it can see.
_PROBE = "import os, socket; print(os.getuid(), len(socket.if_nameindex()))"


def docker_sandbox(image: str, run_id: str, build_missing: bool = True) -> Sandbox:
    """A Docker backend; builds a missing (or stale) skeleton image offline first when allowed."""
    from discovery.sandbox.docker import DockerSandbox
    from discovery.sandbox.docker_client import connect
    from discovery.sandbox.images import build_skeleton, image_info, skeleton_is_current

    client = connect()
    labels = image_info(client, image)
    stale = labels is not None and not skeleton_is_current(labels)
    if build_missing and (labels is None or stale):
        log.warning(
            "image %s %s: building a skeleton image offline", image, "is stale" if stale else "is missing"
        )
        build_skeleton(image, client)
    return DockerSandbox(image, run_id=run_id, client=client)


def bwrap_sandbox() -> Sandbox:
    """A bubblewrap backend, after checking that bwrap can make namespaces on this kernel."""
    from discovery.sandbox.bwrap import BwrapSandbox

    sandbox = BwrapSandbox()
    probe = subprocess.run(
        [shutil.which("bwrap") or "bwrap", "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "true"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        raise SandboxUnavailable(
            f"bubblewrap cannot create namespaces here ({probe.stderr.strip()[:200]}); enable unprivileged "
            "user namespaces (sysctl kernel.unprivileged_userns_clone=1) or run as root"
        )
    return sandbox


def make_sandbox(name: BackendName, image: str = DEFAULT_IMAGE, run_id: str = "") -> Sandbox:
    """The backend the user asked for; auto = Docker when an engine answers, else bubblewrap, never process."""
    from discovery.sandbox.process import ProcessSandbox

    if name == "process":
        return ProcessSandbox()
    try:
        if name == "docker":
            return docker_sandbox(image, run_id)
        if name == "bwrap":
            return bwrap_sandbox()
    except SandboxUnavailable as exc:
        raise UserError(f"the {name} sandbox is unavailable: {exc}") from exc
    if name != "auto":
        raise UserError(f"unknown sandbox {name!r}; choose auto, docker, bwrap or process")
    reasons = []
    for label, make in (("docker", lambda: docker_sandbox(image, run_id)), ("bwrap", bwrap_sandbox)):
        try:
            return make()
        except (SandboxUnavailable, UserError) as exc:
            reasons.append(f"{label}: {exc}")
            log.info("sandbox %s unavailable: %s", label, exc)
    raise UserError(HOW_TO_GET_ONE + " [" + "; ".join(reasons) + "]")


async def _probe(sandbox: Sandbox) -> tuple[bool, str]:
    """Run the probe job and describe what the sandbox looked like from inside."""
    job = SandboxJob(argv=(PYTHON, "-I", "-c", _PROBE), mounts=(), limits=Limits(timeout_s=60, memory_mb=512))
    start = time.monotonic()
    result = await sandbox.run(job)
    took = time.monotonic() - start
    if result.error or result.exit_code != 0:
        tail = (result.error or result.stderr.decode(errors="replace").strip())[-200:]
        return False, f"trivial job failed (exit {result.exit_code}): {tail}"
    uid, ifaces = result.stdout.decode().split()
    network = "no network" if ifaces == "1" else f"{ifaces} network interfaces visible"
    return True, f"ok in {took * 1000:.0f} ms; uid {uid}; {network}"


def check_backends(image: str = DEFAULT_IMAGE) -> list[tuple[str, bool, str]]:
    """(backend, works, detail) for docker, bwrap and process, each tried with a real trivial job."""
    from discovery.sandbox.process import ProcessSandbox

    rows: list[tuple[str, bool, str]] = []
    makers = (
        ("docker", lambda: docker_sandbox(image, "sandbox-check", build_missing=False)),
        ("bwrap", bwrap_sandbox),
        ("process", ProcessSandbox),
    )
    for label, make in makers:
        try:
            sandbox = make()
        except (SandboxUnavailable, UserError) as exc:
            rows.append((label, False, str(exc)))
            continue
        try:
            works, detail = asyncio.run(_probe(sandbox))
        finally:
            sandbox.close()
        if label == "process" and works:
            detail += " (resource limits only: no network or file-system isolation)"
        rows.append((label, works, detail))
    return rows


def auto_choice(rows: list[tuple[str, bool, str]]) -> str | None:
    """The backend `auto` would pick given check results: the first isolating one that works."""
    for label, works, _detail in rows:
        if works and label in ("docker", "bwrap"):
            return label
    return None


def render_check_table(image: str = DEFAULT_IMAGE, rows: list[tuple[str, bool, str]] | None = None) -> Table:
    """`discovery sandbox check` as a rich Table: each backend, whether it works, and why."""
    from rich.table import Table

    rows = check_backends(image) if rows is None else rows
    choice = auto_choice(rows)
    table = Table(title=f"sandbox backends (auto picks: {choice or 'none - see below'})")
    table.add_column("backend")
    table.add_column("works")
    table.add_column("detail", overflow="fold")
    for label, works, detail in rows:
        table.add_row(label, "[green]yes[/green]" if works else "[red]no[/red]", detail)
    return table
