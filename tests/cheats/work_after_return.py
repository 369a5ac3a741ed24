"""Cheat: do work after the timed call has returned, where the harness's clock no longer runs.

An object hung on the output's autograd node is freed when the harness drops the output, after
the clock stopped but before the harness's job ends; its __del__ spins 3 ms (standing in for work
moved out of the timed window, e.g. preparing the next call). The untimed overhead check sees it.
"""

import time

import torch

SPIN_S = 0.003


class Later:
    def __del__(self) -> None:
        start = time.perf_counter()
        while time.perf_counter() - start < SPIN_S:
            pass


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    var = x.pow(2).mean(-1, keepdim=True)
    y = x * torch.rsqrt(var + eps) * weight
    y.grad_fn.metadata["later"] = Later()
    return y
