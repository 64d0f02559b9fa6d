"""What an epoch asks of torch: the multiset of aten operations and host reads, counted in the training
process, for `reference_parity.py --op-counts`.

Timing says whether two epochs take as long; counts say whether they do the same work, whatever the
machine's noise. A TorchDispatchMode sees every aten operation that reaches a kernel in the process
that trains (forward, backward, optimizer, the main process's collation and transforms), after
composite operations are decomposed, so `x.float()` on a float tensor counts nothing on either side.
A host read is `aten._local_scalar_dense` (`.item()`, a tensor in a condition): on an accelerator each
one waits for the device. DataLoader workers run in other processes and are not seen, on either side.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HOST_READ = "aten._local_scalar_dense.default"
# What benchd's epoch loop asks of torch beside the workload's own steps (harness._timed_epoch): the
# epoch's mean loss kept on the device, each step's loss detached and added, a zero before and one
# division and read after. It is subtracted from benchd's counts; everything else must match exactly.
BOOKKEEPING_PER_STEP = {"aten.add_.Tensor": 1, "aten.detach.default": 1}
BOOKKEEPING_PER_EPOCH = {"aten.zeros.default": 1, "aten.div.Tensor": 1, HOST_READ: 1}
# A workload's own share of it: DCGAN's epoch loss is D's and G's summed, one addition a step.
WORKLOAD_BOOKKEEPING_PER_STEP = {"dcgan": {"aten.add.Tensor": 1}}


def counter() -> Any:
    """A dispatch mode that adds each operation it sees to `.counts` (built on first use, so that
    importing this module does not import torch)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class OpCounter(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.counts: Counter[str] = Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.counts[str(func)] += 1
            return func(*args, **(kwargs or {}))

    return OpCounter()


@contextmanager
def counting(into: Counter[str]) -> Iterator[None]:
    mode = counter()
    with mode:
        yield
    into.update(mode.counts)


def counted_first_call(function: Callable[..., Any], into: Counter[str]) -> Callable[..., Any]:
    """`function`, whose first call's operations are added to `into` (the first epoch, on either side)."""
    calls = 0

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls > 1:
            return function(*args, **kwargs)
        with counting(into):
            return function(*args, **kwargs)

    return wrapper


def benchd_counts(
    workload: str, preset: str, batch_size: int, fraction: float, data_dir: Path, workers: int | None = None
) -> dict[str, Any]:
    """benchd's first reference-timed epoch on the CPU, in this process: its operations and steps."""
    from benchd import catalog, protocol
    from benchd.workloads import harness

    counts: Counter[str] = Counter()
    declared = catalog.get_workload(workload)
    config = catalog.build_config(declared, declared.preset(preset), batch_size=batch_size, fraction=fraction,
                                  workers=workers, epochs=1, timing="reference")  # fmt: skip
    read_fd, write_fd = os.pipe()
    events: list[dict[str, Any]] = []
    reader = threading.Thread(target=_read_events, args=(read_fd, events))
    reader.start()
    timed_epoch = harness._timed_epoch
    harness._timed_epoch = counted_first_call(timed_epoch, counts)
    try:
        spec = protocol.RunSpec(config, "cpu", data_dir).to_json()
        status = harness.guarded(harness.run_workload, spec, protocol.EventWriter(write_fd))
    finally:
        harness._timed_epoch = timed_epoch
        os.close(write_fd)
        reader.join()
    if status != 0:
        raise RuntimeError(f"benchd's {workload} run failed: {events[-1] if events else 'no events'}")
    (steps,) = [e["steps"] for e in events if e["event"] == "epoch_end"]
    return {"counts": without_bookkeeping(counts, steps, workload), "steps": steps}


def without_bookkeeping(counts: Counter[str], steps: int, workload: str) -> dict[str, int]:
    per_step = Counter(BOOKKEEPING_PER_STEP) + Counter(WORKLOAD_BOOKKEEPING_PER_STEP.get(workload, {}))
    own = Counter({name: n * steps for name, n in per_step.items()}) + Counter(BOOKKEEPING_PER_EPOCH)
    short = {name: n for name, n in own.items() if counts[name] < n}
    if short:
        raise RuntimeError(f"benchd's epoch did fewer operations than its own bookkeeping: {short}")
    return dict(counts - own)


def _read_events(fd: int, into: list[dict[str, Any]]) -> None:
    with os.fdopen(fd, "rb") as pipe:
        into.extend(json.loads(line) for line in pipe if line.strip())


def differences(example: dict[str, int], ours: dict[str, int]) -> list[tuple[str, int, int]]:
    """(operation, the example's count, benchd's count) wherever they differ, the largest gap first."""
    names = set(example) | set(ours)
    rows = [(name, example.get(name, 0), ours.get(name, 0)) for name in names]
    return sorted((r for r in rows if r[1] != r[2]), key=lambda r: (-abs(r[1] - r[2]), r[0]))
