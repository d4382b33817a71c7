"""Training data for the loop's tests: short windows of token ids with structure to learn.

Shared by the post-training, resume, distillation and distributed tests (every tier imports
it: tests/conftest.py puts this folder on ``sys.path``).
"""

from __future__ import annotations

import torch

SEQ = 16  # tokens per window


def windows(n: int = 64, seed: int = 0, seq: int = SEQ) -> torch.Tensor:
    """(n, seq) token ids below 256: arithmetic runs from a random start with a random step of 1
    or 2, so a tiny model has something to learn and a fixed seed gives the same batch."""
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, 200, (n, 1), generator=g)
    return (start + torch.arange(seq)[None, :] * torch.randint(1, 3, (n, 1), generator=g)) % 256
