"""What a run computes: compilation before its first epoch; FLOPs per step and the peak after its last.

The compile warm-up runs real training steps on `Trainer.probe_batches()`
(one batch per shape the epoch will see) before the timer starts, so no
epoch pays for compiling, then puts back every weight, optimizer and scaler
state and the random generators, so the epochs train exactly as they would
have without it. FLOPs are counted after the timed epochs: steps run before
epoch 1 would warm the device (cuDNN's autotuning, lazily loaded kernels)
for an epoch whose figure, in reference timing, is meant to pay for that as
the published examples' first epochs did. The run records what these took;
none of it is inside an epoch's figure.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from benchd.workloads.device import synchronize
from benchd.workloads.peaks import Peak, published_peak
from benchd.workloads.training.base import Trainer
from benchd.workloads.training.precision import AUTOCAST_DTYPES, FP32

FLOP_COUNTER = "torch.utils.flop_counter"
MATMUL_SIZE = (
    1024  # large enough to reach a CPU's steady matmul rate, small enough to take well under a second
)
MATMUL_SECONDS = 0.2  # per trial; the best of three trials is the peak
MATMUL_DTYPES = {FP32: torch.float32, **AUTOCAST_DTYPES}


def _attention_flops(query_shape, key_shape, value_shape, *_args: Any, **_kwargs: Any) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _attention_backward_flops(
    _grad_out_shape, query_shape, key_shape, value_shape, *_args: Any, **_kwargs: Any
) -> int:
    """Model FLOPs: the four products of the gradients, twice the forward's two. torch counts a fifth,
    the fused kernels' recomputation of the scores, which is hardware work that MFU leaves out (PaLM,
    appendix B) and which the CPU's unfused path does not do: counting it would make a CUDA run's
    figure for the same model 2-3% larger than a CPU run's."""
    return 2 * sdpa_flop_count(query_shape, key_shape, value_shape)


def _attention_formulas() -> dict[Any, Any]:
    """Formulas for scaled_dot_product_attention's kernels, all (batch, heads, length, head size): the
    CPU's, which torch's counter (as of 2.14) does not know, so a CPU run would count no attention at
    all; and every backward, counted as model FLOPs. Kernels a build lacks are left out."""
    aten = torch.ops.aten
    forwards = ["_scaled_dot_product_flash_attention_for_cpu"]
    backwards = [
        "_scaled_dot_product_flash_attention_for_cpu_backward",
        "_scaled_dot_product_flash_attention_backward",
        "_scaled_dot_product_efficient_attention_backward",
        "_scaled_dot_product_cudnn_attention_backward",
    ]
    formulas: dict[Any, Any] = {getattr(aten, n): _attention_flops for n in forwards if hasattr(aten, n)}
    formulas.update({getattr(aten, n): _attention_backward_flops for n in backwards if hasattr(aten, n)})
    return formulas


ATTENTION_FORMULAS = _attention_formulas()


@contextmanager
def restored(trainer: Trainer, device: torch.device) -> Iterator[None]:
    """Steps inside change nothing the epochs see: state, gradients, random streams, the run log."""
    saved = [copy.deepcopy(item.state_dict()) for item in trainer.stateful()]
    logging, trainer.log.enabled = trainer.log.enabled, False
    indices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(indices, device_type=device.type):
            yield
    finally:
        trainer.log.enabled = logging
        for item, state in zip(trainer.stateful(), saved, strict=True):
            item.load_state_dict(state)
            if isinstance(item, torch.nn.Module):
                item.zero_grad(set_to_none=True)


def count_flops(trainer: Trainer, device: torch.device) -> tuple[int, int]:
    """FLOPs of one full training step and of one epoch's steps (forward and backward, every network),
    as PyTorch's FLOP counter counts them: matrix products and convolutions, not elementwise work.

    Counted in eager mode, so a compiled model's count is its eager model's.
    """
    per_step = per_epoch = 0
    with restored(trainer, device), torch.compiler.set_stance("force_eager"):
        for batch, steps in trainer.probe_batches():
            with FlopCounterMode(display=False, custom_mapping=ATTENTION_FORMULAS) as counter:
                trainer.step(batch, 0)
            per_step = per_step or counter.get_total_flops()
            per_epoch += counter.get_total_flops() * steps
    return per_step, per_epoch


def compile_warm_up(trainer: Trainer, device: torch.device) -> float:
    """Compile every graph an epoch will run (each batch shape, the side passes); return the seconds.

    From here on a recompilation fails the run rather than hide inside an
    epoch's figure (torch.compiler's fail_on_recompile stance).
    """
    with restored(trainer, device):
        synchronize(device)
        started = time.monotonic()
        for batch, _steps in trainer.probe_batches():
            trainer.step(batch, 0)
        trainer.probe_side_passes()
        synchronize(device)
        seconds = time.monotonic() - started
    torch.compiler.set_stance("fail_on_recompile")
    return seconds


def measured_matmul_peak(precision: str) -> Peak | str:
    """A CPU's peak, measured: the best of three timed runs of square matmuls in the precision's dtype,
    on the threads the run trains with."""
    dtype = MATMUL_DTYPES.get(precision)
    if dtype is None:
        return f"no matmul to measure for precision {precision!r} on a CPU"
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(MATMUL_SIZE, MATMUL_SIZE, generator=generator).to(dtype)
    b = torch.rand(MATMUL_SIZE, MATMUL_SIZE, generator=generator).to(dtype)
    torch.mm(a, b)  # first call: allocation and kernel selection
    best = 0.0
    for _trial in range(3):
        count, started = 0, time.monotonic()
        while (elapsed := time.monotonic() - started) < MATMUL_SECONDS or count == 0:
            torch.mm(a, b)
            count += 1
        best = max(best, 2 * MATMUL_SIZE**3 * count / elapsed)
    threads = torch.get_num_threads()
    return Peak(best, f"measured: {dtype} matmul {MATMUL_SIZE}x{MATMUL_SIZE}, threads: {threads}")


def peak_for(device: torch.device, device_name: str, precision: str) -> Peak | str:
    """The peak a run's MFU divides by: measured on a CPU, published for an accelerator; or why none."""
    if device.type == "cpu":
        return measured_matmul_peak(precision)
    return published_peak(device.type, device_name, precision)


def check_steps(trainer: Trainer, device: torch.device) -> None:
    """One step per batch shape, state put back: in a deterministic run an operation without a
    deterministic kernel raises here, naming itself, before anything is timed."""
    with restored(trainer, device):
        for batch, _steps in trainer.probe_batches():
            trainer.step(batch, 0)


def compute_facts(trainer: Trainer, device: torch.device, device_name: str) -> dict[str, Any]:
    """What the `finished` event adds to the run's `compute` object (docs/api.md): FLOPs and the peak,
    found after the timed epochs."""
    per_step, per_epoch = count_flops(trainer, device)
    facts: dict[str, Any] = {
        "flops_per_step": per_step,
        "flops_per_epoch": per_epoch,
        "counter": FLOP_COUNTER,
    }
    peak = peak_for(device, device_name, trainer.precision.mode)
    if isinstance(peak, Peak):
        facts["peak_flops"], facts["peak_source"] = peak.flops, peak.source
    else:
        facts["peak_unavailable"] = peak
    return facts
