"""A genuinely faster candidate: a fused autograd.Function with a hand-written backward (fewer passes)."""

import torch


class _RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, eps):
        rstd = torch.rsqrt(torch.mean(x * x, -1, keepdim=True).add_(eps))
        xhat = x * rstd
        ctx.save_for_backward(xhat, rstd, weight)
        return xhat * weight

    @staticmethod
    def backward(ctx, dy):
        xhat, rstd, weight = ctx.saved_tensors
        g = dy * weight
        dw = (dy * xhat).sum(0)
        dot = (g * xhat).mean(-1, keepdim=True)
        dx = g.sub_(xhat * dot).mul_(rstd)
        return dx, dw, None


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return _RMSNorm.apply(x, weight, eps)
