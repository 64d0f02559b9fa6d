"""A small HTTP client for the CLI's daemon commands (standard library only: they must start fast).

It talks to the daemon directly: a redirect is an error, never followed (so
the token is never sent anywhere else) and never taken for success. A daemon
that is still starting answers 503 with Retry-After; the client waits for it,
within READY_WAIT_SECONDS, so `benchd serve & benchd trigger vae --wait`
works in a script.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from email.message import Message as HTTPMessage
from pathlib import Path
from typing import IO, Any

from benchd import userfiles
from benchd.server.config import DEFAULT_PORT, MAX_TOKEN_FILE_BYTES

DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
ENV_URL = "BENCHD_URL"
ENV_TOKEN = "BENCHD_TOKEN"
ENV_TOKEN_FILE = "BENCHD_TOKEN_FILE"
TIMEOUT_SECONDS = 10.0
READY_WAIT_SECONDS = 60.0  # a daemon probing its devices answers within this
START_WAIT_SECONDS = 5.0  # a daemon started just before (`benchd serve &`) listens within this
MAX_RETRY_AFTER_SECONDS = 5.0


class ClientError(Exception):
    """The daemon could not be reached, or answered with an error (message included)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TokenError(ValueError):
    """A token option or variable that cannot be a token: names where it came from."""


def resolve_token(token: str | None, token_file: Path | None) -> str | None:
    """--token, else --token-file, else BENCHD_TOKEN, else BENCHD_TOKEN_FILE; a blank one is refused."""
    sources: list[tuple[str, str | None, Path | None]] = [
        ("--token", token, None),
        ("--token-file", None, token_file),
        (ENV_TOKEN, os.environ.get(ENV_TOKEN), None),
        (ENV_TOKEN_FILE, None, Path(os.environ[ENV_TOKEN_FILE]) if os.environ.get(ENV_TOKEN_FILE) else None),
    ]
    for name, given, path in sources:
        value = given if path is None else _read_token_file(name, path)
        if value is None:
            continue
        if not value.strip():
            raise TokenError(f"{name}: the token is blank")
        return value
    return None


def _read_token_file(name: str, path: Path) -> str:
    """A token file's text without its trailing newline (not part of the token)."""
    try:
        return userfiles.read_text(path, MAX_TOKEN_FILE_BYTES, name).rstrip("\r\n")
    except userfiles.UserFileError as exc:
        raise TokenError(str(exc)) from None


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: HTTPMessage, newurl: str) -> urllib.request.Request | None:  # fmt: skip
        return None  # urllib then raises the 3xx as an HTTPError


_OPENER = urllib.request.build_opener(_RefuseRedirects)


class DaemonClient:
    def __init__(
        self, url: str | None = None, token: str | None = None, *, wait_for_start: bool = False
    ) -> None:
        self.url = (url or os.environ.get(ENV_URL) or DEFAULT_URL).rstrip("/")
        self.token = token
        self.wait_for_start = wait_for_start

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One call, waiting (bounded) while the daemon starts; ClientError for anything else."""
        started = time.monotonic()
        while True:
            try:
                return self._once(method, path, body)
            except _NotReadyError as not_yet:
                limit = READY_WAIT_SECONDS if not_yet.started else START_WAIT_SECONDS
                if time.monotonic() - started + not_yet.pause > limit:
                    raise not_yet.error from None
                time.sleep(not_yet.pause)

    def _once(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers=headers)
        try:
            with _OPENER.open(request, timeout=TIMEOUT_SECONDS) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            with exc:  # its connection is closed whatever the answer was
                raise self._http_error(method, path, exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            error = ClientError(f"cannot reach the benchd daemon at {self.url}: {reason}")
            if self.wait_for_start and isinstance(reason, ConnectionRefusedError):
                raise _NotReadyError(error, 0.5, started=False) from None
            raise error from None

    def _http_error(self, method: str, path: str, exc: urllib.error.HTTPError) -> Exception:
        if 300 <= exc.code < 400:
            target = exc.headers.get("Location", "elsewhere")
            return ClientError(
                f"{method} {path}: {exc.code} redirect to {target}: benchd does not follow redirects "
                f"(is --url {self.url} the daemon itself?)",
                exc.code,
            )
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except (ValueError, AttributeError):
            message = exc.reason
        error = ClientError(f"{method} {path}: {exc.code} {message}", exc.code)
        retry_after = exc.headers.get("Retry-After", "")
        if exc.code == 503 and retry_after.isascii() and retry_after.isdigit():
            return _NotReadyError(
                error, min(float(retry_after), MAX_RETRY_AFTER_SECONDS) or 0.5, started=True
            )
        return error

    def get(self, path: str) -> Any:
        return self.request("GET", path)


class _NotReadyError(Exception):
    """The daemon is starting: try again after `pause` seconds, or give up with `error`."""

    def __init__(self, error: ClientError, pause: float, *, started: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.pause = pause
        self.started = started
