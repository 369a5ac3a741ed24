"""The Ray executor: each evaluation is a Ray task placed by the task's resources, run in that node's sandbox.

Ray places and tracks work; it isolates nothing. On the node a task lands on, the candidate runs in
the sandbox backend chosen there (discovery.sandbox.choose), exactly as a local run would. The
driver keeps the LLMs, the archive and the promotion gate; it ships the task bundle once per run,
enforces each evaluation's deadline, and re-queues an evaluation whose worker or node died.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from typing import Any

from discovery import evaluation
from discovery.domain import Status
from discovery.errors import UserError
from discovery.evaluation import AgentSessions, Outcome, SandboxError
from discovery.evaluation.executors import bundle
from discovery.sandbox.hostpaths import sandboxes_dir
from discovery.task import Task, load_task

log = logging.getLogger(__name__)

# A lost evaluation (worker or node died) is submitted again at most this many times.
MAX_REQUEUES = 2
# Beyond the sandbox's own limit, time for sandbox start-up and Ray's hand-offs before the driver kills.
DEADLINE_GRACE_S = 60.0
# How often a driver waiting for a free slot looks at the cluster again (nodes join and leave).
CAPACITY_POLL_S = 0.5
INSTALL_HINT = "the Ray executor needs Ray: pip install 'discovery-lab[ray]'"


def import_ray() -> Any:
    """The ray module, or a UserError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise UserError(INSTALL_HINT) from exc
    return ray


@dataclasses.dataclass(frozen=True)
class Request:
    """One evaluation as the driver asks for it; seed None means the task's repeats (evaluate)."""

    code: str
    split: str | None
    labels: dict[str, str]
    seed: int | None = None
    stage: str | None = None


def node_name(ray: Any) -> str:
    """This node as `archive show` records it: its IP and the start of Ray's node id."""
    return f"{ray.util.get_node_ip_address()}/{ray.get_runtime_context().get_node_id()[:8]}"


def evaluate_on_node(shipped: list, name: str, backend: str, run_id: str, request: Request) -> Outcome:
    """The Ray task body: unpack the bundle once per node, pick this node's sandbox, evaluate, report."""
    import ray

    from discovery.sandbox.choose import make_sandbox

    # The bundle travels as a reference inside a list, so Ray fetches it only on a node that lacks it.
    root = bundle.unpacked(name) or bundle.unpack(name, ray.get(shipped[0]))
    task = load_task(root / bundle.TASK_DIR)
    runner = root / bundle.RUNNER_DIR
    # Workers on one node run evaluations side by side, and a Docker backend's close() removes its
    # run's containers: each evaluation is its own "run" there, so closing one spares the others.
    own_id = f"{run_id}.{secrets.token_hex(4)}"
    labels = {**request.labels, "discovery.run": own_id}
    sandbox = make_sandbox(backend, image=task.spec.image, run_id=own_id)
    try:
        if request.seed is None:
            run = evaluation.evaluate(sandbox, task, request.code, request.split, labels, runner)
        else:
            run = evaluation.evaluate_once(
                sandbox, task, request.code, request.split, request.seed, labels, request.stage, runner
            )
        outcome = asyncio.run(run)
    finally:
        sandbox.close()
    return dataclasses.replace(outcome, sandbox=sandbox.name, node=node_name(ray))


