"""Cheat: compute one precision step below the task's dtype (faster on real hardware), cast back.

An fp32 task (CPU sizes) is computed in bfloat16. A bf16 task (GPU sizes) goes through float8
(e4m3) storage, as an fp8 kernel would: inputs, gradients and outputs rounded to 3 mantissa bits.
"""

import torch

_LOWER = {torch.float32: torch.bfloat16, torch.float64: torch.float32}


def _fp8(t: torch.Tensor) -> torch.Tensor:
    """Round through float8 (e4m3) storage; gradients flow back through the same rounding."""
    return t.to(torch.float8_e4m3fn).to(t.dtype)


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    lower = _LOWER.get(x.dtype)
    if lower is not None:
        xb, wb = x.to(lower), weight.to(lower)
        y = xb * torch.rsqrt(xb.pow(2).mean(-1, keepdim=True) + eps) * wb
        return y.to(x.dtype)
    xq, wq = _fp8(x), _fp8(weight)
    y = xq * torch.rsqrt(xq.pow(2).mean(-1, keepdim=True) + eps) * wq
    return _fp8(y)
