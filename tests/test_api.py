"""The HTTP handlers in-process: Starlette's test client over the real app, store and queue.

No daemon process and no child: requests that are refused never reach a
worker, and the few that are accepted stay queued (the queue has no worker
until a run is due). tests/test_daemon.py covers the same routes end to end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.registry import Collector
from starlette.testclient import TestClient

from benchd.devices import Probe
from benchd.health.book import HealthBook
from benchd.health.verdict import DeviceVerdict
from benchd.lifecycle.ledger import RunLedger
from benchd.lifecycle.queue import RunQueue
from benchd.results.store import ResultsStore
from benchd.server.api import create_app
from benchd.server.hosts import HostPolicy
from benchd.server.metrics import BenchdCollector, DaemonFacts
from benchd.server.scoreboard import Scoreboard

from .stored_runs import VAE_CONFIG_ID, add_run

PROBE = Probe("2.0.0-test", None, [{"id": "cpu", "type": "cpu", "name": "Test CPU"}], "cpu")


@dataclass
class FakeDaemon:
    """The parts of a daemon the API reads, built from the real store, queue and collector."""

    store: ResultsStore
    queue: RunQueue
    collector: Collector
    data_dir: Path
    token: str | None = None
    default_timeout: float = 3600.0
    probed: Probe | None = PROBE
    statuses: list[dict[str, Any]] = field(default_factory=list)
    # Starlette's test client calls the daemon "testserver": allowed as an operator would allow a name.
    hosts: HostPolicy = field(default_factory=lambda: HostPolicy.build(["testserver"]))

    def probe(self) -> Probe | None:
        return self.probed

    def not_ready_reason(self) -> str | None:
        return None if self.probed is not None else "devices are being probed"

    def status(self) -> dict[str, Any]:
        return {"ready": self.probed is not None}

    def verdicts(self) -> list[DeviceVerdict]:
        """The store's runs judged as the daemon judges them."""
        book = HealthBook()
        for run in self.store.finished_runs():
            book.record(run)
        return book.verdicts(time.time())


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[FakeDaemon]:
    store = ResultsStore(tmp_path / "benchd.sqlite3")
    scoreboard = Scoreboard()
    queue = RunQueue(RunLedger(store, scoreboard.record), queue_size=4, grace=1.0, command=("false",))
    queue.shutdown(0)  # accept nothing into a worker: these tests look at intake only
    collector = BenchdCollector(scoreboard, queue, store, DaemonFacts)
    yield FakeDaemon(store, queue, collector, tmp_path)
    store.close()


