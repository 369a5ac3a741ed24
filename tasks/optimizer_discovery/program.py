"""An optimiser update rule: the seed is plain AdamW (the baseline it is scored against)."""

import torch

# EVOLVE-BLOCK-START
LR, BETA1, BETA2, EPS, WEIGHT_DECAY = 3e-3, 0.9, 0.999, 1e-8, 0.01


def init_state(params: list[torch.Tensor]) -> dict:
    """First and second moment estimates, one pair per parameter."""
    return {"m": [torch.zeros_like(p) for p in params], "v": [torch.zeros_like(p) for p in params]}


def step(params: list[torch.Tensor], grads: list[torch.Tensor], state: dict, t: int) -> None:
    """One AdamW update, in place."""
    for p, g, m, v in zip(params, grads, state["m"], state["v"], strict=False):
        p.mul_(1 - LR * WEIGHT_DECAY)
        m.mul_(BETA1).add_(g, alpha=1 - BETA1)
        v.mul_(BETA2).addcmul_(g, g, value=1 - BETA2)
        m_hat = m / (1 - BETA1**t)
        v_hat = v / (1 - BETA2**t)
        p.addcdiv_(m_hat, v_hat.sqrt().add_(EPS), value=-LR)


# EVOLVE-BLOCK-END
