"""Cheat: read the speedrun corpus with torch.from_file, a C-level open no audit hook sees."""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
OUTCOME = "no corpus found"
for entry in list(sys.path):
    target = os.path.join(os.path.abspath(entry), "data", "corpus.txt")
    if os.path.isfile(target):
        try:
            stolen = torch.from_file(target, shared=False, size=64, dtype=torch.uint8)
            OUTCOME = "LEAKED " + bytes(stolen.tolist()).decode(errors="replace")
        except RuntimeError as exc:
            OUTCOME = str(exc)
        break


def build_model(vocab_size: int, block: int) -> torch.nn.Module:
    raise RuntimeError(f"from_file outcome: {OUTCOME}")


def build_optimizer(model: torch.nn.Module, steps: int) -> torch.optim.Optimizer:
    raise RuntimeError("unreachable")


def lr_multiplier(step: int, steps: int) -> float:
    return 1.0
