"""An honest rmsnorm candidate: torch.compile of a float32-accumulating RMSNorm (compiles under the Guard)."""

import torch


def _rms(x, weight, eps):
    var = x.float().pow(2).mean(-1, keepdim=True)
    return (x.float() * torch.rsqrt(var + eps)).to(x.dtype) * weight


_compiled = torch.compile(_rms, dynamic=True)


def rmsnorm(x, weight, eps):
    return _compiled(x, weight, eps)
