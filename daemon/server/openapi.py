"""The OpenAPI document of the daemon's HTTP API, served at /api/v1/openapi.json.

Written out so that it is the contract, reviewed like one, except the run
request's schema, which is generated from the request model the API validates
with (catalog.request). A test checks it is valid OpenAPI and that every
route is described.
"""

from __future__ import annotations

from typing import Any

from benchd import __version__
from benchd.catalog import WORKLOADS
from benchd.catalog import request as request_model
from benchd.health.verdict import HEALTH_STATES
from benchd.results.model import MAX_RUN_ID, OUTCOMES

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {
        400: "Malformed request.",
        401: "Missing or wrong bearer token.",
        403: "A cross-origin browser request.",
        404: "No such run.",
        409: "The run already ended (DELETE), or its stored record cannot be read (GET: says why).",
        405: "Method not allowed (the Allow header lists the route's methods).",
        413: "Request body too large.",
        415: "The body is not application/json.",
        422: "Invalid run request: the message names the field and the reason; nothing was queued.",
        429: "The queue is full; nothing was queued.",
        503: "Not ready yet (devices being probed), shutting down, or the results store cannot be used now "
        "(locked by another process, disk full or read-only); Retry-After says when to try again.",
    }
    return {str(code): _json(_ERROR, reasons[code]) for code in codes}


_RUN_ID = {
    "name": "run_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_RUN_ID},
}
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


_VERDICT_PROPERTIES = {
    "device": {"type": "string"},
    "state": {"enum": [str(state) for state in HEALTH_STATES]},
    "reason": {"type": "string"},
}
_HEALTH = {
    "type": "object",
    "properties": {
        "devices": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    **_VERDICT_PROPERTIES,
                    "configs": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "description": "One config's verdict: its band, ratio, runs beyond, since when.",
                            "properties": {**_VERDICT_PROPERTIES, "config": {"type": "string"}},
                            "additionalProperties": True,
                        },
                    },
                },
            },
        }
    },
}


def openapi_document(token_required: bool = True) -> dict[str, Any]:
    """The document as this daemon behaves: its mutating routes need the token only when one is set."""
    guarded: dict[str, Any] = {"security": _BEARER} if token_required else {}
    refused = (401,) if token_required else ()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "benchd",
            "version": __version__,
            "description": "Queue training benchmarks and read their results. Metrics are at /metrics.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                },
                "RunRequest": request_model.openapi_schema(),
                "QueuedRun": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "workload": {"type": "string"},
                        "preset": {"type": "string"},
                        "device": {"type": "string"},
                        "duplicate": {
                            "type": "boolean",
                            "description": "An identical run was already queued.",
                        },
                    },
                },
                "Run": {
                    "type": "object",
                    "description": "A run as `benchd run --json` prints it, plus live progress.",
                    "additionalProperties": True,
                    "properties": {
                        "id": {"type": "integer"},
                        "workload": {"type": "string"},
                        "preset": {"type": "string"},
                        "state": {"type": "string", "enum": ["queued", "running", "finished"]},
                        "outcome": {
                            "type": ["string", "null"],
                            "enum": [*(str(outcome) for outcome in OUTCOMES), None],
                        },
                        "epochs": {"type": "array", "items": {"type": "object"}},
                        "progress": {"type": ["object", "null"]},
                    },
                },
            },
        },
        "paths": {
            "/healthz": {
                "get": {"summary": "Liveness", "responses": {"200": _json({"type": "object"}, "Alive.")}}
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: store open and devices probed",
                    "responses": {"200": _json({"type": "object"}, "Ready."), **_errors(503)},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (docs/metrics.md)",
                    "responses": {"200": {"description": "Exposition", "content": {"text/plain": {}}}},
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI.")},
                }
            },
            "/api/v1/workloads": {
                "get": {
                    "summary": "Workloads and presets with parameter counts",
                    "responses": {"200": _json({"type": "object"}, "As `benchd workloads --json`.")},
                }
            },
            "/api/v1/status": {
                "get": {
                    "summary": "Daemon health, devices, queue, run in progress and last results",
                    "responses": {"200": _json({"type": "object"}, "Status.")},
                }
            },
            "/api/v1/health": {
                "get": {
                    "summary": "Each device's verdict and each config's, with the reason (docs/health.md)",
                    "responses": {"200": _json(_HEALTH, "Verdicts, devices in name order.")},
                }
            },
            "/api/v1/runs": {
                "get": {
                    "summary": "List runs, newest first",
                    "parameters": [
                        {"name": "workload", "in": "query", "schema": {"enum": list(WORKLOADS)}},
                        {"name": "outcome", "in": "query", "schema": {"enum": [str(o) for o in OUTCOMES]}},
                        {
                            "name": "config",
                            "in": "query",
                            "schema": {"type": "string", "pattern": "^[0-9a-f]{12}$"},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                        },
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "runs": {"type": "array", "items": {"$ref": "#/components/schemas/Run"}},
                                    "unreadable": {
                                        "type": "array",
                                        "description": "Runs whose records cannot be read, left out.",
                                        "items": {"type": "object"},
                                    },
                                },
                            },
                            "Runs.",
                        ),
                        **_errors(400, 503),
                    },
                },
                "post": {
                    "summary": "Queue runs of a workload's presets",
                    **guarded,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/RunRequest"}}
                        },
                    },
                    "responses": {
                        "202": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "runs": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/QueuedRun"},
                                    }
                                },
                            },
                            "Queued (or already queued).",
                        ),
                        **_errors(400, *refused, 403, 413, 415, 422, 429, 503),
                    },
                },
            },
            "/api/v1/runs/{run_id}": {
                "get": {
                    "summary": "One run with its epochs and progress",
                    "parameters": [_RUN_ID],
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Run"}, "The run."),
                        **_errors(400, 404, 409, 503),
                    },
                },
                "delete": {
                    "summary": "Cancel a queued or running run",
                    **guarded,
                    "parameters": [_RUN_ID],
                    "responses": {
                        "202": _json({"type": "object"}, "Cancelled, or being stopped."),
                        **_errors(400, *refused, 403, 404, 409, 503),
                    },
                },
            },
        },
    }
