"""Cheat: reach the harness through f_back (no sys._getframe past its own frame) and copy an output."""

import inspect

import torch


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    frame = inspect.currentframe()
    while frame is not None:
        for value in list(frame.f_locals.values()):
            for t in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(t, tuple):
                    for u in t:
                        if isinstance(u, torch.Tensor) and u.shape == x.shape and u is not x:
                            return u.detach().clone().requires_grad_() * weight.sum() / weight.sum()
        frame = frame.f_back
    return (x * 0 + weight * 0).sum() * x  # found nothing: a wrong answer
