"""Evaluator for linear_gelu_residual: y and four gradients on fresh inputs, then forward+backward speedup."""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from discovery_harness.kernel_eval import Case, KernelTask, Sizes, evaluate_kernel


def reference(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, residual: torch.Tensor
) -> torch.Tensor:
    """The unfused eager reference: matmul, bias add, GELU and residual add as separate ops."""
    h = x @ weight.t()
    h = h + bias
    return F.gelu(h) + residual


def make_inputs(case: Case, gen: torch.Generator, device: str, dtype: torch.dtype):
    """x and residual scaled by the case; weights at the usual 1/sqrt(K) scale."""
    m, k, n = case.shape
    x = torch.randn(m, k, generator=gen, device=device).mul_(case.scale)
    weight = torch.randn(n, k, generator=gen, device=device).mul_(k**-0.5)
    bias = torch.randn(n, generator=gen, device=device).mul_(0.1)
    residual = torch.randn(m, n, generator=gen, device=device).mul_(case.scale)
    dy = torch.randn(m, n, generator=gen, device=device)
    return [t.to(dtype) for t in (x, weight, bias, residual)], dy.to(dtype)


def random_case(rng: random.Random, sizes: Sizes) -> Case:
    """Awkward (odd) M, K, N."""
    return Case(tuple(rng.randrange(1, 200) * 2 + 1 for _ in range(3)), rng.choice((1.0, 1e2, 1e-3)))


TASK = KernelTask(
    entry="linear_gelu_residual",
    input_names=("x", "weight", "bias", "residual"),
    output_names=("y", "grad_x", "grad_weight", "grad_bias", "grad_residual"),
    make_inputs=make_inputs,
    reference=reference,
    grad_indices=(0, 1, 2, 3),
    cpu=Sizes(
        checks=(Case((37, 19, 71)), Case((1, 257, 129)), Case((129, 65, 97), 1e2), Case((64, 72, 40), 1e-3)),
        timing=Case((513, 127, 259)),
        dtype=torch.float32,
        trials=200,
        warmup=5,
    ),
    gpu=Sizes(
        checks=(
            Case((37, 19, 71)),
            Case((1, 4099, 129)),
            Case((1031, 515, 2053), 1e2),
            Case((255, 1023, 1025)),
        ),
        timing=Case((8191, 4095, 4097)),
        dtype=torch.bfloat16,
        trials=50,
        warmup=10,
    ),
    plausible_speedup=4.0,
    random_case=random_case,
)


def evaluate(candidate_path: str, split: str = "train", seed: int = 0) -> dict:
    """Score = forward+backward speedup over the unfused eager reference."""
    return evaluate_kernel(candidate_path, TASK, __file__, split=split)
