"""The /metrics endpoint: a registry's exposition, rendered at most once a second.

Apart from the collector (metrics.py), which decides what the figures are,
this decides how often they are rendered and in which format.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class CachedExposition:
    """The /metrics endpoint: renders at most once per MAX_AGE_SECONDS for each format.

    Many scrapers (several Prometheus replicas, dashboards, people) then cost
    one rendering a second between them, and a scrape is answered from bytes
    already made; the figures are at most that old.
    """

    MAX_AGE_SECONDS = 1.0

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._rendered: dict[str, tuple[float, bytes]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        accept = Headers(scope=scope).get("accept", "")
        encoder, content_type = choose_encoder(accept)
        now = time.monotonic()
        cached = self._rendered.get(content_type)
        if cached is None or now - cached[0] > self.MAX_AGE_SECONDS:
            # In a worker thread: the event loop stays free for /healthz whatever the collector waits on.
            cached = (now, await run_in_threadpool(encoder, self._registry))
            self._rendered[content_type] = cached
        response = Response(cached[1], media_type=None, headers={"Content-Type": content_type})
        await response(scope, receive, send)
