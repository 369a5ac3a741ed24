"""The evaluation driver for kernel tasks: correctness on fresh awkward inputs, then interleaved timing.

The reference is trusted PyTorch eager code owned by the task; the candidate exports a drop-in
function. Every call into the candidate (import included) runs on the worker thread; the expected
outputs live only on the main thread. Each check and each timed trial uses fresh random inputs
(os.urandom seeds drawn just before use, so nothing can be precomputed), the candidate gets clones,
and its outputs from every timed call are checked against the reference of that same trial.
"""

from __future__ import annotations

import dataclasses
import os
import random
import sys
import threading
from collections.abc import Callable

import torch

from discovery_harness.errors import CandidateError
from discovery_harness.guard import Guard, native_thread_count
from discovery_harness.timing import (
    Clock,
    TimingResult,
    UnreportedTime,
    check_overheads,
    check_wall,
    monotonic_ns,
)
from discovery_harness.torch_check import (
    check_meta,
    check_plain_tensor,
    check_reference,
    check_unchanged,
    clones,
    compare,
    derived_tolerance,
    poison_free_memory,
)
from discovery_harness.worker import CandidateThread, import_candidate

_grad = torch.autograd.grad
_active_count = threading.active_count
_get_num_threads = torch.get_num_threads
_Tensor = torch.Tensor
_type = type
_urandom = os.urandom

# How much the outputs of two runs on one trial's inputs may differ, in units of the candidate's
# bound at the timing size (each is within it of float64; the strict float64 comparison is done in
# the correctness phase).
_TIMED_TOL_FACTOR = 4.0


@dataclasses.dataclass(frozen=True)
class Case:
    """One input configuration: a shape and a magnitude for the random inputs."""

    shape: tuple[int, ...]
    scale: float = 1.0

    def label(self) -> str:
        return f"shape {self.shape}" + (f" scale {self.scale:g}" if self.scale != 1.0 else "")


@dataclasses.dataclass(frozen=True)
class Sizes:
    """The cases for one device class (CPU for tests, GPU for real runs)."""

    checks: tuple[Case, ...]
    timing: Case
    dtype: torch.dtype = torch.float32
    trials: int = 24
    warmup: int = 3
    random_checks: int = 2


@dataclasses.dataclass(frozen=True)
class KernelTask:
    """What a kernel task declares; evaluate_kernel does the rest."""

    entry: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    # (case, generator, device, dtype) -> (inputs, grad_output or None)
    make_inputs: Callable[..., tuple[list[torch.Tensor], torch.Tensor | None]]
    reference: Callable[..., torch.Tensor]
    grad_indices: tuple[int, ...]
    cpu: Sizes
    gpu: Sizes
    plausible_speedup: float
    random_case: Callable[[random.Random, Sizes], Case]
    constants: tuple = ()
    cpu_threads: int = 1
    # torch.compile and Triton may compile under the Guard (toolchain.py); False refuses them.
    compilers: bool = True


def _fresh_seed() -> int:
    """A seed nobody can predict, drawn just before the inputs it makes."""
    return int.from_bytes(_urandom(8), "little") & ((1 << 62) - 1)


