"""Cheat: a non-causal model (attention sees later bytes, i.e. the very targets it predicts)."""

import os
import sys

import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__))))
import speedrun_model  # noqa: E402
from speedrun_model import build_optimizer, lr_multiplier  # noqa: E402,F401


def _bidirectional(q, k, v, is_causal=False, **kwargs):
    return F.scaled_dot_product_attention(q, k, v)


speedrun_model.attention = _bidirectional


def build_model(vocab_size, block_size):
    return speedrun_model.build_model(vocab_size, block_size)
