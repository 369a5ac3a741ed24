"""The speedrun's data loader: bytes of data/corpus.txt as tokens, split into train and validation."""

from __future__ import annotations

from pathlib import Path

import torch

VOCAB_SIZE = 256
VAL_FRACTION = 0.1


def load_tokens(path: Path) -> torch.Tensor:
    """Byte-level tokens (0..255) of the corpus file."""
    return torch.frombuffer(bytearray(Path(path).read_bytes()), dtype=torch.uint8).long()


def split(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Train = the first 90%, validation = the last 10% (never shown to the candidate)."""
    cut = int(len(tokens) * (1 - VAL_FRACTION))
    return tokens[:cut], tokens[cut:]


def batch(
    tokens: torch.Tensor, batch_size: int, block: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows: inputs and next-byte targets."""
    starts = torch.randint(0, len(tokens) - block - 1, (batch_size,), generator=gen)
    windows = torch.stack([tokens[s : s + block + 1] for s in starts.tolist()])
    return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()


def val_windows(tokens: torch.Tensor, block: int, count: int) -> torch.Tensor:
    """Evenly spaced validation windows of block + 1 tokens (fixed, so every candidate sees the same)."""
    stride = max(1, (len(tokens) - block - 1) // count)
    return torch.stack([tokens[i * stride : i * stride + block + 1] for i in range(count)])