def _timed_job(
    fn, held: list, task: KernelTask, clock: Clock, threads: int, native_strict: bool = True
) -> int:
    """Worker job: time fn(*args) plus its backward pass; append the validated, detached outputs to held."""
    args, dy = held[0], held[1]
    if clock.device == "cpu" and _get_num_threads() != threads:
        raise CandidateError(f"torch thread count changed to {_get_num_threads()}; it is fixed at {threads}")
    python_before, native_before = _active_count(), native_thread_count()
    wanted = [args[i] for i in task.grad_indices]

    def call():
        y = fn(*args, *task.constants)
        if _type(y) is not _Tensor or not wanted:
            return (y,)
        if not y.requires_grad:
            raise CandidateError(
                f"output {task.output_names[0]!r} does not require grad: the backward pass is missing"
            )
        return (y, *_grad(y, wanted, dy, allow_unused=True))

    elapsed, outs = clock.time(call)
    # Native threads may appear on a first call (a JIT's or driver's own); after warm-up they may not.
    if _active_count() != python_before or (native_strict and native_thread_count() > native_before):
        raise CandidateError("thread started during a timed call: work must finish inside the call")
    if clock.device == "cpu" and _get_num_threads() != threads:
        raise CandidateError(f"torch thread count changed to {_get_num_threads()}; it is fixed at {threads}")
    check_plain_tensor(outs[0], task.output_names[0])
    for index, name in enumerate(task.output_names[1:], start=1):
        if index >= len(outs) or outs[index] is None:
            raise CandidateError(
                f"no gradient reached input {task.input_names[task.grad_indices[index - 1]]!r}"
            )
        check_plain_tensor(outs[index], name)
    held.append(tuple(out.detach() for out in outs))
    return elapsed


def _run_candidate(worker: CandidateThread, guard: Guard, where: str, *job) -> int:
    """Run a job that calls candidate code; a refusal it swallowed or turned into an error is reported as such."""
    try:
        return worker.run(*job)
    except CandidateError:
        guard.check(where)
        raise


def _clear(held: list) -> None:
    """Worker job: drop what the candidate touched, so any finaliser it attached runs on its own thread."""
    held.clear()


def _warm_up(device: str) -> None:
    """Worker job: start torch's lazy machinery (thread pools, CUDA context) before the baselines are taken."""
    x = torch.randn(64, 64, device=device, requires_grad=True)
    _grad((x @ x).sum(), [x])


def _reference(
    task: KernelTask, inputs: list[torch.Tensor], dy: torch.Tensor | None
) -> tuple[torch.Tensor, ...]:
    """The trusted reference outputs (and input gradients) on a private copy of the inputs."""
    args = clones(inputs, task.grad_indices)
    y = task.reference(*args, *task.constants)
    if not task.grad_indices:
        return (y.detach(),)
    grads = _grad(y, [args[i] for i in task.grad_indices], dy)
    return (y.detach(), *grads)


def full_precision_reductions() -> None:
    """Make cuBLAS reduce bf16/fp16 matmuls in float32 (torch allows reduced precision by default).

    With reduced-precision reductions the error depends on which GEMM kernel cuBLAS picks for a
    shape: on an H100, F.linear (addmm) at K=267 was 10-30x less accurate than x @ w.t() + b, so a
    reference's own error said nothing about a correct reformulation. A candidate may still turn
    them back on for its own calls; its outputs are then held to the same bound.
    """
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False


def _reference_bounds(
    task: KernelTask, inputs: list[torch.Tensor], dy: torch.Tensor | None, dtype: torch.dtype, where: str
) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...], list[float]]:
    """Reference outputs in the task dtype and in float64, and each output's bound for the candidate.

    The bound is derived from the reference's own error on these inputs (torch_check.derived_tolerance),
    so a task dtype whose eager rounding exceeds the fixed tolerance (bf16 on a GPU) still scores.
    """
    full_precision_reductions()  # the candidate may have switched them off for its own calls
    expected = _reference(task, inputs, dy)
    expected64 = _reference(task, [t.double() for t in inputs], dy.double() if dy is not None else None)
    bounds = [
        derived_tolerance(dtype, check_reference(want, want64, name, where))
        for want, want64, name in zip(expected, expected64, task.output_names, strict=False)
    ]
    return expected, expected64, bounds


def _timing_bounds(task: KernelTask, sizes: Sizes, device: str) -> list[float]:
    """Per-output bounds at the timing size, from one fresh draw (the worst element of millions is stable)."""
    gen = torch.Generator(device=device).manual_seed(_fresh_seed())
    inputs, dy = task.make_inputs(sizes.timing, gen, device, sizes.dtype)
    bounds = _reference_bounds(task, inputs, dy, sizes.dtype, f"timing size {sizes.timing.label()}")[2]
    del inputs, dy
    if device == "cuda":
        torch.cuda.empty_cache()
    return bounds


