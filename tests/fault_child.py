"""A purpose-built child for the runner's tests: the real harness entry, a misbehaving body.

Run as `python tests/fault_child.py --spec JSON --events-fd N` with the spec's
`fault` naming what to do after the `started` event.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading

from benchd import protocol
from benchd.protocol import EventWriter
from benchd.workloads.harness import main


def _cuda_oom() -> None:
    import torch

    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def _mps_oom() -> None:
    raise RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB, other allocations: 1 GB)")


def _cpu_oom() -> None:
    """A real allocation the CPU allocator refuses."""
    import torch

    torch.empty(1 << 60, dtype=torch.uint8)


def _torch_broken() -> None:
    """torch fails to import, as on a host with a broken install."""
    sys.modules["torch"] = None  # type: ignore[assignment]
    import torch  # noqa: F401


def _unsupported_operator() -> None:
    raise NotImplementedError("The operator 'aten::foo' is not currently implemented for the MPS device")


# Faults that are an exception raised by the workload.
FAILURES = {"cuda_oom": _cuda_oom, "mps_oom": _mps_oom, "cpu_oom": _cpu_oom, "torch_broken": _torch_broken,
            "error": _unsupported_operator}  # fmt: skip


def misbehave(spec_json: str, events: EventWriter) -> None:
    """Raw, partial events on purpose: the parent must cope with whatever a child sends."""
    fault = json.loads(spec_json).get("fault", "none")  # a run request from the queue has none: behave
    if fault == "orphan":
        # A grandchild that inherits the event pipe, like a DataLoader worker.
        grandchild = subprocess.Popen(["sleep", "60"], pass_fds=(events._fd,))
        events.emit({"event": "started", "t": protocol.now(), "grandchild_pid": grandchild.pid})
        events.emit({"event": "finished", "t": protocol.now()})
        return
    if fault == "report_env":  # which of the daemon's secrets reached the child
        secrets = sorted(name for name in os.environ if name.startswith("BENCHD_TOKEN"))
        events.emit(
            {"event": "started", "t": protocol.now(), "secrets": secrets, "home": os.environ.get("HOME")}
        )
        events.emit({"event": "finished", "t": protocol.now()})
        return
    events.emit({"event": "started", "t": protocol.now(), "device": "cpu", "device_name": "test"})
    events.emit({"event": "epoch_start", "t": protocol.now(), "epoch": 0})
    if fault == "none":
        events.emit({"event": "epoch_end", "t": protocol.now(), "epoch": 0, "duration": 0.5, "samples": 10,
                     "steps": 1, "data_wait": 0.0, "loss": 1.0})  # fmt: skip
        events.emit({"event": "finished", "t": protocol.now()})
    elif fault in FAILURES:
        FAILURES[fault]()
    elif fault == "hang":
        threading.Event().wait()
    elif fault == "sigkill":
        print("about to be killed", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    elif fault == "segfault":
        ctypes.string_at(0)
    elif fault == "exit_silently":
        os._exit(3)
    elif fault == "garbage":
        os.write(events._fd, b"this is not json\n")
        threading.Event().wait()
    else:
        raise ValueError(f"unknown fault {fault!r}")


if __name__ == "__main__":
    sys.exit(main(body=misbehave))
