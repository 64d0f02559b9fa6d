"""Property-based tests of the edges: whatever arrives, only the documented validation error escapes.

Arbitrary values for every field of the run request, the config file and the
cron parser, including NaN and infinity, integers of thousands of digits,
non-ASCII digits and deeply nested JSON; and the same through the HTTP API,
which must answer 4xx, never 5xx, and store nothing it refused.
"""

from __future__ import annotations

import contextlib
import json
import math
from datetime import datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchd.catalog import CatalogError
from benchd.catalog import request as request_model
from benchd.comparison import results, table
from benchd.results.bundle import BundleError, parse_bundle
from benchd.server.config import ConfigError, settings_from_tree
from benchd.server.cron import CronError, CronExpression

from .test_api import client, daemon  # noqa: F401 - the API tests' fixtures: the real app over a fake daemon

EDGE_NUMBERS = st.sampled_from([math.nan, math.inf, -math.inf, 10**4000, -(2**63), 2**63, 1e308, -0.0, 0])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True), EDGE_NUMBERS,
    st.text(max_size=40), st.sampled_from(["²", "١٢", "all", "bs128", "cuda:0", "1h", "30s", "5m", "0.1"]),
)  # fmt: skip
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
REQUEST_FIELDS = [*sorted(request_model.RunRequestFields.model_fields), "preset", "colour"]
CRON_PARTS = ["*", "*/5", "1-5", "0", "59", "61", "²", "1,2", "-"]
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(
    st.dictionaries(st.sampled_from(REQUEST_FIELDS), VALUES, max_size=8),
    st.sampled_from(["vae", "transformer", 7]),
)
def test_the_request_model_accepts_or_names_a_field(fields: dict, workload: object) -> None:
    try:
        parsed = request_model.parse({"workload": workload, **fields})
        configs = parsed.configs()
    except CatalogError as exc:
        assert str(exc)
        return
    for config in configs:
        assert math.isfinite(config.fraction) and 0 < config.fraction <= 1 and 1 <= config.epochs <= 1000


CONFIG_KEYS = {
    "server": ["host", "port", "token", "token_file"],
    "runs": ["queue_size", "timeout", "grace"],
    "schedule": ["jitter", "start_delay"],
    "busy_check": ["enabled", "max_cpu_load", "gpu_processes"],
}


@st.composite
def config_trees(draw: st.DrawFn) -> dict:
    tree: dict = {}
    for section, keys in CONFIG_KEYS.items():
        if draw(st.booleans()):
            tree[section] = draw(st.dictionaries(st.sampled_from(keys), VALUES, max_size=3))
    if draw(st.booleans()):
        schedule_keys = [
            "interval",
            "cron",
            "presets",
            "epochs",
            "fraction",
            "timeout",
            "device",
            "suite",
            "seed",
        ]
        table = draw(st.dictionaries(st.sampled_from(schedule_keys), VALUES, max_size=4))
        tree["workloads"] = {draw(st.sampled_from(["vae", "dcgan", "nope"])): table}
    return tree


@FAST
@given(config_trees())
def test_the_config_loader_loads_or_names_a_key(tree: dict) -> None:
    try:
        loaded = settings_from_tree(tree)
    except ConfigError as exc:
        assert str(exc).startswith("config ")
        return
    assert 0 <= loaded.port <= 65535 and math.isfinite(loaded.timeout_seconds)


@FAST
@given(st.text(max_size=40) | st.lists(st.sampled_from(CRON_PARTS), min_size=1, max_size=6).map(" ".join))
def test_the_cron_parser_parses_or_says_why(text: str) -> None:
    try:
        expression = CronExpression.parse(text)
    except CronError as exc:
        assert str(exc)
        return
    assert expression.next_after(datetime(2026, 11, 27, 12, 0)) > datetime(2026, 11, 27, 12, 0)


@FAST
@given(VALUES | st.dictionaries(st.sampled_from(REQUEST_FIELDS), VALUES, max_size=6))
def test_the_api_answers_4xx_and_stores_nothing_it_refuses(client, daemon, body: object) -> None:  # noqa: F811
    import json

    try:
        content = json.dumps(body, allow_nan=True)
    except ValueError:  # integers beyond what json can write: send their text
        content = str(body)
    response = client.post("/api/v1/runs", content=content, headers={"content-type": "application/json"})
    assert response.status_code < 500, response.text
    assert "error" in response.json() or response.status_code in (202, 503)


def test_deeply_nested_json_is_a_4xx(client) -> None:  # noqa: F811
    deep = '{"workload": "vae", "presets": ' + "[" * 30_000 + "]" * 30_000 + "}"  # within the body limit
    response = client.post("/api/v1/runs", content=deep, headers={"content-type": "application/json"})
    assert response.status_code == 400 and "nested too deeply" in response.json()["error"]


PUBLISHED_RUN = json.loads((Path(__file__).parent / "fixtures" / "published" / "m1-ultra.json").read_text())
RUN_FIELDS = sorted(PUBLISHED_RUN["runs"][0])


@FAST
@given(st.dictionaries(st.sampled_from(RUN_FIELDS), VALUES, min_size=1, max_size=4), st.booleans())
def test_a_bundle_reads_or_names_the_file_and_the_run(changes: dict, into_epoch: bool) -> None:
    """Whatever a bundle's run holds, reading it and building the table raise nothing but BundleError."""
    bundle = json.loads(json.dumps(PUBLISHED_RUN))
    target = (
        bundle["runs"][0]["epochs"][0] if into_epoch and bundle["runs"][0]["epochs"] else bundle["runs"][0]
    )
    target.update(changes)
    try:
        text = json.dumps(bundle, allow_nan=True)
    except ValueError:
        return  # not even writable as JSON
    try:
        parsed = parse_bundle(text, "fuzzed.json")
    except BundleError as exc:
        assert str(exc).startswith("fuzzed.json: ")
        return
    with contextlib.suppress(table.ComparisonError):  # nothing left to compare: the documented refusal
        table.build(results.from_bundle(parsed), [parsed.hostname])
