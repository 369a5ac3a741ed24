"""Evaluator for tiny_gpt_speedrun: the harness owns data, tokenisation, validation split and loss.

CPU score: mean validation loss (nats per byte) after a fixed step budget, over three seeds
(hardware-independent). GPU score: mean wall time (seconds) to reach a target validation loss.
Both are minimised. The data file and the loader are hash-checked before and after the candidate
runs; the candidate cannot read the data itself (the Guard refuses it off the main thread), and
the model is probed for causality (logits must not depend on later bytes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path

import corpus
import torch
import torch.nn.functional as F
from discovery_harness.errors import CandidateError
from discovery_harness.session import CandidateSession
from discovery_harness.timing import monotonic_ns
from discovery_harness.torch_check import check_plain_tensor

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "data"
SHA256 = {
    "data/corpus.txt": "8d356c0199088ee011910714fc0945f4be0b11f3f9d8cc8ce63013e9caa98bc0",
    "corpus.py": "84bb601b7fea4c003e4b2898a12b4c7453c49a9c23dc1368dad2abf65383a883",
}
WORST_LOSS = 2 * math.log(corpus.VOCAB_SIZE)  # NaN, divergence or a broken model scores this
_cross_entropy = F.cross_entropy
_isfinite = math.isfinite


@dataclasses.dataclass(frozen=True)
class Budget:
    """Sizes for one device class."""

    batch: int
    block: int
    steps: int  # CPU: the fixed budget; GPU: the cap while chasing the target
    seeds: int = 3
    val_windows: int = 64
    target: float | None = None  # GPU only: validation loss to reach
    eval_every: int = 0


CPU = Budget(batch=16, block=64, steps=60, val_windows=48)
GPU = Budget(batch=64, block=256, steps=3000, val_windows=256, target=1.45, eval_every=100)


def verify_files() -> None:
    """The data file and the loader must be byte-identical to what the task shipped."""
    for rel, digest in SHA256.items():
        actual = hashlib.sha256((HERE / rel).read_bytes()).hexdigest()
        if actual != digest:
            raise CandidateError(
                f"task file changed: {rel} has sha256 {actual[:16]}..., expected {digest[:16]}..."
            )


def _build(build_model, build_optimizer, seed: int, steps: int, block: int) -> list:
    """Worker job: seed torch, build the candidate's model and optimiser; remember each group's peak lr."""
    torch.manual_seed(seed)
    model = build_model(corpus.VOCAB_SIZE, block)
    if not isinstance(model, torch.nn.Module):
        raise CandidateError("build_model must return a torch.nn.Module")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    optimizer = build_optimizer(model, steps)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise CandidateError("build_optimizer must return a torch.optim.Optimizer")
    return [model, optimizer, [float(g["lr"]) for g in optimizer.param_groups], device]


def _logits(model, idx: torch.Tensor) -> torch.Tensor:
    """Call the model and check what it returned."""
    logits = check_plain_tensor(model(idx), "logits")
    if tuple(logits.shape) != (*idx.shape, corpus.VOCAB_SIZE):
        raise CandidateError(
            f"logits have shape {tuple(logits.shape)}, expected {(*idx.shape, corpus.VOCAB_SIZE)}"
        )
    return logits


def _train_step(state: list, lr_multiplier, x: torch.Tensor, y: torch.Tensor, step: int, steps: int) -> float:
    """Worker job: one step; the harness computes the loss, the candidate's optimiser updates."""
    model, optimizer, base_lrs, device = state
    multiplier = float(lr_multiplier(step, steps))
    if not _isfinite(multiplier):
        raise CandidateError(f"lr_multiplier({step}) is not finite")
    for group, base in zip(optimizer.param_groups, base_lrs, strict=False):
        group["lr"] = base * multiplier
    model.train()
    x, y = x.to(device), y.to(device)
    logits = _logits(model, x)
    loss = _cross_entropy(logits.reshape(-1, corpus.VOCAB_SIZE).float(), y.reshape(-1))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    value = float(loss.detach())
    if device == "cuda":
        torch.cuda.synchronize()
    return value


def _eval_logits(state: list, idx: torch.Tensor) -> torch.Tensor:
    """Worker job: logits in eval mode, without gradients, copied to the CPU."""
    model, _, _, device = state
    model.eval()
    with torch.no_grad():
        return _logits(model, idx.to(device)).float().cpu().clone()


