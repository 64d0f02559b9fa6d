"""Strings from outside as data in every output: rich markup, terminal escapes, mathtext, spreadsheet
formulas, markdown and HTML, and bytes that are not UTF-8."""

from __future__ import annotations

import csv
import io
import json
import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from benchd import text
from benchd.server.metrics import BenchdCollector, DaemonFacts

from .published import bundle
from .test_cli import benchd

MARKUP = "[bold red]x[/]"
ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x9b31m"
MATHTEXT = r"$\undefinedcmd$"
TORCH = "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory"
FORMULA = '=HYPERLINK("http://evil.example")'


def test_terminal_shows_controls_instead_of_sending_them() -> None:
    shown = text.terminal(f"a{ESCAPES}b\nc")
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in shown)
    assert shown == "a\\x1b]0;pwned\\x07\\x1b[2J\\x9b31mb\\x0ac"
    assert text.terminal("line one\nline two", multiline=True) == "line one\nline two"


@given(st.text())
def test_no_control_character_survives_terminal(value: str) -> None:
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text.terminal(value))


@pytest.mark.parametrize("value", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_csv_cells_that_a_spreadsheet_would_run_get_a_quote(value: str) -> None:
    assert text.csv_cell(value) == "'" + text.terminal(value)
    assert text.csv_cell("1.5") == "1.5" and text.csv_cell(1.5) == 1.5


def test_markdown_cells_escape_pipes_html_and_line_breaks() -> None:
    assert text.markdown_cell("a|b<script>\nc") == "a\\|b&lt;script&gt;<br>c"


def test_invalid_utf8_from_the_os_becomes_the_replacement_character() -> None:
    decoded_by_os = b"host-\xff\xfe".decode("utf-8", "surrogateescape")
    assert text.from_outside(decoded_by_os) == "host-\ufffd\ufffd"


def test_a_hostname_that_is_not_utf8_never_fails_a_scrape(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every scrape was a 500: the host info label could not be encoded."""
    from benchd import hostinfo

    monkeypatch.delenv("BENCHD_HOSTNAME", raising=False)
    monkeypatch.delenv("NODE_NAME", raising=False)
    monkeypatch.setattr(socket, "gethostname", lambda: b"n\xffde".decode("utf-8", "surrogateescape"))
    facts = DaemonFacts(host=hostinfo.describe_host())
    registry = CollectorRegistry()
    registry.register(_HostOnly(facts))
    exposition = generate_latest(registry).decode()
    assert 'hostname="n\ufffdde"' in exposition


class _HostOnly:
    """The collector's host families alone (the rest needs a store and queue, tested elsewhere)."""

    def __init__(self, facts: DaemonFacts) -> None:
        self.facts = facts

    def collect(self):  # type: ignore[no-untyped-def]
        return BenchdCollector._host(self.facts.host)


@pytest.fixture
def hostile_bundles(tmp_path: Path) -> list[Path]:
    """The published bundles, their host, device names and failure messages rewritten as an attacker
    (or an unlucky torch error) would write them."""
    paths = []
    for hostname, device_name in (("m1-ultra", MARKUP + MATHTEXT), ("rtx-2070-super", FORMULA + ESCAPES)):
        data = bundle(hostname)
        data["host"]["hostname"] = f"{hostname}{MARKUP}{ESCAPES}|{MATHTEXT}"
        for run in data["runs"]:
            run["device_name"] = device_name
            if run["outcome"] != "ok":
                run["message"] = TORCH
        path = tmp_path / f"{hostname}.json"
        path.write_text(json.dumps(data))
        paths.append(path)
    return paths


@pytest.mark.parametrize("output_format", ["table", "markdown", "csv", "json", "html"])
def test_compare_writes_hostile_fields_as_data_in_every_format(hostile_bundles, output_format) -> None:
    result = benchd("compare", *map(str, hostile_bundles), "--format", output_format, "--wide", timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out
    if output_format == "table":
        assert MARKUP in out  # shown as typed, not styled (nor a crash)
    if output_format == "csv":
        cells = [cell for row in csv.reader(io.StringIO(out)) for cell in row]
        assert not any(cell.startswith(("=", "+", "@")) for cell in cells)
        assert any(cell.startswith("'=HYPERLINK") for cell in cells)
    if output_format == "markdown":
        assert "\\|" in out
    if output_format == "html":
        assert "<script" not in out


def test_report_draws_hostile_labels_without_mathtext(hostile_bundles, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    result = benchd("report", *map(str, hostile_bundles), "--output", str(page), timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and page.stat().st_size > 0
