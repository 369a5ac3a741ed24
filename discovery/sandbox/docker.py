"""The Docker backend: one fresh container per job, no network, read-only root, killed by the host.

The Docker SDK is blocking, so its calls run in this backend's own thread pool; the time limit is
still enforced by the host killing the container, never by a thread timeout. The same code talks
to Podman when DOCKER_HOST points at `podman system service`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

from discovery.sandbox.base import PYTHON, Limits, SandboxJob, SandboxResult, SandboxUnavailable
from discovery.sandbox.docker_client import connect
from discovery.sandbox.hostpaths import sandboxes_dir
from discovery.sandbox.images import LABEL_BINDS, LABEL_PYTHON, image_info, skeleton_is_current
from discovery.sandbox.spawn import HOST_GONE_GRACE_S, pid_alive, sandbox_env

log = logging.getLogger(__name__)

RUN_LABEL = "discovery.run"
# "<hostname>:<boot id>:<pid namespace>:<pid>" of the discovery process that made the container, so
# a later start can remove the containers of a host process that was killed (-9) before it could
# remove them itself. Boot id and pid namespace keep a start from removing a live process's
# containers when a pid is only meaningful elsewhere (another machine or container on one engine).
HOST_LABEL = "discovery.host"
SANDBOX_HOME = "/tmp"
INIT_MOUNT = "/discovery-init.py"
_NOFILE = 1024
T = TypeVar("T")


def visible_gpus() -> list[str]:
    """GPU ids this host shows (CUDA_VISIBLE_DEVICES if set, else nvidia-smi), or none."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


