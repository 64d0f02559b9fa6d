"""The CLI's HTTP client against small local servers: redirects refused, a starting daemon waited for."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchd.cli.client import ClientError, DaemonClient, TokenError, resolve_token

from .test_cli import assert_bad_input, benchd

Reply = tuple[int, dict[str, str], dict]


class Server:
    """A loopback server answering each request with the next reply, recording what it was sent."""

    def __init__(self, replies: Callable[[int], Reply]) -> None:
        self.requests: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                outer.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
                status, headers, body = replies(len(outer.requests))
                payload = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(payload))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def do_DELETE(self) -> None:
                self._answer()

            def log_message(self, *_args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def elsewhere() -> Iterator[Server]:
    with Server(lambda _n: (200, {}, {"stolen": True})) as server:
        yield server


def test_a_redirect_is_an_error_and_the_token_goes_nowhere_else(elsewhere: Server) -> None:
    with Server(lambda _n: (307, {"Location": f"{elsewhere.url}/api/v1/runs"}, {})) as daemon:
        client = DaemonClient(daemon.url, "t0ken-t0ken-t0ken")
        with pytest.raises(ClientError) as caught:
            client.request("POST", "/api/v1/runs", {"workload": "vae"})
    assert caught.value.status == 307 and "does not follow redirects" in str(caught.value)
    assert daemon.requests[0]["authorization"] == "Bearer t0ken-t0ken-t0ken"
    assert elsewhere.requests == []


def test_a_starting_daemon_is_waited_for_as_retry_after_says() -> None:
    def replies(number: int) -> Reply:
        if number < 3:
            return 503, {"Retry-After": "1"}, {"error": "devices are still being probed"}
        return 202, {}, {"runs": []}

    with Server(replies) as daemon:
        assert DaemonClient(daemon.url).request("POST", "/api/v1/runs", {"workload": "vae"}) == {"runs": []}
    assert len(daemon.requests) == 3


def test_a_503_without_retry_after_is_not_retried() -> None:
    with (
        Server(lambda _n: (503, {}, {"error": "shutting down"})) as daemon,
        pytest.raises(ClientError, match="503 shutting down"),
    ):
        DaemonClient(daemon.url).request("GET", "/api/v1/status")
    assert len(daemon.requests) == 1


def test_tokens_come_from_options_files_or_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("BENCHD_TOKEN", raising=False)
    monkeypatch.delenv("BENCHD_TOKEN_FILE", raising=False)
    secret = tmp_path / "token"
    secret.write_text("from-a-file-0123456789\n")
    assert resolve_token(None, secret) == "from-a-file-0123456789"
    assert resolve_token("given-0123456789ab", secret) == "given-0123456789ab"
    monkeypatch.setenv("BENCHD_TOKEN_FILE", str(secret))
    assert resolve_token(None, None) == "from-a-file-0123456789"
    with pytest.raises(TokenError, match="--token: the token is blank"):
        resolve_token("   ", None)
    with pytest.raises(TokenError, match=r"--token-file .*missing"):
        resolve_token(None, tmp_path / "missing")


def test_a_blank_token_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    with Server(lambda _n: (202, {}, {"runs": []})) as daemon:
        assert_bad_input(
            benchd("trigger", "vae", "--url", daemon.url, "--token", " "), "--token: the token is blank"
        )
        blank = tmp_path / "blank"
        blank.write_text("\n")
        assert_bad_input(
            benchd("cancel", "3", "--url", daemon.url, "--token-file", str(blank)), "--token-file"
        )
    assert daemon.requests == []