@pytest.fixture
def client(daemon: FakeDaemon) -> TestClient:
    return TestClient(create_app(daemon))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"workload": "resnet"}, "unknown workload 'resnet'"),
        ({"workload": "vae", "presets": ["bs64"]}, "unknown preset 'bs64'"),
        ({"workload": "vae", "batch_size": 0}, "batch_size: input should be greater than or equal to 1"),
        ({"workload": "vae", "fraction": 0}, "fraction: input should be greater than 0"),
        ({"workload": "vae", "fraction": 1.5}, "fraction: input should be less than or equal to 1"),
        ({"workload": "vae", "epochs": 0}, "epochs: input should be greater than or equal to 1"),
        ({"workload": "vae", "epochs": 1001}, "epochs: input should be less than or equal to 1000"),
        ({"workload": "vae", "epochs": "two"}, "epochs: input should be a valid integer, got 'two'"),
        ({"workload": "vae", "epochs": 10**30}, "epochs: input should be less than or equal to 1000"),
        ({"workload": "vae", "seed": -1}, "seed: input should be greater than or equal to 0"),
        ({"workload": "vae", "device": "cuda:7"}, "device 'cuda:7' is not available"),
        ({"workload": "vae", "colour": "red"}, "unknown field 'colour'"),
        ({"workload": "vae", "preset": "bs128"}, "unknown field 'preset'"),
        ({"workload": "vae", "timing": "wall"}, "timing: input should be 'reference' or 'device'"),
        ({"workload": "vae", "timing": 1}, "timing: input should be 'reference' or 'device'"),
        ({"workload": "vae", "timeout": 1e12}, "timeout: input should be less than or equal to 2592000"),
        ({"workload": "transformer", "options": {"emsize": 33}}, "options.emsize: must be a multiple of 2"),
        ({"workload": "vae", "options": {"nhid": 8}}, "options.nhid: vae has no option 'nhid'"),
        ({"workload": "vae", "emsize": 8}, "unknown field 'emsize'"),
        ({"presets": ["bs128"]}, "workload: is required"),
        ({"workload": "vae", "channels_last": True}, "channels_last: applies only to image convolution"),
        ({"workload": "vae", "compile": "yes"}, "compile: input should be a valid boolean"),
        ({"workload": "vae", "fraction": 5e-324}, "fraction: must cover at least one batch"),
        ({"workload": "transformer", "presets": "b200-e500-l4-h500", "fraction": 0.003}, "at least 0.00335"),
        ({"workload": "vae", "timeout": 0.5}, "timeout: input should be greater than or equal to 1"),
    ],
)
def test_bad_run_requests_get_422_naming_the_field_and_queue_nothing(client, daemon, body, message) -> None:
    response = client.post("/api/v1/runs", json=body)
    assert response.status_code == 422
    assert message in response.json()["error"]
    assert daemon.store.list_runs() == []


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"[1, 2]", 422),
        (b"{not json", 400),
        (b'{"workload": NaN}', 422),
        (b'{"workload": "vae", "fraction": Infinity}', 422),
    ],
)
def test_bodies_that_are_not_a_json_object_of_numbers_are_refused(client, content, status) -> None:
    response = client.post("/api/v1/runs", content=content, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert "error" in response.json()


def test_a_valid_request_is_refused_while_devices_are_unknown(client, daemon) -> None:
    daemon.probed = None
    response = client.post("/api/v1/runs", json={"workload": "vae"})
    assert response.status_code == 503 and "being probed" in response.json()["error"]
    assert response.headers["retry-after"] == "1"  # the CLI waits and tries again
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.headers["retry-after"] == "1"


def test_a_chunked_body_is_read_only_up_to_the_limit_then_refused(client, daemon) -> None:
    def chunks():  # no Content-Length: the body is chunked, as a client that streams it sends it
        for _ in range(1024):
            yield b" " * 4096

    response = client.post("/api/v1/runs", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "larger than 65536 bytes" in response.json()["error"]
    assert daemon.store.list_runs() == []
    too_long = client.post("/api/v1/runs", content=b"{}", headers={"content-type": "application/json",
                                                                  "content-length": "99999999"})  # fmt: skip
    assert too_long.status_code == 413


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_mutating_routes_take_json_only(client, daemon, content_type) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/api/v1/runs", content=b'{"workload": "vae"}', headers=headers)
    assert response.status_code == 415 and "must be application/json" in response.json()["error"]
    assert daemon.store.list_runs() == []


@pytest.mark.parametrize(
    "headers",
    [{"origin": "https://evil.example"}, {"origin": "null"}, {"sec-fetch-site": "cross-site"},
     {"origin": "http://testserver.evil.example"}],
)  # fmt: skip
def test_cross_origin_browser_requests_cannot_queue_runs(client, daemon, headers) -> None:
    response = client.post("/api/v1/runs", json={"workload": "vae"}, headers=headers)
    assert response.status_code == 403 and "cross-origin" in response.json()["error"]
    assert client.delete("/api/v1/runs/1", headers=headers).status_code == 403
    assert daemon.store.list_runs() == []


REBINDING_HOSTS = ["evil.example", "evil.example:9655", "127.0.0.1.evil.example:9655",
                   "localhost.evil.example", "testserver@evil.example", "[::1", "local host",
                   "evil.example:99999999"]  # fmt: skip


@pytest.mark.parametrize("host", REBINDING_HOSTS)
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/metrics"), ("GET", "/healthz"), ("GET", "/api/v1/runs"), ("GET", "/api/v1/status"),
     ("POST", "/api/v1/runs"), ("DELETE", "/api/v1/runs/1"), ("GET", "/api/v1/runs/1/")],
)  # fmt: skip
def test_a_foreign_host_header_is_refused_on_every_route_and_never_echoed(
    client, daemon, host, method, path
) -> None:
    """DNS rebinding: a page on evil.example rebound to 127.0.0.1 sends its own name as Host and Origin."""
    headers = {"host": host, "origin": f"http://{host}", "content-type": "application/json"}
    response = client.request(method, path, headers=headers, content=b'{"workload": "vae"}')
    assert response.status_code == 421
    assert "Host header" in response.json()["error"]
    assert "evil" not in response.text and "evil" not in str(response.headers)
    assert daemon.store.list_runs() == []


