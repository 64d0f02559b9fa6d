"""Transformer LM on WikiText-2: bptt 35, NLL loss, gradient norm clipped to 0.25, SGD lr 20."""

from __future__ import annotations

import torch
from torch import nn

from benchd.workloads.datasets import wikitext
from benchd.workloads.models.transformer import TransformerLM
from benchd.workloads.training.base import Trainer, TrainerSpec, parameter_count, steps_for_fraction

BPTT = 35
LEARNING_RATE = 20.0
CLIP = 0.25


def batchify(tokens: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut the stream into `batch_size` columns (remainder dropped): shape (rows, batch)."""
    rows = tokens.size(0) // batch_size
    if rows < 2:
        raise ValueError(f"{tokens.size(0)} tokens cannot fill two rows of batch {batch_size}")
    return tokens[: rows * batch_size].view(batch_size, -1).t().contiguous()


class TransformerTrainer(Trainer):
    def __init__(self, spec: TrainerSpec) -> None:
        corpus = wikitext.tokenize(spec.data_path)
        self.vocab = len(corpus.words)
        self.device = spec.device
        # The whole stream lives on the device, as in the reference: no loading inside the epoch.
        self.data = batchify(torch.from_numpy(corpus.ids["train"]), spec.batch_size).to(spec.device)
        self.starts = list(range(0, self.data.size(0) - 1, BPTT))
        self.steps_per_epoch = steps_for_fraction(len(self.starts), spec.fraction)
        self.starts = self.starts[: self.steps_per_epoch]
        self.samples_per_epoch = sum(self._seq_len(i) for i in self.starts) * spec.batch_size
        options = spec.options
        self.model = TransformerLM(self.vocab, options["emsize"], options["nlayers"], options["nhid"]).to(
            spec.device
        )
        self.criterion = nn.NLLLoss()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=LEARNING_RATE)
        self.parameters = parameter_count(self.model)
        self.masks: dict[int, torch.Tensor] = {}
        self.model.train()

    def _seq_len(self, start: int) -> int:
        return min(BPTT, self.data.size(0) - 1 - start)

    def _mask(self, length: int) -> torch.Tensor:
        if length not in self.masks:
            self.masks[length] = nn.Transformer.generate_square_subsequent_mask(length, device=self.device)
        return self.masks[length]

    def batches(self):
        for start in self.starts:
            length = self._seq_len(start)
            yield self.data[start : start + length], self.data[start + 1 : start + 1 + length].reshape(-1)

    def step(self, batch) -> tuple[torch.Tensor, int]:
        inputs, targets = batch
        self.optimizer.zero_grad()
        output = self.model(inputs, self._mask(inputs.size(0)))
        value = self.criterion(output.view(-1, self.vocab), targets)
        value.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), CLIP)
        self.optimizer.step()
        return value.detach(), targets.numel()
