"""Sorting a workload's exception into the outcome it should be recorded as."""

from __future__ import annotations

from benchd.protocol import FAILURE_ERROR, FAILURE_OOM

# The MPS allocator raises a plain RuntimeError with this text when it runs out.
_MPS_OOM_TEXT = "MPS backend out of memory"


def classify(exc: BaseException) -> tuple[str, str]:
    """Return (failure kind, one-line message) for an exception raised by a workload."""
    message = f"{type(exc).__name__}: {exc}".strip().splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, MemoryError) or _is_torch_oom(exc):
        return FAILURE_OOM, message
    if isinstance(exc, RuntimeError) and _MPS_OOM_TEXT in str(exc):
        return FAILURE_OOM, message
    return FAILURE_ERROR, message


def _is_torch_oom(exc: BaseException) -> bool:
    import torch

    oom_types = tuple(t for t in (getattr(torch, "OutOfMemoryError", None), torch.cuda.OutOfMemoryError) if t)
    return isinstance(exc, oom_types)
