"""Evaluator for rmsnorm_training: correctness of y, dx, dweight on fresh inputs, then forward+backward speedup."""

from __future__ import annotations

import random

import torch
from discovery_harness.kernel_eval import Case, KernelTask, Sizes, evaluate_kernel

EPS = 1e-6


def reference(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """The eager reference, written the way models usually write it."""
    var = x.pow(2).mean(-1, keepdim=True)
    return x * torch.rsqrt(var + eps) * weight


def make_inputs(case: Case, gen: torch.Generator, device: str, dtype: torch.dtype):
    """x (scaled), a non-trivial weight (so intermediates differ from the output) and the output gradient."""
    rows, hidden = case.shape
    x = torch.randn(rows, hidden, generator=gen, device=device).mul_(case.scale).to(dtype)
    weight = torch.randn(hidden, generator=gen, device=device).mul_(0.5).add_(1.0).to(dtype)
    dy = torch.randn(rows, hidden, generator=gen, device=device).to(dtype)
    return [x, weight], dy


def random_case(rng: random.Random, sizes: Sizes) -> Case:
    """An awkward shape: odd sizes, never a multiple of 8."""
    rows = rng.randrange(1, 300) * 2 + 1
    hidden = rng.randrange(8, 400) * 8 + rng.choice((1, 3, 5, 7))
    return Case((rows, hidden), rng.choice((1.0, 1e3, 1e-3)))


TASK = KernelTask(
    entry="rmsnorm",
    input_names=("x", "weight"),
    output_names=("y", "grad_x", "grad_weight"),
    make_inputs=make_inputs,
    reference=reference,
    grad_indices=(0, 1),
    constants=(EPS,),
    cpu=Sizes(
        checks=(Case((37, 129)), Case((1, 1000)), Case((515, 257), 1e4), Case((64, 72), 1e-3)),
        # Small enough for many short trials: on a shared 2-core machine that is what keeps noise low
        # (bench/timing_noise.py: CV of the speedup 3.7% with 60 trials, 1.7% with 200).
        timing=Case((257, 1031)),
        dtype=torch.float32,
        trials=200,
        warmup=5,
    ),
    gpu=Sizes(
        checks=(Case((37, 129)), Case((1, 4099)), Case((1031, 2053), 1e3), Case((257, 8191), 1e-3)),
        timing=Case((16381, 4099)),
        dtype=torch.bfloat16,
        trials=50,
        warmup=10,
    ),
    plausible_speedup=10.0,
    random_case=random_case,
)


def evaluate(candidate_path: str, split: str = "train", seed: int = 0) -> dict:
    """Score = forward+backward speedup over the eager reference; inputs come from fresh entropy, not seed."""
    return evaluate_kernel(candidate_path, TASK, __file__, split=split)
