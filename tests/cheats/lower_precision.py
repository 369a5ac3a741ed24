"""Cheat: compute in bfloat16 (faster on real hardware) and cast back to the input dtype."""

import torch


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    xb, wb = x.to(torch.bfloat16), weight.to(torch.bfloat16)
    y = xb * torch.rsqrt(xb.pow(2).mean(-1, keepdim=True) + eps) * wb
    return y.to(x.dtype)
