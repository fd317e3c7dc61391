"""A tiny MLP block for the torch import: ``lego map examples/models/tiny_mlp.py:build``.

``build()`` returns ``(module, example_inputs)`` as :func:`mapping.fx_import.load_user_model`
expects: a pre-norm GELU MLP with a residual on 8 tokens of 32 features, fp32, random weights.
It imports (:func:`mapping.fx_import.import_module`) to a LayerNorm, two linears, a GELU and an
add: 8 x 32 x 128 x 2 = 65,536 MACs.
"""

from __future__ import annotations

import torch
from torch import nn


class TinyMLP(nn.Module):
    """``x + fc2(gelu(fc1(norm(x))))``."""

    def __init__(self, features: int = 32, hidden: int = 128) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(features)
        self.fc1 = nn.Linear(features, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(self.act(self.fc1(self.norm(x))))


def build() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """The model (eval mode, seed 0, the global RNG left as it was) and one input of 8 tokens."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return TinyMLP().eval(), (torch.randn(8, 32),)