def slots(nodes: list[dict[str, Any]], need: dict[str, float]) -> int:
    """How many evaluations fit at once on the alive nodes, each node counted whole."""
    total = 0
    for node in nodes:
        if not node.get("Alive"):
            continue
        have = node.get("Resources", {})
        total += min(int(have.get(key, 0.0) // amount + 1e-9) for key, amount in need.items())
    return total


class RayExecutor:
    """Evaluations as Ray tasks on a cluster; the driver enforces deadlines and re-queues lost work."""

    name = "ray"

    def __init__(
        self,
        address: str,
        backend: str,
        task: Task,
        run_id: str,
        grace_s: float = DEADLINE_GRACE_S,
        max_requeues: int = MAX_REQUEUES,
    ) -> None:
        self.ray = import_ray()
        self.backend, self.run_id, self.grace_s, self.max_requeues = backend, run_id, grace_s, max_requeues
        self.owns_connection = not self.ray.is_initialized()
        if self.owns_connection:
            try:
                self.ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UserError(
                    f"no Ray cluster at {address!r} ({str(exc).splitlines()[0][:200]}): start one with "
                    "`ray start --head` or pass --ray-address HOST:PORT"
                ) from exc
        r = task.spec.resources
        self.need = {"CPU": r.cpus, "memory": float(r.memory_mb * 2**20)} | (
            {"GPU": r.gpus} if r.gpus else {}
        )
        if slots(self.ray.nodes(), self.need) == 0:
            raise UserError(
                f"no node of the Ray cluster offers what one evaluation needs ({self._needs_text()}); "
                "add such a node or lower [resources] in task.toml"
            )
        data = bundle.pack(task.path, sandboxes_dir())
        self.bundle_name = bundle.digest(data)
        self.shipped = [self.ray.put(data)]  # once per run; nodes fetch it on their first evaluation
        self.remote = self.ray.remote(evaluate_on_node).options(
            num_cpus=r.cpus, num_gpus=r.gpus, memory=r.memory_mb * 2**20, max_retries=0
        )
        self.timeout_s = r.timeout_s
        self.in_flight = 0

    def _needs_text(self) -> str:
        return ", ".join(f"{k} {v:g}" for k, v in self.need.items())

    async def _free_slot(self) -> None:
        """Wait until the cluster, as it is now, has room for one more evaluation of ours."""
        while self.in_flight >= slots(self.ray.nodes(), self.need):
            await asyncio.sleep(CAPACITY_POLL_S)

    async def _submit(self, request: Request, runs: int) -> Outcome:
        """Run one request to an outcome: deadline, re-queue on lost workers, infrastructure failure last."""
        deadline = runs * self.timeout_s + self.grace_s
        losses: list[str] = []
        while True:
            await self._free_slot()
            self.in_flight += 1
            started = time.monotonic()
            ref = self.remote.remote(self.shipped, self.bundle_name, self.backend, self.run_id, request)
            try:
                return await asyncio.wait_for(asyncio.wrap_future(ref.future()), deadline)
            except TimeoutError:
                # The sandbox kills at its own limit; this is the backstop when the node does not answer.
                self.ray.cancel(ref, force=True)
                why = (
                    f"killed by the driver at the {deadline:.0f} s deadline (the node did not answer in time)"
                )
                return Outcome(Status.TIMEOUT, None, {}, None, why, "", time.monotonic() - started)
            except asyncio.CancelledError:
                self.ray.cancel(ref, force=True)  # the run is stopping: leave nothing running on the cluster
                raise
            except self.ray.exceptions.RayTaskError as exc:
                # Our task body raised: the node's sandbox backend failed, not the candidate.
                raise SandboxError(f"on a Ray node: {exc.cause}") from exc
            except self.ray.exceptions.RayError as exc:
                losses.append(f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
                if len(losses) > self.max_requeues:
                    return self._infra_failure(losses, time.monotonic() - started)
                log.warning(
                    "evaluation lost (%s); re-queued (%d of %d)", losses[-1], len(losses), self.max_requeues
                )
            finally:
                self.in_flight -= 1

    def _infra_failure(self, losses: list[str], wall_s: float) -> Outcome:
        why = (
            f"infrastructure failure (not the candidate's): the cluster lost this evaluation {len(losses)} "
            f"times; last: {losses[-1]}"
        )
        return Outcome(Status.INFRA_FAILED, None, {}, None, why, "", wall_s)

    async def evaluate(
        self,
        task: Task,
        code: str,
        split: str | None = None,
        labels: dict[str, str] | None = None,
        agent: AgentSessions | None = None,
    ) -> Outcome:
        """Evaluate with the task's repeats, as one Ray task."""
        _no_agents(agent)
        request = Request(code, split, labels or {})
        return await self._submit(request, task.spec.evaluation.repeats)

    async def evaluate_once(
        self,
        task: Task,
        code: str,
        split: str,
        seed: int,
        labels: dict[str, str] | None = None,
        stage: str | None = None,
        agent: AgentSessions | None = None,
    ) -> Outcome:
        """Evaluate once on a split with a seed, as one Ray task."""
        _no_agents(agent)
        return await self._submit(Request(code, split, labels or {}, seed, stage), 1)

    def close(self) -> None:
        """Disconnect from the cluster if this executor connected (the cluster itself keeps running)."""
        if self.owns_connection and self.ray.is_initialized():
            self.ray.shutdown()


def _no_agents(agent: AgentSessions | None) -> None:
    """Agent tasks call the run's gateway on a Unix socket of this machine: no node can reach it."""
    if agent is not None:
        raise SandboxError("agent tasks run on the local executor only (the LLM gateway is a local socket)")
