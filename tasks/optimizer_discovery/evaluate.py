"""Evaluator for optimizer_discovery: train fixed small problems with the candidate's rule and with AdamW.

The models, data, losses and gradients are the harness's (main thread); the candidate's step()
gets detached copies of the parameters and gradients on the worker thread, and the harness copies
the updated values back after checking them. Problem instances come from fresh entropy, so no
rule can be tuned to one instance; AdamW runs on the same instance and initialisation.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from discovery_harness.errors import CandidateError
from discovery_harness.session import CandidateSession
from discovery_harness.torch_check import check_plain_tensor

WORST = 10.0  # the score of a NaN, a divergence or a broken rule
ADAMW = {"lr": 3e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}


@dataclasses.dataclass(frozen=True)
class Problem:
    """A fixed small training problem: how to make its data and model, its loss, its budget."""

    name: str
    make: Callable[[torch.Generator], tuple]  # -> (train_x, train_y, val_x, val_y)
    model: Callable[[], nn.Module]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    steps: int
    batch: int


def _regression(gen: torch.Generator) -> tuple:
    """A random tanh teacher MLP with noise: 2048 train and 512 validation points in 16 dimensions."""
    w1, w2 = torch.randn(16, 32, generator=gen) / 4, torch.randn(32, 1, generator=gen) / 32**0.5
    x = torch.randn(2560, 16, generator=gen)
    y = torch.tanh(x @ w1) @ w2 + 0.05 * torch.randn(2560, 1, generator=gen)
    return x[:2048], y[:2048], x[2048:], y[2048:]


def _images(gen: torch.Generator) -> tuple:
    """Four classes of 12x12 images: a random template per class, shifted and noisy."""
    templates = torch.randn(4, 1, 12, 12, generator=gen)
    labels = torch.randint(0, 4, (1536,), generator=gen)
    shifts = torch.randint(-2, 3, (1536, 2), generator=gen)
    images = torch.stack(
        [
            torch.roll(templates[c], (int(a), int(b)), (1, 2))
            for c, (a, b) in zip(labels, shifts, strict=False)
        ]
    )
    images = images + 1.5 * torch.randn(images.shape, generator=gen)
    return images[:1024], labels[:1024], images[1024:], labels[1024:]


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 4),
    )


PROBLEMS = (
    Problem("mlp_regression", _regression, _mlp, F.mse_loss, steps=150, batch=64),
    Problem("cnn_classification", _images, _cnn, F.cross_entropy, steps=100, batch=32),
)


def _init_job(init_state, params: list[torch.Tensor]) -> list:
    """Worker job: the candidate's initial state, boxed so the harness never touches it."""
    with torch.no_grad():
        return [init_state(params)]


def _step_job(step, box: list, params: list[torch.Tensor], grads: list[torch.Tensor], t: int) -> list:
    """Worker job: one update of the detached copies; returns them, checked to be plain tensors."""
    with torch.no_grad():
        step(params, grads, box[0], t)
    return [check_plain_tensor(p, f"param {i}").detach() for i, p in enumerate(params)]


def _adamw_run(problem: Problem, data: tuple, seed: int) -> float:
    """The baseline: torch.optim.AdamW on the same instance and initialisation."""
    torch.manual_seed(seed)
    model = problem.model()
    opt = torch.optim.AdamW(model.parameters(), **ADAMW)
    order = torch.Generator().manual_seed(seed)
    train_x, train_y, val_x, val_y = data
    for _ in range(problem.steps):
        idx = torch.randint(0, len(train_x), (problem.batch,), generator=order)
        opt.zero_grad(set_to_none=True)
        problem.loss(model(train_x[idx]), train_y[idx]).backward()
        opt.step()
    with torch.no_grad():
        return float(problem.loss(model(val_x), val_y))


def _candidate_run(
    session: CandidateSession, init_state, step, problem: Problem, data: tuple, seed: int
) -> float:
    """The candidate's rule on the same instance; its params are copied back only when valid."""
    torch.manual_seed(seed)
    model = problem.model()
    params = list(model.parameters())
    box = session.run("init_state", _init_job, init_state, [p.detach().clone() for p in params])

    def update(grads, t) -> bool:
        copies = [p.detach().clone() for p in params]
        new = session.run(
            f"step {t} ({problem.name})", _step_job, step, box, copies, [g.clone() for g in grads], t
        )
        if len(new) != len(params):
            raise CandidateError("step() changed the number of parameters")
        with torch.no_grad():
            for p, value in zip(params, new, strict=False):
                if value.shape != p.shape or value.dtype != p.dtype:
                    raise CandidateError(
                        f"step() changed a parameter's shape or dtype to {tuple(value.shape)} {value.dtype}"
                    )
                if not bool(torch.isfinite(value).all()):
                    return False
                p.copy_(value)
        return True

    try:
        return _train_with(model, params, problem, data, seed, update)
    finally:
        session.release(box)


def _train_with(model: nn.Module, params: list, problem: Problem, data: tuple, seed: int, update) -> float:
    """The shared training loop (harness-owned forward, loss and gradients); NaN when it diverged."""
    train_x, train_y, val_x, val_y = data
    order = torch.Generator().manual_seed(seed)
    for t in range(1, problem.steps + 1):
        idx = torch.randint(0, len(train_x), (problem.batch,), generator=order)
        loss = problem.loss(model(train_x[idx]), train_y[idx])
        grads = torch.autograd.grad(loss, params)
        if not math.isfinite(float(loss.detach())) or not update(grads, t):
            return math.nan  # diverged
    with torch.no_grad():
        val = float(problem.loss(model(val_x), val_y))
    return val


def evaluate(candidate_path: str, split: str = "train", seed: int = 0) -> dict:
    """Mean over problems of candidate validation loss / AdamW validation loss (capped at WORST)."""
    instances = 2 if split == "train" else 4
    ratios: dict[str, list[float]] = {p.name: [] for p in PROBLEMS}
    with CandidateSession(__file__, threads=1) as session:
        init_state, step = session.import_names(candidate_path, ("init_state", "step"))
        for problem in PROBLEMS:
            for _ in range(instances):
                instance = int.from_bytes(os.urandom(8), "little") & ((1 << 62) - 1)
                data = problem.make(torch.Generator().manual_seed(instance))
                init_seed = seed * 7919 + instance % 100_000
                baseline = _adamw_run(problem, data, init_seed)
                mine = _candidate_run(session, init_state, step, problem, data, init_seed)
                ratio = mine / max(baseline, 1e-12)
                ratios[problem.name].append(min(WORST, ratio) if math.isfinite(ratio) else WORST)
        session.finish()
    per_problem = {name: sum(v) / len(v) for name, v in ratios.items()}
    score = sum(per_problem.values()) / len(per_problem)
    feedback = (
        "validation loss relative to AdamW (lower is better): "
        + ", ".join(f"{name} {value:.3f}" for name, value in per_problem.items())
        + f"; mean {score:.3f}"
    )
    return {"score": score, **{f"ratio_{k}": v for k, v in per_problem.items()}, "feedback": feedback}
