"""Not a cheat: an update rule whose steps blow up to inf/NaN; it must score the worst, 10."""

import torch


def init_state(params: list[torch.Tensor]) -> None:
    return None


def step(params: list[torch.Tensor], grads: list[torch.Tensor], state: None, t: int) -> None:
    for p, g in zip(params, grads, strict=True):
        p.add_(g, alpha=-1e30).mul_(1e30)
