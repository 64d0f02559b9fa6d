"""Transformer LM on WikiText-2: bptt 35, NLL loss, gradient norm clipped to 0.25, SGD lr 20.

Reference timing is the example's own epoch: `train()` with a `loss.item()`
every step and a parameter-by-parameter SGD update, then `evaluate()` over
the validation stream at batch 10, and after it (untimed) the learning rate
divided by 4 when validation did not improve. Its causal mask is built as
the example built it (a float mask from a boolean triangle), kept for one
length at a time, and handed to the encoder without the causal hint, so
torch checks it on every pass as it does the example's. Device timing runs the training steps alone with
torch's SGD, a constant learning rate, and masks built once per length and
declared causal.
"""

from __future__ import annotations

import torch
from torch import nn

from benchd.datasets import wikitext
from benchd.workloads.training.base import StepLog, Trainer, TrainerSpec, parameter_count, steps_for_fraction
from benchd.workloads.training.precision import FP32, Precision
from benchd.workloads.transformer import BPTT
from benchd.workloads.transformer.model import TransformerLM

LEARNING_RATE = 20.0
CLIP = 0.25
EVAL_BATCH_SIZE = 10
LOG_INTERVAL = 200
ANNEAL = 4.0


def example_mask(length: int) -> torch.Tensor:
    """0 on and below the diagonal, -inf above, made on the host from a boolean lower triangle the way the
    May-2022 example made it; reference timing pays these operations where the example did."""
    lower = (torch.triu(torch.ones(length, length)) == 1).transpose(0, 1)
    return lower.float().masked_fill(lower == 0, float("-inf")).masked_fill(lower == 1, 0.0)