def _check_case(
    worker: CandidateThread,
    guard: Guard,
    fn,
    task: KernelTask,
    case: Case,
    device: str,
    dtype: torch.dtype,
    clock: Clock,
    where: str,
) -> float:
    """One correctness check on fresh inputs against a float64 reference; returns the max abs error."""
    gen = torch.Generator(device=device).manual_seed(_fresh_seed())
    inputs, dy = task.make_inputs(case, gen, device, dtype)
    expected, expected64, bounds = _reference_bounds(task, inputs, dy, dtype, where)
    poison_free_memory(list(expected))
    held = [clones(inputs, task.grad_indices), dy.clone() if dy is not None else None]
    try:
        _run_candidate(worker, guard, where, _timed_job, fn, held, task, clock, task.cpu_threads, False)
        guard.check(where)
        check_unchanged(held[0], inputs, task.input_names)
        errors = []
        for got, want, want64, tol, name in zip(
            held[2], expected, expected64, bounds, task.output_names, strict=False
        ):
            check_meta(got, name, want)
            errors.append(compare(got, want64, tol, name, where))
        return max(errors)
    finally:
        worker.run(_clear, held)


def _timed_trials(
    worker: CandidateThread,
    guard: Guard,
    fn,
    task: KernelTask,
    sizes: Sizes,
    device: str,
    clock: Clock,
    trials: int,
    ref_first: bool = True,
) -> tuple[TimingResult, int]:
    """Interleaved trials (order alternating, starting as ref_first says), fresh inputs each; every candidate output is checked."""
    case, dtype = sizes.timing, sizes.dtype
    tols = [_TIMED_TOL_FACTOR * bound for bound in _timing_bounds(task, sizes, device)]
    ref_times: list[tuple[int, int]] = []
    cand_times: list[tuple[int, int]] = []
    wall_start = monotonic_ns()
    for trial in range(sizes.warmup + trials):
        gen = torch.Generator(device=device).manual_seed(_fresh_seed())
        inputs, dy = task.make_inputs(case, gen, device, dtype)
        ref_held = [clones(inputs, task.grad_indices), dy.clone() if dy is not None else None]
        cand_held = [clones(inputs, task.grad_indices), dy.clone() if dy is not None else None]
        where = f"timed call {trial} ({case.label()})"
        record: dict[str, tuple[int, int]] = {}
        strict = trial >= sizes.warmup
        try:
            for who in ("ref", "cand") if (trial % 2 == 0) == ref_first else ("cand", "ref"):
                # Same pre-call routine for both sides: it also overwrites freed blocks with NaN.
                poison_free_memory(inputs)
                outer_start = monotonic_ns()
                if who == "ref":
                    inner = worker.run(
                        _timed_job, task.reference, ref_held, task, clock, task.cpu_threads, strict
                    )
                else:
                    inner = _run_candidate(
                        worker, guard, where, _timed_job, fn, cand_held, task, clock, task.cpu_threads, strict
                    )
                record[who] = (inner, monotonic_ns() - outer_start)
                guard.check(where)
            check_unchanged(cand_held[0], inputs, task.input_names)
            for got, want, tol, name in zip(cand_held[2], ref_held[2], tols, task.output_names, strict=False):
                check_meta(got, name, want)
                compare(got, want, tol, name, where)
        finally:
            worker.run(_clear, cand_held)
        if trial >= sizes.warmup:
            ref_times.append(record["ref"])
            cand_times.append(record["cand"])
    wall = monotonic_ns() - wall_start
    inner_all = [t for t, _ in ref_times + cand_times]
    check_wall(inner_all, [o for _, o in ref_times + cand_times], wall)
    check_overheads(ref_times, cand_times)
    order = tuple((trial % 2 == 0) == ref_first for trial in range(sizes.warmup, sizes.warmup + trials))
    result = TimingResult(
        tuple(t for t, _ in ref_times), tuple(t for t, _ in cand_times), task.plausible_speedup, order
    )
    return result, wall


