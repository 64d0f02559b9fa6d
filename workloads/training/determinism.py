"""Deterministic runs: what makes a run repeat bit for bit, and the fingerprint that shows it did.

Two deterministic runs of one config on one software stack (stack_id) must
produce the same loss at every step and the same final weights, whichever
device of the same model runs them; a device that does not is computing
wrong answers (docs/workloads.md, "Deterministic runs"). The fingerprint is
read without slowing an epoch: each step's loss stays on the device until
the epoch's closing synchronization, and the weights are hashed after the
last epoch.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import torch

from benchd import __version__
from benchd.catalog.spec import Precision
from benchd.workloads.training.base import Trainer

CUBLAS_WORKSPACE = ":4096:8"  # cuBLAS's documented setting for reproducible results (CUDA 10.2 and newer)
FLIPPED_BIT = 30  # float32's top exponent bit: the value scales by 2**128 or 2**-128


def prepare_environment() -> None:
    """Before torch initialises CUDA: cuBLAS picks reproducible workspaces only when told here."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)


def enable(precision: str) -> None:
    """Deterministic kernels only (an operation without one raises, naming itself, at its first call),
    cuDNN without autotuning, and no TF32 unless the precision is tf32."""
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    if precision != Precision.TF32:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def stack(device: torch.device, device_name: str, driver: str | None, precision: str) -> dict[str, Any]:
    """What bit-exactness depends on besides the config: the same values here, the same bits out."""
    cuda = device.type == "cuda"
    return {
        "device": device_name,
        "driver": driver,
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "torch": torch.__version__,
        "benchd": __version__,
        "precision": precision,
        "threads": torch.get_num_threads(),
    }


def stack_id(facts: dict[str, Any]) -> str:
    """12 hex characters of the SHA-256 of the stack as canonical JSON."""
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:12]


class LossBits:
    """Each step's loss of one epoch, kept on the device and read once, after the epoch's clock stops."""

    def __init__(self) -> None:
        self._losses: list[torch.Tensor] = []

    def add(self, loss: torch.Tensor) -> None:
        self._losses.append(loss.detach().reshape(1))

    def hex(self) -> str:
        """The epoch's losses as float32 (exact for every loss dtype benchd trains with), little-endian
        hex, 8 characters a step."""
        if not self._losses:
            return ""
        values = torch.cat(self._losses).to("cpu", torch.float32)
        self._losses.clear()
        return values.numpy().astype("<f4").tobytes().hex()


def weights_sha256(trainer: Trainer) -> str:
    """A hash of every model's final weights and buffers: names, dtypes, shapes and exact bytes."""
    digest = hashlib.sha256()
    for module in _models(trainer):
        for name, tensor in sorted(module.state_dict().items()):
            value = tensor.detach().to("cpu").contiguous()
            digest.update(f"{name}:{value.dtype}:{tuple(value.shape)}".encode())
            # As bytes, whatever the dtype (numpy has no bfloat16); a 0-d buffer (a step count) as 1-d.
            digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def flip_bit(trainer: Trainer) -> str:
    """Flip FLIPPED_BIT of one weight: the largest-magnitude element of the first model's last
    one-dimensional float32 parameter (a bias or a norm's scale, which every sample's output depends on,
    unlike a weight whose input may be zero). Says which, for the selftest's report."""
    model = _models(trainer)[0]
    candidates = [(n, p) for n, p in model.named_parameters() if p.dtype == torch.float32]
    name, parameter = next(((n, p) for n, p in reversed(candidates) if p.dim() == 1), candidates[-1])
    with torch.no_grad():
        flat = parameter.view(-1)
        index = int(flat.abs().argmax())
        bits = flat[index : index + 1].view(torch.int32)
        before = float(flat[index])
        bits ^= torch.tensor(1 << FLIPPED_BIT, dtype=torch.int32, device=bits.device)
        after = float(flat[index])
    return f"bit {FLIPPED_BIT} of {name}[{index}]: {before!r} -> {after!r}"


def _models(trainer: Trainer) -> list[torch.nn.Module]:
    return [item for item in trainer.stateful() if isinstance(item, torch.nn.Module)]
