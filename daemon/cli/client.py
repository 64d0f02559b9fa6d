"""A small HTTP client for the CLI's daemon commands (standard library only: they must start fast).

It talks to the daemon directly: a redirect is an error, never followed (so
the token is never sent anywhere else) and never taken for success. Whatever
answers, the client ends in one ClientError line: one deadline for the whole
request, a cap on the bytes it reads, and no trust in the answer's shape. A daemon
that is still starting answers 503 with Retry-After; the client waits for it,
within READY_WAIT_SECONDS, so `benchd serve & benchd trigger vae --wait`
works in a script.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchd import userfiles
from benchd.settings import DEFAULT_PORT, MAX_TOKEN_FILE_BYTES

DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
ENV_URL = "BENCHD_URL"
ENV_PORT = (
    "BENCHD_PORT"  # the daemon's own port variable: a client beside it (the image's health check) follows it
)


def default_url() -> str:
    """This host's daemon: on BENCHD_PORT where that is set (the daemon reads it too), else port 9655."""
    port = os.environ.get(ENV_PORT, "").strip()
    return f"http://127.0.0.1:{port}" if port.isdigit() else DEFAULT_URL


ENV_TOKEN = "BENCHD_TOKEN"
ENV_TOKEN_FILE = "BENCHD_TOKEN_FILE"
TIMEOUT_SECONDS = 10.0
READY_WAIT_SECONDS = 60.0  # a daemon probing its devices answers within this
START_WAIT_SECONDS = 5.0  # a daemon started just before (`benchd serve &`) listens within this
MAX_RETRY_AFTER_SECONDS = 5.0
MAX_RESPONSE_BYTES = 64 * 2**20  # a thousand runs with their epochs are a few MB
CHUNK_BYTES = 1 << 16


class ClientError(Exception):
    """The daemon could not be reached, or answered with an error (message included)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class UnreachableError(ClientError):
    """Nothing answered at the address: commands that can read the local store instead do."""


class UrlError(ClientError):
    """--url (or BENCHD_URL) is not an address a daemon can have: bad input."""


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


class _Deadline:
    """One deadline for a whole request: connecting, sending, the status line, headers and body together.
    A server that drips a byte every few seconds would pass any per-read timeout; when this one passes,
    the socket is shut down under the read, which then ends at once."""

    def __init__(self, connection: http.client.HTTPConnection, seconds: float) -> None:
        self._connection = connection
        self.passed = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def _expire(self) -> None:
        self.passed = True
        sock = self._connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._timer.cancel()


def _read_capped(response: http.client.HTTPResponse, limit: int) -> bytes | None:
    """The body, or None when it is longer than `limit` (read no further than that)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read(CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a daemon's address, or None: http(s), a host, a valid port, no query."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError as exc:
        return f"--url {url!r} is not a URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"--url {url!r} must be an http:// or https:// address with a host, like {DEFAULT_URL}"
    if parts.query or parts.fragment or parts.username or parts.password:
        return f"--url {url!r} must not carry a query, fragment or credentials (use --token)"
    return None


@dataclass(frozen=True)
class _Answer:
    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes


class DaemonClient:
    def __init__(
        self, url: str | None = None, token: str | None = None, *, wait_for_start: bool = False
    ) -> None:
        self.url = (url or os.environ.get(ENV_URL) or default_url()).rstrip("/")
        self.token = token
        self.wait_for_start = wait_for_start

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One call, waiting (bounded) while the daemon starts; ClientError for anything else."""
        problem = url_problem(self.url)
        if problem is not None:
            raise UrlError(problem)
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
        answer = self._exchange(method, path, body)
        if answer.status >= 300:
            raise self._http_error(method, path, answer)
        try:
            return json.loads(answer.body.decode("utf-8") or "null")
        except (UnicodeDecodeError, ValueError, RecursionError):
            kind = answer.headers.get_content_type()
            raise ClientError(
                f"{method} {path}: {self.url} answered {answer.status} with {kind}, not JSON "
                "(is --url a benchd daemon?)"
            ) from None

    def _exchange(self, method: str, path: str, body: dict[str, Any] | None) -> _Answer:
        """Send the request and read the whole answer within TIMEOUT_SECONDS and MAX_RESPONSE_BYTES."""
        parts = urllib.parse.urlsplit(self.url)
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = kind(parts.hostname or "", parts.port, timeout=TIMEOUT_SECONDS)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        deadline = _Deadline(connection, TIMEOUT_SECONDS)
        try:
            with deadline:
                connection.request(method, parts.path.rstrip("/") + path, body=data, headers=headers)
                response = connection.getresponse()
                payload = _read_capped(response, MAX_RESPONSE_BYTES)
        except (http.client.HTTPException, OSError, ValueError) as exc:
            raise self._transport_error(exc, deadline.passed) from None
        finally:
            connection.close()
        if deadline.passed:
            raise self._too_slow()
        if payload is None:
            raise ClientError(
                f"{method} {path}: the answer from {self.url} is larger than "
                f"{MAX_RESPONSE_BYTES // 2**20} MiB; refusing to read more"
            )
        return _Answer(response.status, response.reason, response.headers, payload)

    def _too_slow(self) -> ClientError:
        return ClientError(f"the benchd daemon at {self.url} did not answer within {TIMEOUT_SECONDS:.0f} s")

    def _transport_error(self, exc: Exception, deadline_passed: bool) -> Exception:
        if deadline_passed or isinstance(exc, TimeoutError):
            return self._too_slow()
        if isinstance(exc, http.client.HTTPException):
            shown = type(exc).__name__
            return ClientError(f"{self.url} answered with something that is not HTTP ({shown}): not benchd?")
        error = UnreachableError(f"cannot reach the benchd daemon at {self.url}: {exc}")
        if self.wait_for_start and isinstance(exc, ConnectionRefusedError):
            return _NotReadyError(error, 0.5, started=False)
        return error

    def _http_error(self, method: str, path: str, answer: _Answer) -> Exception:
        if answer.status < 400:
            target = answer.headers.get("Location", "elsewhere")
            return ClientError(
                f"{method} {path}: {answer.status} redirect to {target}: benchd does not follow redirects "
                f"(is --url {self.url} the daemon itself?)",
                answer.status,
            )
        try:
            message = json.loads(answer.body.decode("utf-8"))["error"]
            if not isinstance(message, str):
                raise TypeError(message)
        except (ValueError, TypeError, KeyError, RecursionError):
            message = answer.reason
        error = ClientError(f"{method} {path}: {answer.status} {message}", answer.status)
        retry_after = answer.headers.get("Retry-After", "")
        if answer.status == 503 and retry_after.isascii() and retry_after.isdigit():
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
