"""The child -> parent event stream: one JSON object per line on a dedicated pipe.

Stdout is left to libraries that print; events travel on their own file
descriptor so nothing a library writes can corrupt them. Both sides import
this module, so it stays free of torch.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

STARTED = "started"
EPOCH_START = "epoch_start"
PROGRESS = "progress"
EPOCH_END = "epoch_end"
FINISHED = "finished"
FAILED = "failed"

EVENTS = (STARTED, EPOCH_START, PROGRESS, EPOCH_END, FINISHED, FAILED)

# Phases of an epoch in an `epoch_end` event's `phases` (seconds each; absent when not run).
PHASE_DATA_WAIT = "data_wait"
PHASE_STEPS = "steps"
PHASE_VALIDATION = "validation"
PHASE_SIDE_WORK = "side_work"
PHASES = (PHASE_DATA_WAIT, PHASE_STEPS, PHASE_VALIDATION, PHASE_SIDE_WORK)

# Failure kinds the child reports in a `failed` event.
FAILURE_OOM = "oom"
FAILURE_ERROR = "error"


class ProtocolError(ValueError):
    """A line on the event pipe that is not a well-formed event."""


class EventWriter:
    """Writes events to the pipe inherited from the parent.

    Each event is written with a single os.write loop and no buffering, so the
    parent sees it as soon as the child emits it, and a child that dies right
    after emitting still delivered the event.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def emit(self, event: str, t: float | None = None, **fields: Any) -> None:
        payload = {"event": event, "t": time.monotonic() if t is None else t, **fields}
        data = (json.dumps(payload, separators=(",", ":")) + "\n").encode()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def close(self) -> None:
        os.close(self._fd)


def decode(line: bytes) -> dict[str, Any]:
    """Parse one line; raise ProtocolError naming what is wrong."""
    try:
        payload = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"event line is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ProtocolError("event line is not a JSON object")
    if payload.get("event") not in EVENTS:
        raise ProtocolError(f"unknown event {payload.get('event')!r}")
    if not isinstance(payload.get("t"), (int, float)):
        raise ProtocolError(f"event {payload['event']!r} has no numeric t")
    return payload
