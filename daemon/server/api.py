"""The daemon's HTTP interface: health, readiness, /metrics and the JSON API under /api/v1.

Bad input gets a 4xx with {"error": message} and changes nothing. Off
loopback, every mutating route needs the configured bearer token.
"""

from __future__ import annotations

import hmac
import json
import re
import sqlite3
from pathlib import Path
from typing import Any, Protocol, cast

from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.endpoints import HTTPEndpoint
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from benchd import catalog
from benchd.catalog import request as request_model
from benchd.devices import DeviceError, Probe
from benchd.health.verdict import DeviceVerdict
from benchd.lifecycle.queue import (
    QueueFullError,
    RunFinishedError,
    RunNotFoundError,
    RunQueue,
    ShuttingDownError,
)
from benchd.lifecycle.recording import RunRequest
from benchd.results.model import MAX_RUN_ID, OUTCOMES, Origin
from benchd.results.store import ResultsStore, UnreadableRunError
from benchd.server.hosts import HostPolicy
from benchd.server.openapi import openapi_document

MAX_BODY_BYTES = 64 * 1024
CONFIG_ID = re.compile(r"[0-9a-f]{12}")
# What the routes accept that changes something; PUT and PATCH go straight to the router, which answers
# 405 with the methods the path allows.
MUTATING_METHODS = {"POST", "DELETE"}
BODY_METHODS = {"POST"}
RETRY_SOON = {"Retry-After": "1"}  # while the daemon starts: the CLI waits and tries again
STORE_RETRY = {"Retry-After": "5"}


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

    @property
    def hosts(self) -> HostPolicy: ...

    def probe(self) -> Probe | None: ...

    def not_ready_reason(self) -> str | None: ...

    def status(self) -> dict[str, Any]: ...

    def verdicts(self) -> list[DeviceVerdict]: ...


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class GuardMiddleware:
    """What every mutating request must pass before a handler sees it.

    - No cross-origin browser requests: a web page the operator visits could
      otherwise queue benchmarks on a tokenless loopback daemon (403).
    - The bearer token, when one is configured (constant-time compare; 401).
    - A JSON body: `application/json` only (415), so no form or text/plain
      "simple request" gets through either.
    - At most MAX_BODY_BYTES of body, however it is sent: a declared length
      over the limit is refused unread, and a chunked body is read only up to
      the limit, then refused (413). The handler gets the body already read.

    Plain ASGI rather than BaseHTTPMiddleware: it stays out of the way of
    scrapes, which should cost as little as possible.
    """

    def __init__(self, app: ASGIApp, token: str | None, hosts: HostPolicy) -> None:
        self.app = app
        self.token = token
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._misdirected(headers)
        if refusal is None and scope["method"] not in MUTATING_METHODS:
            await self.app(scope, receive, send)
            return
        refusal = refusal or self._refusal(headers, scope["method"])
        body = b""
        if refusal is None:
            read = await _read_body(receive)
            if read is None:
                return  # the client went away
            if len(read) > MAX_BODY_BYTES:
                refusal = error(413, f"request body larger than {MAX_BODY_BYTES} bytes")
            body = read
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    def _misdirected(self, headers: Headers) -> Response | None:
        """Every route, scrapes included: a Host this daemon does not answer to (421), a browser's
        Origin that is not this daemon (403). Neither response repeats what was sent."""
        host = headers.get("host")
        why = self.hosts.host_refusal(host)
        if why is not None:
            return error(421, why)
        origin = headers.get("origin")
        if origin is not None:
            why = self.hosts.origin_refusal(origin, host)
            if why is not None:
                return error(403, why)
        return None

    def _refusal(self, headers: Headers, method: str) -> Response | None:
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return error(
                403, "cross-origin requests are refused: use the benchd CLI or a client without Origin"
            )
        if self.token is not None and not _bearer_matches(headers.get("authorization", ""), self.token):
            return error(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
        length = headers.get("content-length")
        if length is not None and (
            not (length.isascii() and length.isdigit()) or int(length) > MAX_BODY_BYTES
        ):
            return error(413, f"request body larger than {MAX_BODY_BYTES} bytes")
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        has_body = method in BODY_METHODS or (length not in (None, "0")) or "transfer-encoding" in headers
        if has_body and media_type != "application/json":
            shown = media_type or "none"
            return error(
                415, f"content type must be application/json (got {shown})", {"Accept": "application/json"}
            )
        return None


def _bearer_matches(authorization: str, token: str) -> bool:
    """RFC 9110: the scheme is case-insensitive (`bearer`, `BEARER`); the token is compared in constant
    time."""
    scheme, _, given = authorization.strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


async def _read_body(receive: Receive) -> bytes | None:
    """The request body, or the first MAX_BODY_BYTES + 1 bytes of it; None if the client disconnected."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES or not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then waits on the client as before."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _json_body(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
    try:
        payload = json.loads((body or b"{}").decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"body is not UTF-8 JSON: byte {exc.start} is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"body is not JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "body is nested too deeply to be a run request") from None
    except ValueError:  # an integer literal beyond Python's 4,300-digit conversion limit
        raise ApiError(400, "body holds a number too long to be a run request's") from None
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
    return JSONResponse({"status": "starting", "reason": reason}, status_code=503, headers=RETRY_SOON)


async def workloads(_request: Request) -> Response:
    return JSONResponse({"workloads": catalog.listing()})


async def create_runs(request: Request) -> Response:
    payload = await _json_body(request)
    daemon = _daemon(request)
    probe = daemon.probe()
    if probe is None:
        raise ApiError(503, "devices are still being probed; try again in a few seconds", RETRY_SOON)
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
    config = query.get("config")
    if config is not None and not CONFIG_ID.fullmatch(config):
        raise ApiError(400, f"config must be a config id of 12 hex digits, got {config[:40]!r}")
    limit_text = query.get("limit", "50")
    if not (limit_text.isascii() and limit_text.isdigit()) or not 1 <= int(limit_text) <= 1000:
        raise ApiError(400, f"limit must be an integer from 1 to 1000, got {limit_text!r}")
    store = _daemon(request).store
    runs = store.list_runs(workload=workload, outcome=outcome, config=config, limit=int(limit_text))
    body: dict[str, Any] = {"runs": [r.to_json() for r in runs]}
    if store.unreadable:  # said, never a reason to fail the whole listing
        body["unreadable"] = [{"id": i, "error": why} for i, why in sorted(store.unreadable.items())]
    return JSONResponse(body)


def _run_id(request: Request) -> int:
    text = request.path_params["run_id"]
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or not 1 <= int(text) <= MAX_RUN_ID:
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


def health(request: Request) -> Response:
    return JSONResponse({"devices": [v.to_json() for v in _daemon(request).verdicts()]})


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document(token_required=_daemon(request).token is not None))


async def api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error(exc.status, exc.message, exc.headers)


async def http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error(exc.status_code, exc.detail, dict(exc.headers or {}))


async def queue_full(_request: Request, exc: Exception) -> Response:
    return error(429, str(exc))


async def shutting_down(_request: Request, exc: Exception) -> Response:
    return error(503, str(exc))


async def unreadable_run(_request: Request, exc: Exception) -> Response:
    return error(409, str(exc))


async def store_unavailable(_request: Request, exc: Exception) -> Response:
    """A store another process holds locked, or a full or read-only disk: nothing was done; try later."""
    return error(503, f"the results store cannot be used now ({exc}); nothing was changed", STORE_RETRY)


class Runs(HTTPEndpoint):
    """One route per path, its methods together, so a 405 lists every method the path allows."""

    get = staticmethod(list_runs)
    post = staticmethod(create_runs)


class OneRun(HTTPEndpoint):
    get = staticmethod(get_run)
    delete = staticmethod(cancel_run)


def create_app(daemon: Daemon) -> Starlette:
    """The routes over `daemon`, which the handlers find on `request.app.state`."""
    from benchd.server.exposition import CachedExposition
    from benchd.server.metrics import build_registry

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", CachedExposition(build_registry(daemon.collector)), methods=["GET"]),  # and HEAD
        Route("/api/v1/openapi.json", openapi),
        Route("/api/v1/workloads", workloads),
        Route("/api/v1/runs", Runs),
        Route("/api/v1/runs/{run_id}", OneRun),
        Route("/api/v1/status", status),
        Route("/api/v1/health", health),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(GuardMiddleware, token=daemon.token, hosts=daemon.hosts)],
        exception_handlers={
            HTTPException: http_error,
            ApiError: api_error,
            QueueFullError: queue_full,
            ShuttingDownError: shutting_down,
            sqlite3.Error: store_unavailable,
            UnreadableRunError: unreadable_run,
        },
    )
    app.router.redirect_slashes = False  # its redirect is built from the Host header: never echo it
    app.state.daemon = daemon
    return app