@pytest.mark.parametrize(
    "host", ["localhost:9655", "127.0.0.1:9655", "[::1]:9655", "10.1.2.3:9655", "[fe80::1]", "LOCALHOST",
             "testserver", "localhost."],
)  # fmt: skip
def test_loopback_names_ip_literals_and_allowed_names_are_served(client, host) -> None:
    assert client.get("/healthz", headers={"host": host}).status_code == 200


def test_configured_allowed_hosts_with_a_leading_dot_cover_their_subdomains() -> None:
    policy = HostPolicy.build([".svc.cluster.local", "benchd"])
    assert policy.host_refusal("benchd.monitoring.svc.cluster.local:9655") is None
    assert policy.host_refusal("benchd:9655") is None
    assert policy.host_refusal("svc.cluster.local.evil.example") is not None
    assert policy.host_refusal("notbenchd:9655") is not None


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example:80", "http://evil.example", "ftp://testserver", "http://testserver:9656",
     "https://testserver", "http://[::1", "http://testserver:notaport"],
)  # fmt: skip
def test_an_origin_that_is_not_an_allowed_host_on_this_port_is_refused(client, daemon, origin) -> None:
    """The Origin is checked on its own (scheme, host and port), not against the Host header the page sets."""
    response = client.post("/api/v1/runs", json={"workload": "vae"}, headers={"origin": origin})
    assert response.status_code == 403 and "evil" not in response.text
    assert client.get("/api/v1/runs", headers={"origin": origin}).status_code == 403
    assert daemon.store.list_runs() == []


