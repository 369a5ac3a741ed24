"""Shared helpers for the sandbox tests: a tiny task in a temporary folder, run through the real runner."""

from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path

from discovery.sandbox.base import (
    CANDIDATE_MOUNT,
    PYTHON,
    RUNNER_MOUNT,
    TASK_MOUNT,
    Limits,
    Mount,
    SandboxJob,
    SandboxResult,
)

REPO = Path(__file__).resolve().parent.parent
RUNNER_DIR = REPO / "sandboxes"
RESULT_MARK = "@@discovery-result@@"

# The worst case: the evaluator runs the candidate in its own process and trusts what it returns.
EXEC_EVALUATOR = textwrap.dedent(
    """
    def evaluate(candidate_path, split="train", seed=0):
        namespace = {"__name__": "candidate"}
        with open(candidate_path) as fh:
            exec(compile(fh.read(), candidate_path, "exec"), namespace)
        result = namespace["solve"]() if "solve" in namespace else 1.0
        return {"score": float(result)}
    """
)


@dataclasses.dataclass
class TinyTask:
    """A task folder and a candidate folder on the host, plus the job that evaluates them."""

    task_dir: Path
    candidate_dir: Path

    @property
    def candidate(self) -> Path:
        """The candidate file on the host."""
        return self.candidate_dir / "program.py"

    def job(self, limits: Limits | None = None, labels: dict[str, str] | None = None) -> SandboxJob:
        """The runner command for this task, with the three standard read-only mounts."""
        return SandboxJob(
            argv=(
                PYTHON,
                "-I",
                "-B",
                f"{RUNNER_MOUNT}/runner.py",
                "--task",
                TASK_MOUNT,
                "--candidate",
                f"{CANDIDATE_MOUNT}/program.py",
                "--split",
                "train",
                "--seed",
                "0",
            ),
            mounts=(
                Mount(RUNNER_DIR, RUNNER_MOUNT),
                Mount(self.task_dir, TASK_MOUNT),
                Mount(self.candidate_dir, CANDIDATE_MOUNT),
            ),
            limits=limits or Limits(timeout_s=20, memory_mb=512),
            labels=labels or {},
        )


def make_task(root: Path, candidate: str, evaluator: str = EXEC_EVALUATOR) -> TinyTask:
    """Write task/evaluate.py and cand/program.py under root; readable by uid 65534."""
    task_dir = root / "task"
    cand_dir = root / "cand"
    task_dir.mkdir(parents=True)
    cand_dir.mkdir(parents=True)
    (task_dir / "evaluate.py").write_text(evaluator)
    (cand_dir / "program.py").write_text(textwrap.dedent(candidate))
    # The sandboxes run as nobody: the mounted folders and files must be readable by others.
    for p in (task_dir, cand_dir, task_dir / "evaluate.py", cand_dir / "program.py"):
        p.chmod(p.stat().st_mode | 0o755)
    return TinyTask(task_dir, cand_dir)


def parse_result(result: SandboxResult) -> dict | None:
    """The runner's JSON result line, or None when there is none."""
    for line in result.stdout.decode(errors="replace").splitlines():
        if line.startswith(RESULT_MARK + " "):
            payload = json.loads(line[len(RESULT_MARK) + 1 :])
            payload.pop("nonce", None)  # these jobs send none; discovery.evaluation checks it
            return payload
    return None


BACKEND_SKIP = "sandbox backend unavailable: "


def skip_backend(why: object):
    """Skip because a sandbox backend is missing; under CI=true the session then fails (conftest)."""
    import pytest

    pytest.skip(BACKEND_SKIP + str(why))


def docker_or_skip():
    """A Docker SDK client that answers, or a pytest skip saying why there is none."""

    from discovery.sandbox.base import SandboxUnavailable
    from discovery.sandbox.docker_client import connect

    try:
        return connect()
    except SandboxUnavailable as exc:
        skip_backend(exc)


def skeleton_image():
    """Generator for a fixture: build a uniquely named skeleton image offline, yield its name, remove it."""
    import uuid

    from discovery.sandbox.images import build_skeleton

    client = docker_or_skip()
    name = "discovery-test-skeleton:" + uuid.uuid4().hex[:10]
    build_skeleton(name, client)
    try:
        yield name
    finally:
        try:
            client.images.remove(name, force=True)
        except Exception:  # noqa: BLE001 - best effort: a leftover test image is harmless
            pass
