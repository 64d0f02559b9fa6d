"""Connections cannot starve the daemon: a header deadline, a connection cap under the descriptor limit,
and a log that says a repeated error once per interval.

21,000 half-sent requests once held every descriptor the process had: /healthz
and /metrics stopped answering and asyncio logged "Too many open files" for
every refused accept. Three things prevent it:

- A request's headers must arrive within HEADER_SECONDS of the connection (or
  of the previous response, for a kept-alive one); otherwise the connection is
  closed without an answer. Uvicorn has no such deadline of its own.
- At most `max_connections`, fewer than the descriptor limit less what the
  daemon itself needs (store, logs, a run's pipes, sensors), and a listen
  backlog small enough that one burst of accepts stays inside that headroom. At the cap, the
  connection that has waited longest for its headers makes way for the new
  one, so a scrape that sends its request at once is served while idle
  connections pile up; with none waiting, the newcomer is closed.
- Repeated log lines (the same message from the same logger) are written once
  per REPEAT_INTERVAL_SECONDS, the next one saying how many were held back.
"""

from __future__ import annotations

import functools
import logging
import os
import resource
import time
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_SECONDS = 10.0
MAX_CONNECTIONS = 1024  # more concurrent clients than any benchd daemon has; each costs memory too
DESCRIPTOR_HEADROOM = 64  # the store, its log, a run's pipes and log, sensors, a child's start
# asyncio accepts up to the listen backlog in one go, before any connection_made can close a connection:
# a small backlog keeps that burst well inside the headroom (benchd's clients are few: Prometheus, probes,
# the CLI; a full kernel queue only makes a client retry its connect).
LISTEN_BACKLOG = 16
REPEAT_INTERVAL_SECONDS = 60.0


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int
    header_seconds: float = HEADER_SECONDS


def descriptors_in_use() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # not Linux: a conservative guess
        return 32


def connection_limits() -> ConnectionLimits:
    """The cap for this process: MAX_CONNECTIONS, or fewer when the descriptor limit is lower."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return ConnectionLimits(MAX_CONNECTIONS)
    room = soft - descriptors_in_use() - DESCRIPTOR_HEADROOM
    return ConnectionLimits(max(8, min(MAX_CONNECTIONS, room)))


class GuardedH11Protocol(H11Protocol):
    """Uvicorn's HTTP/1.1 protocol with a header deadline and a connection cap (see the module's notes)."""

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._header_timer: Any = None  # asyncio.TimerHandle while headers are awaited
        self.waiting_since = 0.0  # monotonic time the connection began waiting for its headers

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._await_headers()
        if len(self.connections) > self.limits.max_connections:
            waiting = [c for c in self.connections if isinstance(c, GuardedH11Protocol)
                       and c.awaiting_headers]  # fmt: skip
            oldest = min(waiting, key=lambda c: c.waiting_since)
            oldest.transport.close()  # this one, when it is the only one waiting

    @property
    def awaiting_headers(self) -> bool:
        return self._header_timer is not None

    def _await_headers(self) -> None:
        self.waiting_since = time.monotonic()
        self._header_timer = self.loop.call_later(self.limits.header_seconds, self._headers_too_late)

    def _headers_too_late(self) -> None:
        self._header_timer = None
        self.transport.close()  # nothing to answer: the client never finished asking

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        waiting = self.conn.their_state is h11.IDLE and not self.transport.is_closing()
        if waiting and self._header_timer is None:  # a kept-alive connection began its next request
            self._await_headers()
        elif not waiting and self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)


def protocol_factory(limits: ConnectionLimits) -> Any:
    """What uvicorn.Config(http=...) takes: called with uvicorn's arguments for each connection."""
    return functools.partial(GuardedH11Protocol, limits=limits)


class RepeatFilter(logging.Filter):
    """Lets the first of a run of identical log lines through, holds back the rest for an interval, and
    counts them onto the next one let through."""

    def __init__(self, interval: float = REPEAT_INTERVAL_SECONDS) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[tuple[str, str], float] = {}  # (logger, message template) -> when let through
        self._held: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        if now - self._last.get(key, -self.interval) < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} (and {held} more like it in the last {self.interval:.0f} s)"
        if len(self._last) > 1024:  # many distinct messages: forget the oldest
            for stale in sorted(self._last, key=self._last.__getitem__)[:512]:
                self._last.pop(stale, None)
        return True