def _val_loss(session: CandidateSession, state: list, windows: torch.Tensor) -> float:
    """Mean next-byte cross-entropy on the validation windows; the targets never leave this thread."""
    total = 0.0
    for chunk in windows.split(32):
        logits = session.run("validation", _eval_logits, state, chunk[:, :-1].contiguous())
        total += float(_cross_entropy(logits.reshape(-1, corpus.VOCAB_SIZE), chunk[:, 1:].reshape(-1))) * len(
            chunk
        )
    return total / len(windows)


def _check_causal(session: CandidateSession, state: list, window: torch.Tensor, gen: torch.Generator) -> None:
    """Logits up to position t must not change when only bytes after t change."""
    idx = window[:-1].clone()
    cut = len(idx) // 2
    other = idx.clone()
    other[cut + 1 :] = torch.randint(0, corpus.VOCAB_SIZE, (len(idx) - cut - 1,), generator=gen)
    logits = session.run("causality probe", _eval_logits, state, torch.stack([idx, other]))
    before, after = logits[0, : cut + 1], logits[1, : cut + 1]
    if not torch.allclose(before, after, rtol=1e-4, atol=1e-4 * (1 + float(before.abs().max()))):
        raise CandidateError(
            f"the model is not causal: logits at positions <= {cut} changed when only later bytes changed"
        )


def evaluate(candidate_path: str, split: str = "train", seed: int = 0) -> dict:
    """Train the candidate on three seeds; CPU: mean validation loss, GPU: mean seconds to the target loss."""
    verify_files()
    on_gpu = torch.cuda.is_available()
    budget = GPU if on_gpu else CPU
    train, val = corpus.split(corpus.load_tokens(DATA_DIR / "corpus.txt"))
    windows = corpus.val_windows(val, budget.block, budget.val_windows * (2 if split != "train" else 1))
    base_seed = seed * 1000 + (10_000 if split != "train" else 0)
    losses, times, finals = [], [], []
    with CandidateSession(__file__, private_dirs=(str(DATA_DIR),), threads=1) as session:
        build_model, build_optimizer, lr_multiplier = session.import_names(
            candidate_path, ("build_model", "build_optimizer", "lr_multiplier")
        )
        verify_files()
        for index in range(budget.seeds):
            gen = torch.Generator().manual_seed(base_seed + index)
            state = session.run(
                "build", _build, build_model, build_optimizer, base_seed + index, budget.steps, budget.block
            )
            _check_causal(session, state, windows[0], gen)  # fail fast; probed again after training
            train_ns, reached, loss, val_loss = 0, None, float("nan"), WORST_LOSS
            for step in range(budget.steps):
                x, y = corpus.batch(train, budget.batch, budget.block, gen)
                start = monotonic_ns()
                loss = session.run(
                    f"train step {step}", _train_step, state, lr_multiplier, x, y, step, budget.steps
                )
                train_ns += monotonic_ns() - start
                if not _isfinite(loss) or loss > WORST_LOSS:
                    break
                if budget.target is not None and (step + 1) % budget.eval_every == 0:
                    val_loss = _val_loss(session, state, windows)
                    if val_loss <= budget.target:
                        reached = train_ns / 1e9
                        break
            if _isfinite(loss) and loss <= WORST_LOSS:
                val_loss = _val_loss(session, state, windows)
                _check_causal(session, state, windows[0], gen)
            val_loss = val_loss if _isfinite(val_loss) else WORST_LOSS
            losses.append(min(val_loss, WORST_LOSS))
            finals.append(loss if _isfinite(loss) else WORST_LOSS)
            times.append(reached if reached is not None else 2 * train_ns / 1e9 + 60.0)
            session.release(state)
        session.finish()
    verify_files()
    mean_loss = sum(losses) / len(losses)
    metrics = {f"val_loss_seed{i}": v for i, v in enumerate(losses)}
    if on_gpu:
        score = sum(times) / len(times)
        feedback = (
            f"mean time to validation loss {budget.target}: {score:.2f} s over {budget.seeds} seeds "
            f"(val losses {', '.join(f'{v:.3f}' for v in losses)})"
        )
    else:
        score = mean_loss
        feedback = (
            f"validation loss after {budget.steps} steps (batch {budget.batch} x {budget.block} bytes), "
            f"mean of {budget.seeds} seeds: {mean_loss:.4f} nats/byte "
            f"(seeds: {', '.join(f'{v:.3f}' for v in losses)}; final train loss {finals[-1]:.3f})"
        )
    return {
        "score": score,
        "val_loss": mean_loss,
        "train_loss": sum(finals) / len(finals),
        "on_gpu": 1.0 if on_gpu else 0.0,
        **metrics,
        "feedback": feedback,
    }
