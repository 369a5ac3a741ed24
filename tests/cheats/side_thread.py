"""Cheat: return at once and finish the output on a background thread while the clock is stopped."""

import threading
import time

import torch


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    out = torch.empty_like(x)
    xd, wd = x.detach(), weight.detach()

    def work() -> None:
        time.sleep(0.001)
        out.copy_(xd * torch.rsqrt(xd.pow(2).mean(-1, keepdim=True) + eps) * wd)

    threading.Thread(target=work).start()
    return out + 0 * (x.sum() + weight.sum())