def batchify(tokens: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut the stream into `batch_size` columns (remainder dropped): shape (rows, batch)."""
    rows = tokens.size(0) // batch_size
    if rows < 2:
        raise ValueError(f"{tokens.size(0)} tokens cannot fill two rows of batch {batch_size}")
    return tokens[: rows * batch_size].view(batch_size, -1).t().contiguous()


def chunk_starts(stream: torch.Tensor, fraction: float) -> list[int]:
    """Where each bptt chunk of a batchified stream begins, cut to the epoch's fraction."""
    starts = list(range(0, stream.size(0) - 1, BPTT))
    return starts[: steps_for_fraction(len(starts), fraction)]


def chunk(stream: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs of up to bptt rows from `start`, and the next token of each as the flat target."""
    length = min(BPTT, stream.size(0) - 1 - start)
    return stream[start : start + length], stream[start + 1 : start + 1 + length].reshape(-1)


def _by_length(
    stream: torch.Tensor, starts: list[int]
) -> list[tuple[tuple[torch.Tensor, torch.Tensor], int]]:
    """One chunk of each length among `starts`, with how many chunks have it (only the last can be short)."""
    first, last = chunk(stream, starts[0]), chunk(stream, starts[-1])
    if len(starts) == 1 or last[0].size(0) == first[0].size(0):
        return [(first, len(starts))]
    return [(first, len(starts) - 1), (last, 1)]


class TransformerTrainer(Trainer):
    def __init__(self, spec: TrainerSpec) -> None:
        corpus = wikitext.tokenize(spec.data_path)
        self.vocab = len(corpus.words)
        self.device = spec.device
        self.reference = spec.reference
        # The whole stream lives on the device, as in the reference: no loading inside the epoch.
        self.data = batchify(torch.from_numpy(corpus.ids["train"]), spec.batch_size).to(spec.device)
        self.starts = chunk_starts(self.data, spec.fraction)
        self.steps_per_epoch = len(self.starts)
        self.samples_per_epoch = sum(chunk(self.data, i)[1].numel() for i in self.starts)
        self.has_validation = self.reference
        if self.reference:
            self.valid = batchify(torch.from_numpy(corpus.ids["valid"]), EVAL_BATCH_SIZE).to(spec.device)
            self.valid_starts = chunk_starts(self.valid, spec.fraction)
        options = spec.options
        model = TransformerLM(self.vocab, options["emsize"], options["nlayers"], options["nhid"]).to(
            spec.device
        )
        self.criterion = nn.NLLLoss()
        self.lr = LEARNING_RATE
        self.best_validation: float | None = None
        self.last_validation: float | None = None
        self.precision = Precision.for_device(spec.precision, spec.device)
        # The reference updated each parameter by hand; float32 reference runs still do. Other precisions
        # use torch's SGD, the same update, which a gradient scaler can drive.
        manual = self.reference and self.precision.mode == FP32
        self.optimizer = None if manual else torch.optim.SGD(model.parameters(), lr=self.lr)
        self.parameters = parameter_count(model)
        self.model = spec.prepared(model)
        self.masks: dict[int, torch.Tensor] = {}  # device timing: one per length
        self.reference_mask: torch.Tensor | None = None  # reference timing: the last length's only
        self.log = StepLog(spec, "step {step}: loss {loss:5.2f}", line_every=LOG_INTERVAL, skip_first=True)
        self.model.train()

    def _mask(self, length: int) -> torch.Tensor:
        if self.reference:
            if self.reference_mask is None or self.reference_mask.size(0) != length:
                self.reference_mask = example_mask(length).to(self.device)
            return self.reference_mask
        if length not in self.masks:
            self.masks[length] = nn.Transformer.generate_square_subsequent_mask(length, device=self.device)
        return self.masks[length]

    def _loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        with self.precision.autocast():
            output = self.model(inputs, self._mask(inputs.size(0)), None if self.reference else True)
        return self.criterion(output.view(-1, self.vocab).float(), targets)

    def batches(self):
        self.model.train()
        return (chunk(self.data, start) for start in self.starts)

    def step(self, batch, index: int) -> tuple[torch.Tensor, int]:
        inputs, targets = batch
        self.model.zero_grad()
        value = self._loss(inputs, targets)
        self.precision.backward(value)
        if self.optimizer is not None:
            self.precision.unscale(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), CLIP)
        if self.optimizer is not None:
            self.precision.step(self.optimizer)
            self.precision.update()
        else:  # through `.data`, outside autograd, as the example's update
            for parameter in self.model.parameters():
                if parameter.grad is not None:
                    parameter.data.add_(parameter.grad, alpha=-self.lr)
        self.log.read(index, loss=value)
        return value.detach(), targets.numel()

    def validate(self) -> float:
        """Mean NLL per token over the validation stream (its fraction), read step by step."""
        self.model.eval()
        total, tokens = 0.0, 0
        with torch.no_grad():
            for start in self.valid_starts:
                inputs, targets = chunk(self.valid, start)
                total += len(inputs) * self._loss(inputs, targets).item()
                tokens += len(inputs)
        self.model.train()
        self.last_validation = total / tokens
        return self.last_validation

    def stateful(self) -> list:
        return [self.model, *([self.optimizer] if self.optimizer else []), *self.precision.stateful()]

    def probe_batches(self) -> list[tuple[tuple[torch.Tensor, torch.Tensor], int]]:
        """Real chunks (reading them draws nothing): bptt rows, and the last chunk when it is shorter."""
        return _by_length(self.data, self.starts)

    def probe_side_passes(self) -> None:
        """Validation's passes, in eval mode without gradients, one per chunk length."""
        if not self.reference:
            return
        self.model.eval()
        with torch.no_grad():
            for (inputs, targets), _count in _by_length(self.valid, self.valid_starts):
                self._loss(inputs, targets)
        self.model.train()

    def end_epoch(self) -> None:
        """The reference's schedule: keep lr while validation improves, else divide it by 4."""
        if self.last_validation is None:
            return
        if self.best_validation is None or self.last_validation < self.best_validation:
            self.best_validation = self.last_validation
        else:
            self.lr /= ANNEAL
            for group in self.optimizer.param_groups if self.optimizer is not None else ():
                group["lr"] = self.lr
