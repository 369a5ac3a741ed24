"""Correctness checks for torch candidates: plain-tensor outputs, dtype tolerances, mutation, poisoning."""

from __future__ import annotations

import weakref

import torch

from discovery_harness.errors import CandidateError

# Error allowed against a float64 reference, per output dtype (relative to the element and the RMS).
TOLERANCES = {torch.float32: 1e-4, torch.float64: 1e-7, torch.bfloat16: 1e-2, torch.float16: 1e-2}
# The bound for a candidate is the task's own reference's error in the task dtype (against float64,
# same inputs, same measure) times this factor, never below the dtype's tolerance (the practice of
# KernelBench and gpu-mode). Eager code rounds to the dtype after every op, a fused kernel usually
# less often, so a correct kernel lands near the reference's error; 2x leaves room for another
# reduction order and for the worst element being noisy on small shapes. A precision downgrade
# (bf16 compute for an fp32 task: ~80x; fp8 storage or fp16 accumulation for a bf16 task: 4-16x the
# rounding error) stays outside it.
REFERENCE_ERROR_FACTOR = 2.0
# Beyond this many dtype tolerances the reference itself is broken (an evaluator error, not a bound).
# Generous on purpose: with cuBLAS's reduced-precision bf16 reductions (torch's default, switched off
# by kernel_eval) eager bf16 reached ~14% on linear_gelu_residual's grad_x at inputs scaled 1e2 on an
# H100; with full-precision reductions it stays under 1% there.
REFERENCE_ERROR_LIMIT = 25.0

_Tensor = torch.Tensor
_type = type
_getweakrefcount = weakref.getweakrefcount
# Attributes torch.compile (dynamo) sets on tensors it sees: sets of dimension indices, plain data.
_DYNAMO_MARKS = frozenset(
    {
        "_dynamo_dynamic_indices",
        "_dynamo_propagated_dynamic_indices",
        "_dynamo_weak_dynamic_indices",
        "_dynamo_static_indices",
        "_dynamo_unbacked_indices",
    }
)


def _decorated(value: torch.Tensor) -> bool:
    """Whether a tensor carries Python attributes beyond dynamo's dimension marks (sets of ints)."""
    # Exact types are checked before anything is hashed or compared, so no candidate code can run here.
    for name, mark in value.__dict__.items():
        kind = _type(mark)
        if _type(name) is not str or (kind is not set and kind is not frozenset) or name not in _DYNAMO_MARKS:
            return True
        if any(_type(index) is not int for index in mark):
            return True
    return False


def tolerance(dtype: torch.dtype) -> float:
    """The comparison tolerance for a dtype."""
    return TOLERANCES.get(dtype, 1e-4)


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """Worst element of |got - want| / (|want| + rms(want)), the measure compare() bounds; inf for NaN."""
    wide = torch.float64 if torch.float64 in (got.dtype, want.dtype) else torch.float32
    g = got.detach().to(wide)
    w = want.detach().to(wide)
    if w.numel() == 0:
        return 0.0
    rms = float(torch.linalg.vector_norm(w)) / (w.numel() ** 0.5)
    ratio = (g - w).abs_().div_(w.abs().add_(rms).clamp_min_(1e-300)).max()
    value = float(ratio)
    return value if value == value else float("inf")


def derived_tolerance(dtype: torch.dtype, reference_error: float) -> float:
    """The bound for a candidate: the reference's own error times the factor, floored at the dtype's."""
    return max(tolerance(dtype), REFERENCE_ERROR_FACTOR * reference_error)


def check_reference(want: torch.Tensor, want64: torch.Tensor, name: str, where: str) -> float:
    """The task's own reference against float64: its error (raise RuntimeError when it is broken)."""
    own = relative_error(want, want64)
    limit = REFERENCE_ERROR_LIMIT * tolerance(want.dtype)
    if not own <= limit:
        raise RuntimeError(
            f"the task's own reference fails its tolerance: output {name!r} on {where} is off by {own:.3g} "
            f"relative to a float64 reference, more than {REFERENCE_ERROR_LIMIT:g}x the "
            f"{str(want.dtype).replace('torch.', '')} tolerance {tolerance(want.dtype):g}"
        )
    return own


