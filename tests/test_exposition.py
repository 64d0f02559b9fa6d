"""/metrics renders once per second at most, and no scrape but the first waits for a rendering."""

from __future__ import annotations

import asyncio
import threading

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from benchd.server.exposition import CachedExposition


class _GatedCollector:
    """Renders the number of renderings so far, each one held until the test opens the gate."""

    def __init__(self) -> None:
        self.renderings = 0
        self.gate = threading.Event()

    def collect(self):
        self.gate.wait(10)
        self.renderings += 1
        family = GaugeMetricFamily("renderings", "Renderings so far.")
        family.add_metric([], self.renderings)
        yield family


async def _scrape(endpoint: CachedExposition) -> bytes:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await endpoint({"type": "http", "method": "GET", "headers": [], "path": "/metrics"}, receive, send)
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_stale_bytes_are_served_while_one_rendering_runs() -> None:
    collector = _GatedCollector()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    endpoint = CachedExposition(registry)

    async def scenario() -> None:
        collector.gate.set()
        assert b"renderings 1.0" in await _scrape(endpoint)  # the first scrape waits for the first rendering
        collector.gate.clear()
        endpoint.MAX_AGE_SECONDS = 0.0  # from now on every scrape finds the bytes stale
        answers = await asyncio.gather(*(_scrape(endpoint) for _ in range(20)))
        assert all(b"renderings 1.0" in a for a in answers)  # none waited for the held rendering
        assert len(endpoint._rendering) == 1  # twenty stale scrapes started one rendering between them
        collector.gate.set()
        await asyncio.shield(next(iter(endpoint._rendering.values())))
        assert b"renderings 2.0" in await _scrape(endpoint)

    asyncio.run(scenario())
    assert collector.renderings in (2, 3)  # the last scrape may have started one more


class _FailingCollector:
    """Renders once, then fails every time."""

    def __init__(self) -> None:
        self.calls = 0

    def collect(self):
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("the scoreboard is gone")
        family = GaugeMetricFamily("renderings", "Renderings so far.")
        family.add_metric([], 1)
        yield family


def test_a_failed_rendering_is_logged_and_scrapes_keep_the_previous_bytes(caplog) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_FailingCollector())
    endpoint = CachedExposition(registry)

    async def scenario() -> None:
        assert b"renderings 1.0" in await _scrape(endpoint)
        endpoint.MAX_AGE_SECONDS = 0.0
        assert b"renderings 1.0" in await _scrape(endpoint)  # starts the rendering that fails
        await asyncio.gather(*endpoint._rendering.values(), return_exceptions=True)
        assert b"renderings 1.0" in await _scrape(endpoint)

    asyncio.run(scenario())
    assert "rendering /metrics failed; serving the previous exposition" in caplog.text