def test_the_authorization_scheme_is_case_insensitive(daemon) -> None:
    daemon.token = "a-token-of-twenty-chars"
    client = TestClient(create_app(daemon))
    for scheme in ("Bearer", "bearer", "BEARER"):
        response = client.post(
            "/api/v1/runs", json={"workload": "resnet"}, headers={"authorization": f"{scheme} {daemon.token}"}
        )
        assert response.status_code == 422, scheme
    wrong_ones = ("Basic a-token-of-twenty-chars", "Bearer", "Bearer a-token-of-twenty-charsX", "Bearerx")
    for wrong in wrong_ones:
        assert client.post("/api/v1/runs", json={}, headers={"authorization": wrong}).status_code == 401


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"workload": "vae", "epochs": ' + b"9" * 5000 + b"}", "number too long"),
        ('{"workload": "vae"}'.encode("utf-16"), "not UTF-8"),
        (b'{"workload": "\xff"}', "not UTF-8"),
    ],
)
def test_bodies_with_huge_integers_or_other_encodings_are_400(client, daemon, content, message) -> None:
    response = client.post("/api/v1/runs", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400 and message in response.json()["error"]
    assert daemon.store.list_runs() == []


def test_a_same_origin_request_passes_the_origin_check(client) -> None:
    response = client.post(
        "/api/v1/runs", json={"workload": "resnet"}, headers={"origin": "http://testserver"}
    )
    assert response.status_code == 422  # past the guard, refused by the request model


def test_methods_a_route_lacks_get_405_with_the_right_allow(client) -> None:
    for method in ("POST", "PUT", "DELETE"):
        response = client.request(method, "/metrics", headers={"content-type": "application/json"})
        assert response.status_code == 405, method
        assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD"}
    assert client.head("/metrics").status_code == 200
    for method in ("PUT", "PATCH"):
        runs = client.request(method, "/api/v1/runs", content=b"x", headers={"content-type": "text/plain"})
        assert runs.status_code == 405 and {"GET", "POST"} <= set(runs.headers["allow"].split(", "))
        one = client.request(method, "/api/v1/runs/1")
        assert one.status_code == 405 and {"GET", "DELETE"} <= set(one.headers["allow"].split(", "))
    one = client.post("/api/v1/runs/1", json={})
    assert one.status_code == 405 and {"GET", "DELETE"} <= set(one.headers["allow"].split(", "))
    assert "error" in one.json()


def test_a_valid_request_while_shutting_down_is_503(client, daemon) -> None:
    response = client.post("/api/v1/runs", json={"workload": "vae", "presets": "bs128"})
    assert response.status_code == 503 and "shutting down" in response.json()["error"]
    assert daemon.store.list_runs() == []


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/api/v1/runs?limit=0", "limit must be an integer from 1 to 1000"),
        ("/api/v1/runs?limit=%C2%B2", "limit must be an integer"),  # a superscript two passes str.isdigit()
        ("/api/v1/runs?outcome=fine", "unknown outcome 'fine'"),
        ("/api/v1/runs/%C2%B9", "run id must be a positive integer"),
        ("/api/v1/runs/99999999999999999999999", "run id must be a positive integer"),
    ],
)
def test_bad_queries_get_400(client, path: str, message: str) -> None:
    response = client.get(path)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_the_openapi_run_request_is_the_model(client) -> None:
    schema = client.get("/api/v1/openapi.json").json()["components"]["schemas"]["RunRequest"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["epochs"]["maximum"] == 1000
    assert schema["properties"]["timing"]["enum"] == ["reference", "device"]


def _stored_runs(daemon: FakeDaemon, count: int) -> list[int]:
    """Queued runs of one VAE config, straight into the store."""
    config = {
        "workload": "vae",
        "preset": "bs128",
        "batch_size": 128,
        "fraction": 0.5,
        "epochs": 1,
        "seed": 1,
    }
    return [
        daemon.store.create_run(config, requested_device="cpu", benchd_version="t", sample_unit="images")
        for _ in range(count)
    ]


def test_one_unreadable_record_never_fails_the_listing(client, daemon) -> None:
    good, bad = _stored_runs(daemon, 2)
    daemon.store._db.execute("UPDATE runs SET config = '{not json' WHERE id = ?", (bad,))  # edited by hand
    listed = client.get("/api/v1/runs")
    assert listed.status_code == 200
    assert [r["id"] for r in listed.json()["runs"]] == [good]
    ((unreadable),) = listed.json()["unreadable"]
    assert unreadable["id"] == bad and f"run {bad}: its stored record cannot be read" in unreadable["error"]
    one = client.get(f"/api/v1/runs/{bad}")
    assert one.status_code == 409 and "cannot be read" in one.json()["error"]


def test_runs_can_be_listed_by_config(client, daemon) -> None:
    first, _second = _stored_runs(daemon, 2)
    daemon.store._db.execute("UPDATE runs SET config_id = 'abcdef012345' WHERE id = ?", (first,))
    listed = client.get("/api/v1/runs?config=abcdef012345").json()["runs"]
    assert [r["id"] for r in listed] == [first]
    bad = client.get("/api/v1/runs?config=nope")
    assert bad.status_code == 400 and "12 hex digits" in bad.json()["error"]


def test_health_lists_each_devices_verdict_with_its_configs(client: TestClient, daemon: FakeDaemon) -> None:
    assert client.get("/api/v1/health").json() == {"devices": []}
    for seconds in (1.0, 1.0, 1.0, 2.0, 2.0):
        add_run(daemon.store, seconds)
    answer = client.get("/api/v1/health")
    assert answer.status_code == 200
    (device,) = answer.json()["devices"]
    assert device["device"] == "cpu" and device["state"] == "degraded"
    assert device["brief"] == "cpu degraded: vae bs128 2.00x own 2/3"
    (config,) = device["configs"]
    assert config["config"] == VAE_CONFIG_ID and config["band"]["source"] == "own"
    assert config["reason"].startswith(f"vae bs128 ({VAE_CONFIG_ID}): 2.00x the own band")
    assert client.post("/api/v1/health", json={}).status_code == 405