class DockerSandbox:
    """Runs each job in a new container and removes it afterwards, whatever happened."""

    name = "docker"
    isolates_network = True

    def __init__(self, image: str, run_id: str = "", client: Any | None = None) -> None:
        self.client = client or connect()
        self.api = self.client.api
        labels = image_info(self.client, image)
        if labels is None:
            raise SandboxUnavailable(
                f"image {image!r} does not exist; build it with `discovery sandbox build --image {image}`"
            )
        if not skeleton_is_current(labels):
            raise SandboxUnavailable(
                f"image {image!r} binds a Python install that is not this one; rebuild it with "
                f"`discovery sandbox build --kind skeleton --image {image}`"
            )
        self.image = image
        self.run_id = run_id
        self.python = labels.get(LABEL_PYTHON, "python3")
        self.binds: list[tuple[str, str]] = [tuple(b) for b in json.loads(labels.get(LABEL_BINDS, "[]"))]
        self.host = f"{host_identity()}:{os.getpid()}"
        with contextlib.suppress(Exception):  # best effort: a failure here must not block a run
            removed = remove_orphans(self.client)
            if removed:
                log.info("removed %d container(s) left by a killed discovery process", removed)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=32, thread_name_prefix="docker-sandbox"
        )
        self._gpus: list[str] | None = None
        self._gpu_busy: dict[str, int] = {}
        self._gpu_turn = 0

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one blocking SDK call in the backend's pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def _take_gpus(self, count: int) -> list[str]:
        """Lease `count` GPUs: the least busy first, round-robin among equals (one per evaluation)."""
        if self._gpus is None:
            self._gpus = visible_gpus()
        if len(self._gpus) < count:
            return []
        n = len(self._gpus)
        order = sorted(
            range(n), key=lambda i: (self._gpu_busy.get(self._gpus[i], 0), (i - self._gpu_turn) % n)
        )
        chosen = [self._gpus[i] for i in order[:count]]
        self._gpu_turn = (self._gpu_turn + 1) % n
        for g in chosen:
            self._gpu_busy[g] = self._gpu_busy.get(g, 0) + 1
        return chosen

    def _release_gpus(self, gpus: list[str]) -> None:
        """Return leased GPUs."""
        for g in gpus:
            self._gpu_busy[g] -= 1

    def _create_args(self, job: SandboxJob, gpus: list[str]) -> dict[str, Any]:
        """Arguments of create_container for one job: every limit and mount of the threat model."""
        import docker

        limits: Limits = job.limits
        mounts = [docker.types.Mount(t, h, type="bind", read_only=True) for h, t in self.binds]
        mounts += [docker.types.Mount(m.target, str(m.host), type="bind", read_only=True) for m in job.mounts]
        mounts.append(
            docker.types.Mount(INIT_MOUNT, str(sandboxes_dir() / "init.py"), type="bind", read_only=True)
        )
        mb = 1024 * 1024
        host_config = self.api.create_host_config(
            network_mode="none",
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={limits.tmp_mb}m,mode=1777"},
            mem_limit=limits.memory_mb * mb,
            memswap_limit=limits.memory_mb * mb,  # no swap on top: a bomb is stopped, not slowed
            nano_cpus=int(limits.cpus * 1e9),
            pids_limit=limits.pids,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            mounts=mounts,
            ulimits=[
                docker.types.Ulimit(
                    name="fsize", soft=limits.file_size_mb * mb, hard=limits.file_size_mb * mb
                ),
                docker.types.Ulimit(name="core", soft=0, hard=0),
                docker.types.Ulimit(name="nofile", soft=_NOFILE, hard=_NOFILE),
            ],
            device_requests=(
                [docker.types.DeviceRequest(device_ids=gpus, capabilities=[["gpu"]])] if gpus else None
            ),
        )
        env = sandbox_env(limits, SANDBOX_HOME)
        env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
        env.update(job.env)
        if gpus:
            env["NVIDIA_VISIBLE_DEVICES"] = ",".join(gpus)
        argv = list(job.argv)
        if argv and argv[0] == PYTHON:
            argv[0] = self.python
        # PID 1 (sandboxes/init.py) keeps the result stream private; its backstop fires only if
        # the host, which kills the container at timeout_s, is gone.
        argv = [self.python, "-I", "-S", INIT_MOUNT, f"{limits.timeout_s + HOST_GONE_GRACE_S:g}", *argv]
        return {
            "image": self.image,
            "command": argv,
            "user": "65534:65534",
            "working_dir": SANDBOX_HOME,
            "environment": env,
            "labels": {RUN_LABEL: self.run_id, HOST_LABEL: self.host, **job.labels},
            "host_config": host_config,
            "network_disabled": True,
            "stdin_open": bool(job.stdin),
        }

    async def run(self, job: SandboxJob) -> SandboxResult:
        """Create, start, stream and remove one container; the host enforces every limit it can."""
        start = time.monotonic()
        gpus = self._take_gpus(job.limits.gpus) if job.limits.gpus > 0 else []
        if job.limits.gpus > 0 and not gpus:
            return SandboxResult(
                None, b"", b"", 0.0, error=f"the job needs {job.limits.gpus} GPU(s); none visible"
            )
        container: str | None = None
        try:
            try:
                created = await self._call(self.api.create_container, **self._create_args(job, gpus))
            except Exception as exc:  # noqa: BLE001 - engine errors are the backend's, reported not raised
                return SandboxResult(
                    None, b"", b"", time.monotonic() - start, error=f"docker create failed: {exc}"
                )
            container = created["Id"]
            return await self._run_created(container, job.limits, start, job.stdin)
        except BaseException:
            if container is not None:
                # Cancelled or crashed: remove synchronously, so nothing is left even if the loop stops now.
                self._remove(container)
                container = None
            raise
        finally:
            if container is not None:
                await self._call(self._remove, container)
            if gpus:
                self._release_gpus(gpus)

    async def _run_created(
        self, container: str, limits: Limits, start: float, stdin: bytes = b""
    ) -> SandboxResult:
        """Attach, start and watch a created container until it exits or a limit is hit."""
        loop = asyncio.get_running_loop()
        out, err = bytearray(), bytearray()
        overflow = loop.create_future()
        budget = limits.output_bytes

        def pump(stream: Any) -> None:
            """Read the attach stream (a thread) to EOF, keeping what fits in the output budget."""
            used = 0
            flagged = False
            for chunk_out, chunk_err in stream:
                # Past the budget keep draining, discarding: an unread stream can stall the engine's kill.
                for sink, chunk in ((out, chunk_out), (err, chunk_err)):
                    if not chunk or flagged:
                        continue
                    room = budget - used
                    if len(chunk) > room:
                        sink += chunk[:room]
                        flagged = True
                        loop.call_soon_threadsafe(lambda: overflow.done() or overflow.set_result(None))
                        continue
                    sink += chunk
                    used += len(chunk)

        try:
            stream = await self._call(
                self.api.attach, container, stdout=True, stderr=True, stream=True, logs=True, demux=True
            )
            feed = (
                await self._call(self.api.attach_socket, container, {"stdin": 1, "stream": 1})
                if stdin
                else None
            )
            await self._call(self.api.start, container)
            if feed is not None:
                await self._call(_send_and_close, feed, stdin)
        except Exception as exc:  # noqa: BLE001 - engine errors are the backend's, reported not raised
            return SandboxResult(
                None, b"", b"", time.monotonic() - start, error=f"docker start failed: {exc}"
            )
        reader = loop.run_in_executor(self._pool, pump, stream)
        timed_out = False
        done, _ = await asyncio.wait(
            {reader, overflow}, timeout=limits.timeout_s, return_when="FIRST_COMPLETED"
        )
        if not done:
            timed_out = True
        if not done or overflow in done:
            await self._call(self._kill, container)
        # After exit or kill the stream ends at once; bound the wait anyway.
        await asyncio.wait({reader}, timeout=10)
        with contextlib.suppress(Exception):
            stream.close()
        overflow.cancel()
        state = (await self._call(self.api.inspect_container, container))["State"]
        code = state.get("ExitCode")
        oom = bool(state.get("OOMKilled"))
        if not oom and not timed_out:
            oom = b"MemoryError" in bytes(err[-4000:]) or b'"MemoryError' in bytes(out)
        exceeded = overflow.done() and not overflow.cancelled()
        return SandboxResult(
            exit_code=code,
            stdout=bytes(out),
            stderr=bytes(err),
            wall_s=time.monotonic() - start,
            timed_out=timed_out,
            output_exceeded=exceeded and not timed_out,
            memory_exceeded=oom and not timed_out and not exceeded,
        )

    def _kill(self, container: str) -> None:
        """SIGKILL the container (every process in it); already stopped is fine."""
        with contextlib.suppress(Exception):
            self.api.kill(container)

    def _remove(self, container: str) -> None:
        """Force-remove a container, running or not; log (never raise) if the engine refuses."""
        import docker

        try:
            self.api.remove_container(container, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except Exception as exc:  # noqa: BLE001 - cleanup must not mask the job's result
            log.warning("could not remove container %s: %s", container[:12], exc)

    def cleanup_stale(self, run_label: str | None = None) -> int:
        """Remove containers discovery left behind (all runs, or one run's); returns how many."""
        return cleanup_stale(self.client, run_label)

    def close(self) -> None:
        """Remove this run's leftovers and stop the thread pool."""
        if self.run_id:
            try:
                cleanup_stale(self.client, self.run_id)
            except Exception as exc:  # noqa: BLE001 - an engine gone away must not hide the run's own outcome
                log.warning("could not clean up containers of run %s: %s", self.run_id, exc)
        self._pool.shutdown(wait=False, cancel_futures=True)


def _send_and_close(feed: Any, data: bytes) -> None:
    """Write a job's stdin through an attach socket, then close it so the container sees EOF."""
    raw = getattr(feed, "_sock", feed)
    try:
        raw.sendall(data)
        raw.shutdown(socket.SHUT_WR)
    finally:
        feed.close()


def host_identity() -> str:
    """hostname:boot id:pid-namespace inode: where a pid of this process means this process."""
    try:
        boot = open("/proc/sys/kernel/random/boot_id").read().strip()
        pidns = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        boot, pidns = "?", "?"
    return f"{socket.gethostname()}:{boot}:{pidns}"


def remove_orphans(client: Any) -> int:
    """Force-remove containers whose discovery process, in this very pid namespace, is gone; returns how many."""
    here = host_identity()
    if "?" in here.split(":")[1:]:
        return 0  # cannot tell whose pid is whose: leave everything
    removed = 0
    for c in client.api.containers(all=True, filters={"label": HOST_LABEL}):
        owner, _, pid = c.get("Labels", {}).get(HOST_LABEL, "").rpartition(":")
        if owner != here or not pid.isdigit() or pid_alive(int(pid)):
            continue
        with contextlib.suppress(Exception):
            client.api.remove_container(c["Id"], force=True, v=True)
            removed += 1
    return removed


def cleanup_stale(client: Any | None = None, run_label: str | None = None) -> int:
    """Force-remove containers labelled discovery.run (=run_label when given); returns how many."""
    client = client or connect()
    label = RUN_LABEL if run_label is None else f"{RUN_LABEL}={run_label}"
    removed = 0
    for c in client.api.containers(all=True, filters={"label": label}):
        with contextlib.suppress(Exception):
            client.api.remove_container(c["Id"], force=True, v=True)
            removed += 1
    return removed
