"""The CLI's HTTP client against small local servers: redirects refused, a starting daemon waited for."""

from __future__ import annotations

import json
import socket
import threading
import time
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
                sent = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append({"path": self.path, **headers, "body": sent})
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


class RawServer:
    """A loopback TCP server that answers every connection with `reply(socket)`: whatever bytes a
    misbehaving server would send. Each connection's thread ends when its client goes away."""

    def __init__(self, reply: Callable[[socket.socket], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.reply = reply
        self.threads: list[threading.Thread] = []
        self.accepting = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(30)
            try:
                connection.recv(65536)
                self.reply(connection)
            except OSError:
                pass  # the client gave up: what these tests want

    def __enter__(self) -> RawServer:
        self.accepting.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # close() alone leaves accept() blocked on Linux
        self.listener.close()
        self.accepting.join(10)
        for thread in self.threads:
            thread.join(30)


def _http(body: bytes, content_type: str = "application/json", status: str = "200 OK") -> Callable:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    return lambda connection: connection.sendall(head.encode() + body)


def _endless(connection: socket.socket) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n[")
    while True:
        connection.sendall(b"0," * 65536)


def _dripping(connection: socket.socket) -> None:
    connection.sendall(b"HTTP/1.1 200 OK\r\n")
    stop = threading.Event()
    while not stop.wait(0.2):
        connection.sendall(b"X-Drip: 1\r\n")


HOSTILE_SERVERS = {
    "not HTTP": (lambda connection: connection.sendall(b"SSH-2.0-OpenSSH_9.6\r\n" * 10), "not HTTP"),
    "an HTML page": (
        _http(b"<html><body>Welcome to nginx!</body></html>", "text/html"),
        "text/html, not JSON",
    ),
    "JSON of another shape": (_http(b'{"runs": 5, "version": []}'), "unexpected shape"),
    "a JSON list": (_http(b"[1, 2, 3]"), "unexpected shape"),
    "an error that is not JSON": (_http(b"<h1>502</h1>", "text/html", "502 Bad Gateway"), "502 Bad Gateway"),
}


@pytest.mark.parametrize("server", HOSTILE_SERVERS)
@pytest.mark.parametrize("command", [("runs",), ("status",), ("show", "1"), ("trigger", "vae")])
def test_the_cli_survives_any_server_in_one_line(server: str, command: tuple[str, ...]) -> None:
    reply, message = HOSTILE_SERVERS[server]
    with RawServer(reply) as raw:
        result = benchd(*command, "--url", raw.url, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert message in line, line


@pytest.mark.parametrize("reply", [_endless, _dripping], ids=["endless", "dripping"])
def test_one_deadline_and_a_size_cap_per_request(monkeypatch: pytest.MonkeyPatch, reply: Callable) -> None:
    from benchd.cli import client as client_module

    monkeypatch.setattr(client_module, "TIMEOUT_SECONDS", 2.0)
    monkeypatch.setattr(client_module, "MAX_RESPONSE_BYTES", 1 << 20)
    with RawServer(reply) as raw:
        started = time.monotonic()
        with pytest.raises(ClientError, match=r"did not answer within 2 s|larger than 1 MiB"):
            DaemonClient(raw.url).get("/api/v1/runs")
        assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1:9655", "127.0.0.1:9655", "http://", "http://127.0.0.1:99999",
            "http://127.0.0.1:96x5", "http://h/?q=1", "http://user:pw@127.0.0.1:9655"],
)  # fmt: skip
def test_a_malformed_url_is_bad_input(url: str) -> None:
    assert_bad_input(benchd("status", "--url", url), "--url")


def test_a_run_id_beyond_64_bits_is_bad_input(tmp_path: Path) -> None:
    result = benchd("show", str(2**64), "--url", "http://127.0.0.1:9", "--data-dir", str(tmp_path))
    assert_bad_input(result, "run_id", "9223372036854775807")


def test_trigger_sends_the_suite_and_the_model_options_as_the_run_request() -> None:
    with Server(lambda _n: (202, {}, {"runs": []})) as daemon:
        result = benchd("trigger", "gpt", "--suite", "standard-v2", "-o", "layers=2", "--url", daemon.url)
    assert result.returncode == 0, result.stderr
    (request,) = daemon.requests
    assert request["path"] == "/api/v1/runs"
    assert json.loads(request["body"]) == {
        "workload": "gpt", "device": "auto", "suite": "standard-v2", "options": {"layers": 2}
    }  # fmt: skip


def test_the_default_url_follows_the_daemons_port_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The image's health check runs plain `benchd status` beside a daemon moved with BENCHD_PORT."""
    monkeypatch.delenv("BENCHD_URL", raising=False)
    monkeypatch.delenv("BENCHD_PORT", raising=False)
    assert DaemonClient(None).url == "http://127.0.0.1:9655"
    monkeypatch.setenv("BENCHD_PORT", "9700")
    assert DaemonClient(None).url == "http://127.0.0.1:9700"
    monkeypatch.setenv("BENCHD_URL", "http://gpu-1:9655")
    assert DaemonClient(None).url == "http://gpu-1:9655"
