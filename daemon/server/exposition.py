"""The /metrics endpoint: a registry's exposition, rendered at most once a second.

Apart from the collector (metrics.py), which decides what the figures are,
this decides how often they are rendered and in which format.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

Encoder = Callable[[CollectorRegistry], bytes]
log = logging.getLogger(__name__)


def _retrieved(task: asyncio.Task) -> None:
    """A background rendering's failure is logged by _render: mark it seen so asyncio does not again."""
    if not task.cancelled():
        task.exception()


class CachedExposition:
    """The /metrics endpoint: renders at most once per MAX_AGE_SECONDS for each format.

    Many scrapers (several Prometheus replicas, dashboards, people) then cost
    one rendering a second between them, and a scrape is answered from bytes
    already made. Once the bytes are older than that, one scrape starts the
    next rendering and every scrape meanwhile gets the bytes there are, so no
    scrape waits for a rendering but the very first: the figures are at most
    MAX_AGE_SECONDS plus one rendering old.
    """

    MAX_AGE_SECONDS = 1.0

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._rendered: dict[str, tuple[float, bytes]] = {}
        self._rendering: dict[str, asyncio.Task[tuple[float, bytes]]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        accept = Headers(scope=scope).get("accept", "")
        encoder, content_type = choose_encoder(accept)
        cached = self._rendered.get(content_type)
        if cached is None or time.monotonic() - cached[0] > self.MAX_AGE_SECONDS:
            rendering = self._rendering.get(content_type)
            if rendering is None:
                rendering = asyncio.create_task(self._render(encoder, content_type))
                rendering.add_done_callback(_retrieved)
                self._rendering[content_type] = rendering
            if cached is None:
                cached = await asyncio.shield(rendering)
        response = Response(cached[1], media_type=None, headers={"Content-Type": content_type})
        await response(scope, receive, send)

    async def _render(self, encoder: Encoder, content_type: str) -> tuple[float, bytes]:
        try:
            started = time.monotonic()
            # In a worker thread: the event loop stays free for /healthz whatever the collector waits on.
            rendered = (started, await run_in_threadpool(encoder, self._registry))
        except Exception:
            if content_type in self._rendered:  # scrapes go on with the last bytes; the next one tries again
                log.exception("rendering /metrics failed; serving the previous exposition")
            raise
        finally:
            del self._rendering[content_type]
        self._rendered[content_type] = rendered
        return rendered
