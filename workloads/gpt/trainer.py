"""GPT on WikiText-2: contiguous chunks of the context length, AdamW, gradients clipped to 1.0.

One epoch is one pass over the training tokens, cut into sequences of
`context` tokens (each predicting the next token at every position),
visited in a fresh seeded order each epoch, whole batches only so every step
has one shape. The token stream lives on the device in both timings. No
published script exists to reproduce, so reference timing is the usual
training loop: the loss read to the host every step and logged every tenth
(a loop's logging is part of what it costs); device timing reads nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.nn import functional

from benchd.datasets import wikitext
from benchd.workloads.gpt.model import GPT
from benchd.workloads.training.base import StepLog, Trainer, TrainerSpec, parameter_count, steps_for_fraction
from benchd.workloads.training.precision import Precision

LEARNING_RATE = 6e-4
BETAS = (0.9, 0.95)
WEIGHT_DECAY = 0.1
CLIP = 1.0
LOG_INTERVAL = 10

Batch = tuple[torch.Tensor, torch.Tensor]


def sequences(tokens: torch.Tensor, context: int) -> torch.Tensor:
    """(n, context + 1): every whole window of context inputs and the token after each, back to back."""
    count = (tokens.size(0) - 1) // context
    if count == 0:
        raise ValueError(f"{tokens.size(0)} tokens cannot fill one sequence of {context}")
    starts = torch.arange(count) * context
    return tokens[starts.unsqueeze(1) + torch.arange(context + 1)]


def _inputs_and_targets(rows: torch.Tensor) -> Batch:
    """Each row's first `context` tokens, and the `context` after them (views: the probe's batches must
    have the real ones' strides too, or a compiled model meets a new graph in the first epoch)."""
    return rows[:, :-1], rows[:, 1:]


def optimizer_for(model: torch.nn.Module, fused: bool) -> torch.optim.AdamW:
    """AdamW with GPT-2's decay rule: matrices and embeddings decay, biases and LayerNorm gains do not."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in parameters if p.dim() >= 2], "weight_decay": WEIGHT_DECAY},
        {"params": [p for p in parameters if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=LEARNING_RATE, betas=BETAS, fused=fused)


class GptTrainer(Trainer):
    def __init__(self, spec: TrainerSpec) -> None:
        corpus = wikitext.tokenize(spec.data_path)
        options = spec.options
        self.vocab, self.context = len(corpus.words), options["context"]
        self.device = spec.device
        self.batch_size = spec.batch_size
        self.data = sequences(torch.from_numpy(corpus.ids["train"]), self.context).to(spec.device)
        full_steps = len(self.data) // spec.batch_size
        if full_steps == 0:
            sequences_text = f"{len(self.data)} sequences of {self.context} tokens"
            raise ValueError(f"{sequences_text} cannot fill a batch of {spec.batch_size}")
        self.steps_per_epoch = steps_for_fraction(full_steps, spec.fraction)
        self.samples_per_epoch = self.steps_per_epoch * spec.batch_size * self.context
        self.generator = torch.Generator().manual_seed(spec.seed)
        self.precision = Precision.for_device(spec.precision, spec.device)
        model = GPT(self.vocab, options["width"], options["layers"], options["heads"], self.context)
        model = model.to(spec.device)
        # The fused kernel is CUDA's fastest AdamW; it takes gradient scaler steps too.
        self.optimizer = optimizer_for(model, fused=spec.device.type == "cuda")
        self.parameters = parameter_count(model)
        self.model = spec.prepared(model)
        self.log = StepLog(spec, "step {step}: loss {loss:.4f}", line_every=LOG_INTERVAL)
        self.model.train()

    def batches(self) -> Iterator[Batch]:
        order = torch.randperm(len(self.data), generator=self.generator).to(self.data.device)
        for step in range(self.steps_per_epoch):
            yield _inputs_and_targets(self.data[order[step * self.batch_size : (step + 1) * self.batch_size]])

    def step(self, batch: Batch, index: int) -> tuple[torch.Tensor, int]:
        inputs, targets = batch
        self.optimizer.zero_grad(set_to_none=True)
        with self.precision.autocast():
            logits = self.model(inputs)
        value = functional.cross_entropy(logits.float().view(-1, self.vocab), targets.reshape(-1))
        self.precision.backward(value)
        self.precision.unscale(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), CLIP)
        self.precision.step(self.optimizer)
        self.precision.update()
        self.log.read(index, loss=value)
        return value.detach(), targets.numel()

    def stateful(self) -> list:
        return [self.model, self.optimizer, *self.precision.stateful()]

    def probe_batches(self) -> list[tuple[Batch, int]]:
        """Every step has one shape: a batch of made-up token ids (reading them draws nothing)."""
        rows = torch.zeros(self.batch_size, self.context + 1, dtype=torch.long, device=self.device)
        return [(_inputs_and_targets(rows), self.steps_per_epoch)]
