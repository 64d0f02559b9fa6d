"""Transformer word language model: embedding, sinusoidal positions, encoder stack, decoder."""

from __future__ import annotations

import math

import torch
from torch import nn

HEADS = 2
DROPOUT = 0.2


class PositionalEncoding(nn.Module):
    table: torch.Tensor  # a buffer: (max_len, 1, d_model)

    def __init__(self, d_model: int, dropout: float, max_len: int = 5000) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        position = torch.arange(max_len, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        table = torch.zeros(max_len, 1, d_model)
        table[:, 0, 0::2] = torch.sin(position * div_term)
        table[:, 0, 1::2] = torch.cos(position * div_term)
        self.register_buffer("table", table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(x + self.table[: x.size(0)])


class TransformerLM(nn.Module):
    """Sequence-first (seq, batch) like the reference; post-norm layers and no norm after the stack.

    The May-2022 example, which the published comparison ran, built its
    nn.TransformerEncoder without a final LayerNorm; one added there changes
    the parameter count and makes training at lr 20 diverge.
    """

    def __init__(self, vocab: int, emsize: int, nlayers: int, nhid: int) -> None:
        super().__init__()
        self.emsize = emsize
        # Built in the example's order, so a seed draws the example's weights (and its parameters are
        # listed, clipped and updated in its order).
        self.positions = PositionalEncoding(emsize, DROPOUT)
        layer = nn.TransformerEncoderLayer(emsize, HEADS, nhid, DROPOUT, activation="relu")
        self.encoder = nn.TransformerEncoder(layer, nlayers, enable_nested_tensor=False)
        self.embedding = nn.Embedding(vocab, emsize)
        self.decoder = nn.Linear(emsize, vocab)
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def forward(
        self, tokens: torch.Tensor, causal_mask: torch.Tensor, is_causal: bool | None = True
    ) -> torch.Tensor:
        """`is_causal=None` lets torch check the mask on every pass (a host read), as the example's call
        without the hint does; the kernels are the same once it finds the mask causal."""
        x = self.positions(self.embedding(tokens) * math.sqrt(self.emsize))
        x = self.encoder(x, mask=causal_mask, is_causal=is_causal)
        return torch.log_softmax(self.decoder(x), dim=-1)
