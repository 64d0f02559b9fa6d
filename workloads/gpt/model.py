"""A decoder-only transformer in GPT-2's layout.

Pre-LayerNorm blocks with biases everywhere, a GELU MLP four times the
width, learned positions, a final LayerNorm and an output layer that is the
token embedding; no dropout. Attention goes through
`scaled_dot_product_attention`, so each backend picks its fused kernel.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

from benchd.workloads.gpt import MLP_RATIO

INIT_STD = 0.02
RESIDUAL_OUTPUTS = ("attention.out.weight", "mlp.2.weight")  # each block's last layer before the residual add


class CausalSelfAttention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = (
            t.view(batch, length, self.heads, width // self.heads).transpose(1, 2)
            for t in self.qkv(x).split(width, dim=2)
        )
        y = functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(batch, length, width))


class Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm_attention = nn.LayerNorm(width)
        self.attention = CausalSelfAttention(width, heads)
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, MLP_RATIO * width),
            nn.GELU(approximate="tanh"),
            nn.Linear(MLP_RATIO * width, width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm_attention(x))
        return x + self.mlp(self.norm_mlp(x))


class GPT(nn.Module):
    """Batch-first: tokens (batch, length) to logits (batch, length, vocab)."""

    positions: torch.Tensor  # a buffer: 0 .. context - 1

    def __init__(self, vocab: int, width: int, layers: int, heads: int, context: int) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, width)
        self.position_table = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.tokens.weight
        self.register_buffer("positions", torch.arange(context), persistent=False)
        self._init_weights(layers)

    def _init_weights(self, layers: int) -> None:
        """GPT-2's: normal(0, 0.02) weights, zero biases, and each residual branch's last layer scaled by
        1/sqrt(2 x layers) so the residual stream's variance does not grow with depth."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, 0.0, INIT_STD)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for name, parameter in self.named_parameters():
            if name.endswith(RESIDUAL_OUTPUTS):
                nn.init.normal_(parameter, 0.0, INIT_STD / math.sqrt(2 * layers))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.tokens(tokens) + self.position_table(self.positions[: tokens.size(1)])
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))