def check_plain_tensor(value: object, name: str) -> torch.Tensor:
    """Require exactly torch.Tensor (no subclass, no lazy wrapper, nothing attached that could run later)."""
    kind = _type(value)
    if kind is not _Tensor:
        if isinstance(kind, type) and issubclass(kind, _Tensor):
            raise CandidateError(
                f"output {name!r} is a Tensor subclass ({kind.__name__}); return a plain torch.Tensor"
            )
        raise CandidateError(f"output {name!r} is a {kind.__name__}, expected a torch.Tensor")
    if value.layout != torch.strided or value.is_meta or value.is_sparse:
        raise CandidateError(f"output {name!r} must be a dense, materialised tensor (layout {value.layout})")
    if _decorated(value) or _getweakrefcount(value):
        raise CandidateError(
            f"output {name!r} carries Python attributes or weak references; return a plain tensor"
        )
    return value


def check_untouched_arg(value: torch.Tensor, name: str) -> None:
    """An input handed to the candidate must come back without attributes, hooks or weak references."""
    if _decorated(value) or _getweakrefcount(value) or value.grad is not None or value._backward_hooks:
        raise CandidateError(f"input {name!r} was decorated by the candidate (attributes, hooks or .grad)")


def check_meta(value: torch.Tensor, name: str, like: torch.Tensor) -> None:
    """Output dtype, shape and device must match the reference's."""
    if value.dtype != like.dtype:
        raise CandidateError(f"output {name!r} has dtype {value.dtype}, expected {like.dtype}")
    if tuple(value.shape) != tuple(like.shape):
        raise CandidateError(f"output {name!r} has shape {tuple(value.shape)}, expected {tuple(like.shape)}")
    if value.device != like.device:
        raise CandidateError(f"output {name!r} is on {value.device}, expected {like.device}")


def compare(got: torch.Tensor, want: torch.Tensor, tol: float, name: str, where: str) -> float:
    """Raise on mismatch (|got - want| <= tol * (|want| + rms(want)) elementwise); return the max abs error.

    Call check_meta first: this compares values only. want may be a float64 reference; the
    arithmetic runs in the wider of the two dtypes (NaN fails the <= test, so it is caught too).
    """
    wide = torch.float64 if torch.float64 in (got.dtype, want.dtype) else torch.float32
    g = got.detach().to(wide)
    w = want.detach().to(wide)
    if w.numel() == 0:
        return 0.0
    diff = (g - w).abs_()
    rms = float(torch.linalg.vector_norm(w)) / (w.numel() ** 0.5)
    bound = w.abs().add_(rms).mul_(tol)
    if bool((diff <= bound).all()):
        return float(diff.max())
    if not bool(torch.isfinite(g).all()):
        raise CandidateError(
            f"output {name!r} mismatch on {where}: non-finite values (NaN or inf) in the output"
        )
    max_err = float(diff.max())
    worst = float((diff / bound.clamp_min(1e-300)).max())
    raise CandidateError(
        f"output {name!r} mismatch on {where}: max abs err {max_err:.3g} (worst element {worst:.3g}x "
        f"its bound) > tol {tol:g} (relative to a float64 reference)"
    )


def clones(inputs: list[torch.Tensor], grad_indices: tuple[int, ...]) -> list[torch.Tensor]:
    """Fresh leaf copies of the inputs; those being differentiated require grad."""
    out = []
    for index, tensor in enumerate(inputs):
        copy = tensor.detach().clone()
        out.append(copy.requires_grad_(True) if index in grad_indices else copy)
    return out


def check_unchanged(args: list[torch.Tensor], pristine: list[torch.Tensor], names: tuple[str, ...]) -> None:
    """The candidate's copies of the inputs must be bit-identical to the originals afterwards."""
    for arg, original, name in zip(args, pristine, names, strict=False):
        check_untouched_arg(arg, name)
        same = arg.shape == original.shape and arg.dtype == original.dtype
        if not same or not torch.equal(arg.detach(), original):
            raise CandidateError(f"input mutated: the candidate changed its argument {name!r} in place")


def poison_free_memory(like: list[torch.Tensor], copies: int = 2) -> None:
    """Fill recently freed blocks of the outputs' sizes with NaN, so torch.empty cannot return a result."""
    held = []
    for tensor in like:
        for _ in range(copies):
            block = torch.empty_like(tensor)
            if block.is_floating_point():
                block.fill_(float("nan"))
            else:
                block.fill_(-1)
            held.append(block)
    del held
