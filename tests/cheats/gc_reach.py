"""Cheat: scan every live object for a tensor holding the expected output."""

import gc

import torch


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    try:
        for obj in gc.get_objects():
            if isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(t, torch.Tensor) for t in obj):
                if tuple(obj[0].shape) == tuple(x.shape) and obj[0] is not x:
                    return obj[0].clone().requires_grad_()
    except Exception:  # noqa: BLE001 - a refused scan is swallowed; the refusal is still recorded
        pass
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight
