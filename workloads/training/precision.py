"""How a trainer's steps run in each precision mode (docs/cli.md, `--precision`).

fp32 is float32 eager, as the published comparison ran. tf32 lets matmuls and
convolutions use TF32 on NVIDIA GPUs that have it (Ampere, compute capability
8.0, and newer). amp-bf16 and amp-fp16 run the forward pass under autocast;
fp16 also scales the loss (a GradScaler) so small gradients survive. Losses
are computed in float32 outside autocast: binary cross-entropy is not safe to
autocast. A mode the device cannot run is an UnsupportedPrecisionError with
the reason, before anything is timed: never a silent fallback to fp32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from benchd.catalog.spec import Precision as PrecisionMode

FP32 = PrecisionMode.FP32.value
REPORTED_FP32 = "float32"  # what runs before precision modes recorded, and what config identity hashes


AUTOCAST_DTYPES = {PrecisionMode.AMP_FP16.value: torch.float16, PrecisionMode.AMP_BF16.value: torch.bfloat16}


class UnsupportedPrecisionError(RuntimeError):
    """This device cannot run the requested precision; the message says why."""


@dataclass
class Precision:
    mode: str
    device_type: str
    dtype: torch.dtype | None = None  # autocast's, for the amp modes
    scaler: torch.amp.GradScaler | None = None

    @classmethod
    def for_device(cls, mode: str, device: torch.device) -> Precision:
        if mode == FP32:
            return cls(mode, device.type)
        if mode == PrecisionMode.TF32:
            _require_tf32(device)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            return cls(mode, device.type)
        dtype = AUTOCAST_DTYPES.get(mode)
        if dtype is None:
            raise UnsupportedPrecisionError(f"unknown precision {mode!r}")
        if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise UnsupportedPrecisionError(f"{mode}: {torch.cuda.get_device_name(device)} has no bfloat16")
        try:  # a backend without autocast for this dtype says so here, not midway through an epoch
            with torch.autocast(device.type, dtype=dtype):
                probe = torch.ones(4, 4, device=device)
                (probe @ probe).sum().item()
            scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
        except (RuntimeError, ValueError) as exc:
            raise UnsupportedPrecisionError(f"{mode} on {device.type}: {exc}") from None
        return cls(mode, device.type, dtype, scaler)

    @property
    def reported(self) -> str:
        """The precision a run records (and its config identity hashes)."""
        return REPORTED_FP32 if self.mode == FP32 else self.mode

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.dtype is None:
            yield
            return
        with torch.autocast(self.device_type, dtype=self.dtype):
            yield

    def stateful(self) -> list[torch.amp.GradScaler]:
        """The gradient scaler, whose scale a step can change, when there is one."""
        return [self.scaler] if self.scaler is not None else []

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Before gradients are clipped: they must be in their true scale."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer's step (skipped by the scaler when fp16 gradients overflowed)."""
        if self.scaler is not None:
            self.scaler.step(optimizer)
        else:
            optimizer.step()

    def update(self) -> None:
        """Once per training step, after every optimizer stepped: the scaler adjusts its scale."""
        if self.scaler is not None:
            self.scaler.update()


def _require_tf32(device: torch.device) -> None:
    if device.type != "cuda":
        raise UnsupportedPrecisionError(f"tf32 runs on NVIDIA GPUs (Ampere and newer), not on {device.type}")
    major, minor = torch.cuda.get_device_capability(device)
    if major < 8:
        name = torch.cuda.get_device_name(device)
        raise UnsupportedPrecisionError(
            f"tf32 needs compute capability 8.0 or newer; {name} is {major}.{minor}"
        )
