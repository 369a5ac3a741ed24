"""Cheat: slow the task's reference down by writing the frozen KernelTask's __dict__ directly,
which no audit event reports (only the Guard's snapshot of the task's fields sees it)."""

import sys

import torch

TASK = sys.modules["task_evaluate"].TASK
original = TASK.reference


def slow_reference(*args):
    original(*args)  # the same result, computed twice: the candidate looks twice as fast
    return original(*args)


vars(TASK)["reference"] = slow_reference


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight
