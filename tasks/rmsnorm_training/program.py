"""RMSNorm for training: the seed is the plain eager formulation (autograd derives the backward)."""

import torch


# EVOLVE-BLOCK-START
def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """y = x / sqrt(mean(x^2) + eps) * weight, over the last dimension."""
    var = x.pow(2).mean(-1, keepdim=True)
    return x * torch.rsqrt(var + eps) * weight


# EVOLVE-BLOCK-END
