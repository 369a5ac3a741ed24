"""A guarded candidate session for tasks that call into a candidate many times (training loops)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import torch

from discovery_harness.errors import CandidateError
from discovery_harness.guard import Guard, deny_reads
from discovery_harness.worker import CandidateThread, import_candidate


def _clear(held: list) -> None:
    """Worker job: drop the references."""
    held.clear()


def _start_cuda() -> None:
    """Worker job: start CUDA before the Guard arms (torch's lazy start loads NVML through ctypes)."""
    if torch.cuda.is_available():
        torch.cuda.init()
        torch.cuda.device_count()
        torch.zeros(1, device="cuda").add_(1)
        torch.cuda.synchronize()


class CandidateSession:
    """Worker thread + armed Guard: every call into candidate code goes through run()."""

    def __init__(
        self,
        evaluator_file: str,
        private_dirs: tuple[str, ...] = (),
        threads: int = 1,
        compilers: bool = True,
    ) -> None:
        torch.set_num_threads(threads)
        self._worker = CandidateThread(lambda: torch.set_num_threads(threads))
        self._worker.run(_start_cuda)
        # Kernel-enforced, on the candidate thread only, before the Guard arms (it uses ctypes).
        refused = self._worker.run(deny_reads, tuple(private_dirs)) if private_dirs else ""
        if refused:
            logging.getLogger(__name__).warning("private data guarded by the audit hook only: %s", refused)
        harness = [m for name, m in sys.modules.items() if name.split(".")[0] == "discovery_harness"]
        # The task's own module too: its reference's __code__ and its names must not change.
        harness += [m for m in sys.modules.values() if getattr(m, "__file__", None) == evaluator_file]
        task_dir = os.path.dirname(os.path.abspath(evaluator_file))
        self._guard = Guard(
            harness, task_dir, private_dirs=private_dirs, extra_trusted=(evaluator_file,), compilers=compilers
        )

    def __enter__(self) -> CandidateSession:
        self._guard.arm()
        return self

    def __exit__(self, *exc: object) -> None:
        self._guard.disarm()
        self._worker.close()

    def run(self, where: str, job: Callable[..., Any], *args: Any) -> Any:
        """Run job(*args) on the candidate thread, then check the Guard (a refusal outranks the error it caused)."""
        try:
            value = self._worker.run(job, *args)
        except CandidateError:
            self._guard.check(where)
            raise
        self._guard.check(where)
        return value

    def import_names(self, candidate_path: str, names: tuple[str, ...]) -> tuple[Any, ...]:
        """Import the candidate on the worker and return the named attributes."""
        return self.run("import", import_candidate, candidate_path, names)

    def release(self, held: list) -> None:
        """Empty a list of candidate objects on the worker, so their finalisers never run on this thread."""
        self._worker.run(_clear, held)

    def finish(self) -> None:
        """Final checks: no forged reply pending, nothing patched."""
        self._worker.flush()
        self._guard.check("the end of the evaluation")