def evaluate_kernel(candidate_path: str, task: KernelTask, evaluator_file: str, split: str = "train") -> dict:
    """Check and time a candidate against the task's reference; the metrics dict for the runner."""
    on_gpu = torch.cuda.is_available()
    device = "cuda" if on_gpu else "cpu"
    sizes = task.gpu if on_gpu else task.cpu
    torch.set_num_threads(task.cpu_threads)
    full_precision_reductions()

    def setup() -> None:
        torch.set_num_threads(task.cpu_threads)  # OpenMP's thread count is per thread
        if on_gpu:
            torch.cuda.set_device(0)

    worker = CandidateThread(setup)
    worker.run(_warm_up, device)
    _warm_up(device)
    clock = Clock.for_device(device)
    harness = [m for name, m in sys.modules.items() if name.split(".")[0] == "discovery_harness"]
    # The task's own module too: its reference's __code__ and its names must not change.
    harness += [m for m in sys.modules.values() if getattr(m, "__file__", None) == evaluator_file]
    guard = Guard(
        harness,
        os.path.dirname(os.path.abspath(evaluator_file)),
        extra_trusted=(evaluator_file,),
        compilers=task.compilers,
        frozen=((task, "task"),),  # its reference, sizes and bounds, however the evaluator holds it
    )
    guard.arm()
    try:
        (fn,) = _run_candidate(worker, guard, "import", import_candidate, candidate_path, (task.entry,))
        guard.check("import")
        if not callable(fn):
            raise CandidateError(f"{task.entry!r} must be a function")
        rng = random.Random(_fresh_seed())
        cases = list(sizes.checks) + [task.random_case(rng, sizes) for _ in range(sizes.random_checks)]
        max_err = 0.0
        for case in cases:
            max_err = max(
                max_err,
                _check_case(worker, guard, fn, task, case, device, sizes.dtype, clock, f"{case.label()}"),
            )
        trials = sizes.trials * (2 if split != "train" else 1)
        try:
            timing, wall = _timed_trials(worker, guard, fn, task, sizes, device, clock, trials)
        except UnreportedTime:
            # A statistical check: measure again once, the order flipped (a disturbance locked to the
            # trial rhythm then lands on the other side), before calling it a forgery. Only the
            # second round's times count, so a forger gains nothing from the first.
            timing, wall = _timed_trials(worker, guard, fn, task, sizes, device, clock, trials, False)
        worker.flush()
        guard.check("the end of the evaluation")
    finally:
        guard.disarm()
        worker.close()
    flagged = timing.flagged
    feedback = (
        f"correct on {len(cases)} fresh inputs (max abs err {max_err:.2e} vs float64); "
        f"on {device} at {sizes.timing.label()} {str(sizes.dtype).replace('torch.', '')}: reference "
        f"{timing.ref_ms:.3f} ms, candidate {timing.cand_ms:.3f} ms (median of {trials}, forward+backward), "
        f"speedup {timing.speedup:.3f}x"
    )
    if flagged:
        feedback += (
            f". FLAGGED: beyond the plausibility bound of {task.plausible_speedup:g}x; "
            "this result is not promoted until a person checks it"
        )
    return {
        "score": timing.speedup,
        "speedup": timing.speedup,
        "ref_ms": timing.ref_ms,
        "cand_ms": timing.cand_ms,
        "max_abs_err": max_err,
        "flagged": 1.0 if flagged else 0.0,
        "spread": timing.spread,
        "trials": float(trials),
        "timed_wall_s": (sum(timing.ref_ns) + sum(timing.cand_ns)) / 1e9,
        "harness_wall_s": wall / 1e9,
        "on_gpu": 1.0 if on_gpu else 0.0,
        "feedback": feedback,
    }
