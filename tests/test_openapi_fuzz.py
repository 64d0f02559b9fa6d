"""schemathesis over the served OpenAPI document: every operation, with and without the token.

The real app over a real store and queue (its children are `false`, so a
queued run ends quickly as `error`). Zero server errors, and every answer
conforms to the document: status codes, content types, bodies and headers.
Bounded: a few dozen examples per operation.

Left out: the check that every schema-valid request is accepted. The run
request has rules across fields that a JSON Schema does not carry (model
options each workload declares and checks, a device this host has);
those requests get a 422 naming the field, which the other checks hold to
the document.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from benchd.lifecycle.ledger import RunLedger
from benchd.lifecycle.queue import RunQueue
from benchd.results.store import ResultsStore
from benchd.server.api import create_app
from benchd.server.metrics import BenchdCollector, DaemonFacts
from benchd.server.scoreboard import Scoreboard

from .test_api import FakeDaemon

TOKEN = "fuzz-token-0123456789"
EXAMPLES = 100


@pytest.fixture
def live(tmp_path: Path) -> Iterator[FakeDaemon]:
    store = ResultsStore(tmp_path / "benchd.sqlite3")
    scoreboard = Scoreboard()
    failing_child = (sys.executable, "-c", "raise SystemExit(3)")
    queue = RunQueue(RunLedger(store, scoreboard.record), queue_size=8, grace=1.0, command=failing_child)
    yield FakeDaemon(store, queue, BenchdCollector(scoreboard, queue, store, DaemonFacts), tmp_path)
    queue.shutdown(30)
    store.close()


@pytest.mark.slow
@pytest.mark.parametrize(("configured", "sent"), [(None, None), (TOKEN, TOKEN), (TOKEN, None)])
def test_every_operation_conforms_and_never_fails_on_the_server(live, configured, sent) -> None:
    live.token = configured
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", create_app(live))
    headers = {"Authorization": f"Bearer {sent}"} if sent else {}
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def conforms(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        try:
            conforms()
        except Exception as exc:  # collect every operation's failure, not just the first
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
