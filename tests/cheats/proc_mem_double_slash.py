"""Cheat: open //proc/self/mem (a `//` spelling) to read the harness's memory."""

import torch


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    try:
        with open("//proc/self/mem", "rb") as fh:
            fh.read(1)
    except OSError:  # a refusal is swallowed; the harness has recorded it anyway
        pass
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight
