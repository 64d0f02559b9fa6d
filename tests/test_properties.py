"""Property-based tests of the edges: whatever arrives, only the documented validation error escapes.

Arbitrary values for every field of the run request, the config file and the
cron parser, including NaN and infinity, integers of thousands of digits,
non-ASCII digits and deeply nested JSON; and the same through the HTTP API,
which must answer 4xx, never 5xx, and store nothing it refused.
"""

from __future__ import annotations

import contextlib
import io
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
from benchd.settings import ConfigError, settings_from_tree
from benchd.settings.cron import CronError, CronExpression

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
    assert 0 <= loaded.server.port <= 65535 and math.isfinite(loaded.runs.timeout)


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


HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)


REFUSED_HOST = (
    "the Host header names a host this daemon does not serve (see server.allowed_hosts)",
    "the Host header is malformed",
)
ROUTES = ["GET /healthz", "GET /metrics", "GET /api/v1/runs", "POST /api/v1/runs"]


@FAST
@given(HEADER_TEXT, st.sampled_from(ROUTES))
def test_any_host_header_is_served_or_refused_421_and_never_echoed(
    client,  # noqa: F811
    host: str,
    route: str,
) -> None:
    """DNS rebinding: whatever Host a page makes the browser send, the daemon answers only to its names."""
    method, path = route.split()
    response = client.request(method, path, headers={"host": host, "content-type": "application/json"},
                              content=b'{"workload": "resnet"}')  # fmt: skip
    assert response.status_code < 500
    if response.status_code == 421:  # the refusal is one fixed sentence, whatever the Host said
        assert response.json()["error"] in REFUSED_HOST
    else:
        assert host.strip().lower().rstrip(".").split(":")[0] in ("testserver", "localhost", "127.0.0.1", "")


@FAST
@given(st.integers(min_value=4301, max_value=20_000), st.sampled_from(["epochs", "seed", "fraction"]))
def test_integers_past_pythons_digit_limit_are_a_400(client, digits: int, field: str) -> None:  # noqa: F811
    content = '{"workload": "vae", "%s": %s}' % (field, "9" * digits)  # noqa: UP031 - json cannot write it
    response = client.post("/api/v1/runs", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400 and "number too long" in response.json()["error"]


HOSTILE_TEXT = st.text(min_size=1, max_size=30) | st.sampled_from(
    ["[bold red]x[/]", "$\\undefinedcmd$", "=1+1", "a|b\nc", "<script>", "\x1b]0;t\x07", "\x9b2J", ":smile:"]
)


@settings(max_examples=100, deadline=None)
@given(HOSTILE_TEXT, HOSTILE_TEXT)
def test_hostile_names_pass_through_every_output_format_as_data(hostname: str, device_name: str) -> None:
    from benchd.cli.report import plain_console
    from benchd.comparison import render

    bundle = json.loads(json.dumps(PUBLISHED_RUN))
    bundle["host"]["hostname"] = hostname
    for run in bundle["runs"]:
        run["device_name"] = device_name
        if run.get("system"):
            run["system"]["hostname"] = hostname
    parsed = parse_bundle(json.dumps(bundle), "hostile.json")
    comparison = table.build(results.from_bundle(parsed), [parsed.hostname])
    out = io.StringIO()
    plain_console(width=200, file=out).print(render.as_rich(comparison, (), wide=True))
    outputs = [out.getvalue(), render.as_markdown(comparison, ()), render.as_csv(comparison),
               render.as_json(comparison), render.html_table(comparison, ())]  # fmt: skip
    for text in outputs:
        # Line breaks and tabs are layout; every other control character would be obeyed by a terminal.
        controls = [c for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F]
        assert not controls, repr(text)
    markdown_rows = outputs[1].split("\n\n")[0].splitlines()  # a newline in a name adds no row
    assert all(line.startswith("|") and line.endswith("|") for line in markdown_rows)
