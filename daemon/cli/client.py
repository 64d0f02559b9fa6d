"""A small HTTP client for the CLI's daemon commands (standard library only: they must start fast)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from benchd.server.config import DEFAULT_PORT

DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
ENV_URL = "BENCHD_URL"
TIMEOUT_SECONDS = 10.0


class ClientError(Exception):
    """The daemon could not be reached, or answered with an error (message included)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class DaemonClient:
    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        self.url = (url or os.environ.get(ENV_URL) or DEFAULT_URL).rstrip("/")
        self.token = token if token is not None else os.environ.get("BENCHD_TOKEN")

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error", exc.reason)
            except (ValueError, AttributeError):
                message = exc.reason
            raise ClientError(f"{method} {path}: {exc.code} {message}", exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ClientError(f"cannot reach the benchd daemon at {self.url}: {reason}") from None

    def get(self, path: str) -> Any:
        return self.request("GET", path)
