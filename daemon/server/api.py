"""The daemon's HTTP interface: health, readiness, /metrics and the JSON API under /api/v1.

Bad input gets a 4xx with {"error": message} and changes nothing. Off
loopback, every mutating route needs the configured bearer token.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Any, Protocol, cast

from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from benchd import catalog
from benchd.catalog import request as request_model
from benchd.devices import DeviceError, Probe
from benchd.lifecycle.queue import (
    QueueFullError,
    RunFinishedError,
    RunNotFoundError,
    RunQueue,
    ShuttingDownError,
)
from benchd.lifecycle.recording import RunRequest
from benchd.results.model import OUTCOMES, Origin
from benchd.results.store import ResultsStore
from benchd.server.openapi import openapi_document

MAX_BODY_BYTES = 64 * 1024
MUTATING_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class Daemon(Protocol):
    """What the API needs from the running daemon (read-only)."""

    @property
    def store(self) -> ResultsStore: ...

    @property
    def queue(self) -> RunQueue: ...

    @property
    def collector(self) -> Collector: ...

    @property
    def token(self) -> str | None: ...

    @property
    def default_timeout(self) -> float: ...

    @property
    def data_dir(self) -> Path: ...

    def probe(self) -> Probe | None: ...

    def not_ready_reason(self) -> str | None: ...

    def status(self) -> dict[str, Any]: ...


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class GuardMiddleware:
    """Bearer token on mutating routes (constant-time compare) and a cap on body size.

    Plain ASGI rather than BaseHTTPMiddleware: it stays out of the way of
    scrapes, which should cost as little as possible.
    """

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in MUTATING_METHODS:
            headers = Headers(scope=scope)
            refusal = None
            if self.token is not None:
                given = headers.get("authorization", "").encode()
                if not hmac.compare_digest(given, f"Bearer {self.token}".encode()):
                    refusal = error(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
            length = headers.get("content-length")
            if (
                refusal is None
                and length is not None
                and (not length.isdigit() or int(length) > MAX_BODY_BYTES)
            ):
                refusal = error(413, f"request body larger than {MAX_BODY_BYTES} bytes")
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _json_body(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
    try:
        payload = json.loads(body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ApiError(422, "body must be a JSON object")
    return payload


def parse_run_request(payload: dict[str, Any], probe: Probe, daemon: Daemon) -> list[RunRequest]:
    """Turn a POST body into run requests through the shared request model, or raise ApiError (422)
    naming the first problem."""
    try:
        fields = request_model.parse(payload)
        configs = fields.configs()
        resolved = probe.resolve(fields.device)
    except (catalog.CatalogError, DeviceError) as exc:
        raise ApiError(422, str(exc)) from None
    timeout = fields.timeout or daemon.default_timeout
    return [RunRequest(c, resolved, daemon.data_dir, timeout) for c in configs]


def _daemon(request: Request) -> Daemon:
    return cast(Daemon, request.app.state.daemon)


# Handlers that touch the store or the queue's lock are plain functions, which Starlette runs in
# its thread pool: the event loop stays free to answer scrapes and health checks.


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    reason = _daemon(request).not_ready_reason()
    if reason is None:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "starting", "reason": reason}, status_code=503)


async def workloads(_request: Request) -> Response:
    return JSONResponse({"workloads": catalog.listing()})


async def create_runs(request: Request) -> Response:
    payload = await _json_body(request)
    daemon = _daemon(request)
    probe = daemon.probe()
    if probe is None:
        raise ApiError(503, "devices are still being probed; try again in a few seconds")
    requests = parse_run_request(payload, probe, daemon)
    submitted = await run_in_threadpool(daemon.queue.submit_many, requests, Origin.API)
    created = [
        {"id": run_id, "workload": r.config.workload, "preset": r.config.preset, "device": r.device,
         "duplicate": duplicate}
        for r, (run_id, duplicate) in zip(requests, submitted, strict=True)
    ]  # fmt: skip
    return JSONResponse({"runs": created}, status_code=202)


def list_runs(request: Request) -> Response:
    query = request.query_params
    workload = query.get("workload")
    if workload is not None and workload not in catalog.WORKLOADS:
        raise ApiError(400, f"unknown workload {workload!r}; valid workloads: {', '.join(catalog.WORKLOADS)}")
    outcome = query.get("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise ApiError(400, f"unknown outcome {outcome!r}; valid outcomes: {', '.join(OUTCOMES)}")
    limit_text = query.get("limit", "50")
    if not (limit_text.isascii() and limit_text.isdigit()) or not 1 <= int(limit_text) <= 1000:
        raise ApiError(400, f"limit must be an integer from 1 to 1000, got {limit_text!r}")
    runs = _daemon(request).store.list_runs(workload=workload, outcome=outcome, limit=int(limit_text))
    return JSONResponse({"runs": [r.to_json() for r in runs]})


def _run_id(request: Request) -> int:
    text = request.path_params["run_id"]
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise ApiError(400, f"run id must be a positive integer, got {text!r}")
    return int(text)


def get_run(request: Request) -> Response:
    run_id = _run_id(request)
    run = _daemon(request).store.get_run(run_id)
    if run is None:
        raise ApiError(404, f"no run {run_id}")
    body = run.to_json()
    active = _daemon(request).queue.progress(run_id)
    body["progress"] = active.to_json() if active is not None else None
    return JSONResponse(body)


def cancel_run(request: Request) -> Response:
    run_id = _run_id(request)
    try:
        state = _daemon(request).queue.cancel(run_id)
    except RunNotFoundError:
        raise ApiError(404, f"no run {run_id}") from None
    except RunFinishedError as exc:
        raise ApiError(409, str(exc)) from None
    return JSONResponse({"id": run_id, "state": state}, status_code=202)


def status(request: Request) -> Response:
    return JSONResponse(_daemon(request).status())


async def openapi(_request: Request) -> Response:
    return JSONResponse(openapi_document())


async def api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error(exc.status, exc.message)


async def http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error(exc.status_code, exc.detail, dict(exc.headers or {}))


async def queue_full(_request: Request, exc: Exception) -> Response:
    return error(429, str(exc))


async def shutting_down(_request: Request, exc: Exception) -> Response:
    return error(503, str(exc))


def create_app(daemon: Daemon) -> Starlette:
    """The routes over `daemon`, which the handlers find on `request.app.state`."""
    from benchd.server.exposition import CachedExposition
    from benchd.server.metrics import build_registry

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", CachedExposition(build_registry(daemon.collector))),
        Route("/api/v1/openapi.json", openapi),
        Route("/api/v1/workloads", workloads),
        Route("/api/v1/runs", list_runs, methods=["GET"]),
        Route("/api/v1/runs", create_runs, methods=["POST"]),
        Route("/api/v1/runs/{run_id}", get_run, methods=["GET"]),
        Route("/api/v1/runs/{run_id}", cancel_run, methods=["DELETE"]),
        Route("/api/v1/status", status),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(GuardMiddleware, token=daemon.token)],
        exception_handlers={
            HTTPException: http_error,
            ApiError: api_error,
            QueueFullError: queue_full,
            ShuttingDownError: shutting_down,
        },
    )
    app.state.daemon = daemon
    return app
