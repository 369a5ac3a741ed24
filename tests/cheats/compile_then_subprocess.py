"""A cheat: compiles through the toolchain allowance, then starts a process of its own (refused)."""

import subprocess

import torch

_compiled = torch.compile(lambda x, w, eps: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w)


def rmsnorm(x, weight, eps):
    y = _compiled(x, weight, eps)
    try:
        subprocess.run(["true"])
    except PermissionError:
        pass
    return y
