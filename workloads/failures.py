"""Sorting a workload's exception into the outcome it should be recorded as.

Never imports torch: classifying is what the harness does when a run fails,
and the failure may be torch itself failing to import. Torch's out-of-memory
types are recognised by their names and modules instead.
"""

from __future__ import annotations

from benchd.protocol import FAILURE_ERROR, FAILURE_OOM

# Allocators that raise a plain RuntimeError when they run out: MPS, and the CPU's (c10's
# DefaultCPUAllocator, e.g. "DefaultCPUAllocator: can't allocate memory: you tried to allocate ...").
_OOM_TEXTS = ("MPS backend out of memory", "DefaultCPUAllocator: can't allocate memory", "not enough memory")


def classify(exc: BaseException) -> tuple[str, str]:
    """Return (failure kind, one-line message) for an exception raised by a workload."""
    message = f"{type(exc).__name__}: {exc}".strip().splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, MemoryError) or _is_torch_oom(exc):
        return FAILURE_OOM, message
    if isinstance(exc, RuntimeError) and any(text in str(exc) for text in _OOM_TEXTS):
        return FAILURE_OOM, message
    return FAILURE_ERROR, message


def _is_torch_oom(exc: BaseException) -> bool:
    """torch.OutOfMemoryError (torch.cuda.OutOfMemoryError is the same class) or a subclass of it."""
    return any(
        cls.__name__ == "OutOfMemoryError" and cls.__module__.split(".")[0] == "torch"
        for cls in type(exc).__mro__
    )
