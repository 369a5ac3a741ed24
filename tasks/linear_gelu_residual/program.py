"""Linear + bias + GELU + residual: the seed is the plain, unfused eager formulation."""

import torch
import torch.nn.functional as F


# EVOLVE-BLOCK-START
def linear_gelu_residual(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, residual: torch.Tensor
) -> torch.Tensor:
    """residual + gelu(x @ weight.T + bias)."""
    h = x @ weight.t()
    h = h + bias
    return F.gelu(h) + residual


# EVOLVE-BLOCK-END
