"""Correctness checks for torch candidates: plain-tensor outputs, dtype tolerances, mutation, poisoning."""

from __future__ import annotations

import weakref

import torch

from discovery_harness.errors import CandidateError

# Error allowed against a float64 reference, per output dtype (relative to the element and the RMS).
TOLERANCES = {torch.float32: 1e-4, torch.float64: 1e-7, torch.bfloat16: 1e-2, torch.float16: 1e-2}

_Tensor = torch.Tensor
_type = type
_getweakrefcount = weakref.getweakrefcount


def tolerance(dtype: torch.dtype) -> float:
    """The comparison tolerance for a dtype."""
    return TOLERANCES.get(dtype, 1e-4)


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
    if value.__dict__ or _getweakrefcount(value):
        raise CandidateError(
            f"output {name!r} carries Python attributes or weak references; return a plain tensor"
        )
    return value


def check_untouched_arg(value: torch.Tensor, name: str) -> None:
    """An input handed to the candidate must come back without attributes, hooks or weak references."""
    if value.__dict__ or _getweakrefcount(value) or value.grad is not None or value._backward_hooks:
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
