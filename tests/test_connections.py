"""Connections cannot starve the daemon: half-sent requests beyond its descriptor limit leave /healthz and
/metrics answering, are closed at the header deadline, and leave the log a few lines long."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from pathlib import Path

import httpx
import pytest

from benchd.server.connections import HEADER_SECONDS, RepeatFilter
from benchd.server.daemon import listen

from .daemon_process import DaemonProcess

QUIET = '[busy_check]\nenabled = false\n[workloads.vae]\ninterval = "24h"\npresets = ["bs128"]\n'
DESCRIPTOR_LIMIT = 256
HALF_SENT = 320  # past the limit: each would hold a descriptor until the daemon had none left


def _half_sent(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # headers never finish
    return sock


@pytest.mark.slow
def test_half_sent_requests_past_the_descriptor_limit_do_not_starve_health_or_metrics(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, QUIET, descriptor_limit=DESCRIPTOR_LIMIT)
    held: list[socket.socket] = []
    try:
        daemon.start()
        cap = int(re.search(r"at most (\d+) connections", daemon.log.read_text()).group(1))  # type: ignore[union-attr]
        assert cap < DESCRIPTOR_LIMIT - 32
        held = [_half_sent(daemon.port) for _ in range(HALF_SENT)]
        for _ in range(5):  # each on a fresh connection, while every half-sent one is still open
            with httpx.Client(base_url=daemon.url, timeout=5) as fresh:
                assert fresh.get("/healthz").status_code == 200
                scrape = fresh.get("/metrics")
                assert scrape.status_code == 200 and "benchd_build_info" in scrape.text
        for _ in range(50):  # malformed requests: uvicorn logs each, on a handler of its own
            with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as garbage:
                garbage.sendall(b"NOT HTTP AT ALL\r\n\r\n")
                garbage.recv(1024)
        newest = held[-1]  # still connected: the older ones made way for it
        newest.settimeout(HEADER_SECONDS + 10)
        assert newest.recv(1024) == b""  # closed at the header deadline, without an answer
        log = daemon.log.read_text()
        assert len(log) < 20_000, log[-2000:]
        assert log.count("Too many open files") <= 1
        assert log.count("Invalid HTTP request received.") == 1  # the other 49 held back and counted
    finally:
        for sock in held:
            sock.close()
        daemon.close()


def test_a_repeated_log_line_is_written_once_per_interval_with_a_count() -> None:
    written: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            written.append(record.getMessage())

    handler = Collect()
    repeat = RepeatFilter(interval=3600)
    handler.addFilter(repeat)
    logger = logging.getLogger("benchd.test.repeat")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for _ in range(1000):
            logger.error("socket.accept() out of system resource")
        logger.error("another %s", "line")
        repeat.interval = 0  # the interval has passed
        logger.error("socket.accept() out of system resource")
    finally:
        logger.removeHandler(handler)
    assert written == [
        "socket.accept() out of system resource",
        "another line",
        "socket.accept() out of system resource (and 999 more like it in the last 0 s)",
    ]


def test_accepted_connections_send_without_waiting_for_acks() -> None:
    """The listening socket says it is TCP, so asyncio turns Nagle's algorithm off on every accepted
    connection: a kept-alive scrape's response is not held back for the client's delayed ACK."""
    listening = listen("127.0.0.1", 0)
    accepted: asyncio.Future[int] = asyncio.Future(loop=(loop := asyncio.new_event_loop()))

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    async def scenario() -> int:
        server = await loop.create_server(Probe, sock=listening)
        with socket.create_connection(listening.getsockname()[:2]):
            nodelay = await asyncio.wait_for(accepted, 10)
        server.close()
        await server.wait_closed()
        return nodelay

    try:
        assert loop.run_until_complete(scenario()) == 1
    finally:
        loop.close()
