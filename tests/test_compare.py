"""`benchd export`, `compare` and `report`: the published table from bundles, two real hosts end to end."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from benchd.comparison import render, results, table
from benchd.results.bundle import parse_bundle

from . import published
from .test_cli import assert_bad_input, benchd
from .test_identity import _clean_env

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "docs" / "bundle.schema.json").read_text())
M1 = str(published.DIRECTORY / "m1-ultra.json")
RTX = str(published.DIRECTORY / "rtx-2070-super.json")

# The published table (docs/workloads.md cites it), as the comparison printed it.
PUBLISHED = """
| dcgan | bs64 | 1942.078 | runtime error | 285.473 |
| dcgan | bs1024 | 1684.591 | runtime error | 252.657 |
| siamese | bs64 | 353.208 | 112.131 | 39.839 |
| siamese | bs1024 | 197.937 | 15.547 | 20.538 |
| transformer | b20-e200-l2-h200 | 282.73 | 505.52 | 47.39 |
| transformer | b20-e500-l2-h500 | 405.90 | 502.79 | 73.36 |
| transformer | b200-e500-l4-h500 | 362.12 | 104.67 | 59.98 |
| transformer | b200-e500-l6-h1024 | 513.85 | 137.19 | 72.54 |
| transformer | b200-e500-l10-h1024 | 745.80 | 216.04 | DNF (out of memory) |
| vae | bs128 | 3.746 | 8.760 | 6.555 |
| vae | bs5120 | 1.933 | 1.998 | 6.074 |
"""
COLUMNS = (("m1-ultra", "cpu"), ("m1-ultra", "mps"), ("rtx-2070-super", "cuda"))


def published_cells() -> dict[tuple[str, str, str, str], str]:
    cells = {}
    for line in PUBLISHED.strip().splitlines():
        workload, preset, *values = (part.strip() for part in line.strip("|").split("|"))
        for (host, device_type), value in zip(COLUMNS, values, strict=True):
            cells[(workload, preset, host, device_type)] = value
    return cells


def test_published_bundles_are_current_and_valid() -> None:
    for path, text in published.outputs().items():
        assert path.read_text() == text, f"{path} is stale: run python -m tests.published"
        jsonschema.Draft202012Validator(SCHEMA).validate(json.loads(text))


def test_compare_reproduces_the_published_table_and_its_speedups() -> None:
    result = benchd("compare", M1, RTX, "--format", "json", "--show", "memory,power")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["baseline"] == "m1-ultra Apple M1 Ultra (CPU)"
    cells = {(c["workload"], c["preset"], c["host"], c["device_type"]): c for c in answer["cells"]}
    expected = published_cells()
    assert set(cells) == set(expected) and not any(c["apart"] for c in answer["cells"])
    for key, value in expected.items():
        cell = cells[key]
        if value[0].isdigit():
            assert cell["epoch_seconds"] == pytest.approx(float(value)) and cell["failure"] is None, key
            assert cell["scaled"] is False and cell["runs"] == 1
        else:
            assert cell["epoch_seconds"] is None and cell["failure"] == value, key
    rtx_dcgan = cells[("dcgan", "bs64", "rtx-2070-super", "cuda")]
    assert rtx_dcgan["speedup"] == pytest.approx(1942.078 / 285.473)
    assert rtx_dcgan["peak_device_memory_bytes"] == 1.3e9 and rtx_dcgan["average_power_watts"] == 84
    # The VAE was faster on the M1's CPU than on either GPU: speed-ups below 1.
    assert cells[("vae", "bs5120", "rtx-2070-super", "cuda")]["speedup"] == pytest.approx(1.933 / 6.074)
    assert cells[("vae", "bs128", "m1-ultra", "cpu")]["baseline"] is True


@pytest.mark.parametrize(
    ("given", "chosen"),
    [(RTX, "rtx-2070-super "), (Path(RTX).name, "rtx-2070-super "), ("rtx-2070-super", "rtx-2070-super "),
     (Path(M1).stem + "/mps", "m1-ultra Apple M1 Ultra (MPS)")],
)  # fmt: skip
def test_the_baseline_may_be_named_by_its_bundle_file(given: str, chosen: str) -> None:
    """The default would be the M1's CPU: each of these names another column."""
    result = benchd("compare", M1, RTX, "--format", "json", "--baseline", given)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["baseline"].startswith(chosen)


def test_the_terminal_table_fits_100_columns_and_names_failures() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchd", "compare", M1, RTX, "--baseline", "rtx-2070-super"],
        capture_output=True, text=True, check=False, env={**_clean_env(), "COLUMNS": "100", "TERM": "dumb"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert max(len(line) for line in result.stdout.splitlines()) <= 100
    assert "runtime error" in result.stdout and "DNF (out of memory)" in result.stdout
    assert "baseline rtx-2070-super NVIDIA GeForce RTX 2070 SUPER (CUDA)" in " ".join(result.stdout.split())


@pytest.mark.parametrize("output_format", ["markdown", "csv", "html"])
def test_every_format_carries_the_cells(output_format: str) -> None:
    result = benchd("compare", M1, RTX, "--format", output_format)
    assert result.returncode == 0, result.stderr
    first = "1942.078" if output_format == "csv" else "1,942.078"
    for figure in (first, "runtime error", "DNF (out of memory)"):
        assert figure in result.stdout, figure


def _bundle_file(tmp_path: Path, name: str, change) -> str:
    data = json.loads(Path(M1).read_text())
    change(data)
    path = tmp_path / name
    path.write_text(json.dumps(data) if isinstance(data, dict) else data)
    return str(path)


def test_bad_bundles_and_options_are_one_line_exit_2(tmp_path: Path) -> None:
    other_version = _bundle_file(tmp_path, "v9.json", lambda d: d.update(version=9))
    assert_bad_input(benchd("compare", other_version), "v9.json", "bundle version 9")
    truncated = tmp_path / "truncated.json"
    truncated.write_text(Path(M1).read_text()[:5000])
    assert_bad_input(benchd("compare", str(truncated)), "truncated.json", "not valid JSON")
    copied = tmp_path / "copy.json"
    shutil.copy(M1, copied)
    assert_bad_input(benchd("compare", M1, str(copied)), "copy.json", "host m1-ultra is also the host of")
    unknown = benchd("compare", M1, RTX, "--baseline", "nowhere")
    assert_bad_input(unknown, "baseline 'nowhere'", "m1-ultra/mps")
    not_bundle = tmp_path / "list.json"
    not_bundle.write_text("[1, 2]")
    assert_bad_input(benchd("compare", str(not_bundle)), "list.json", "not a benchd results bundle")
    bad_run = _bundle_file(tmp_path, "bad-run.json", lambda d: d["runs"][3].pop("workload"))
    assert_bad_input(benchd("compare", bad_run), "bad-run.json", "runs[3] is not a run")
    nan = tmp_path / "nan.json"
    nan.write_text(Path(M1).read_text().replace('"duration_seconds": 1942.078', '"duration_seconds": NaN'))
    assert_bad_input(benchd("compare", str(nan)), "nan.json", "NaN")
    assert_bad_input(benchd("compare", M1, "--show", "speed"), "--show: unknown figure 'speed'")
    assert_bad_input(benchd("compare"), "give bundle files or --prometheus")
    assert_bad_input(benchd("compare", str(tmp_path / "missing.json")), "missing.json")
    assert_bad_input(benchd("export", "--since", "yesterday", "--data-dir", str(tmp_path)), "--since")


def _variant(fraction: float, seconds: list[float], host: str = "other") -> dict:
    """The M1's VAE bs128 CPU run, as measured on `host` at another fraction, several times."""
    data = json.loads(Path(M1).read_text())
    data["host"]["hostname"] = host
    template = next(r for r in data["runs"] if r["workload"] == "vae" and r["preset"] == "bs128")
    runs = []
    for number, value in enumerate(seconds, start=1):
        run = copy.deepcopy(template)
        run.update(id=number, fraction=fraction, system={**run["system"], "hostname": host})
        run["config"]["fraction"] = fraction
        run["config_id"] = "00000000f010"  # another config's id
        run["epochs"][0]["duration_seconds"] = value
        runs.append(run)
    data["runs"] = runs
    return data


def test_cells_of_another_config_are_kept_apart_with_the_reason() -> None:
    m1 = parse_bundle(Path(M1).read_text(), M1)
    other = parse_bundle(json.dumps(_variant(0.1, [0.5, 0.4, 0.6])), "other.json")
    comparison = table.build(results.from_bundle(m1) + results.from_bundle(other), ["m1-ultra", "other"])
    row = ("vae", "bs128")
    assert comparison.cell(row, comparison.columns[-1]) is None  # not beside the full-epoch figures
    (apart,) = comparison.apart
    assert apart.row == row and apart.column.host == "other"
    assert apart.reason == "fraction 0.1 (row: 1)"
    # Three runs: their median, scaled to a full epoch and marked so, with their spread.
    assert apart.cell.seconds == pytest.approx(5.0) and apart.cell.scaled and apart.cell.runs == 3
    assert apart.cell.spread == pytest.approx(0.2)
    assert apart.cell.text == "5.000*" and apart.cell.unstable  # CV 20%: more than 5%


def test_machines_closer_than_their_noise_are_said_to_be() -> None:
    def results_of(host: str, seconds: list[float]) -> list[results.Result]:
        column = results.Column(host, "cuda", "H100")
        labels = {"batch_size": "128"}
        return [results.Result(column, "vae", "bs128", "aaaaaaaaaaaa", labels, 1.0, "ok", value, float(index))
                for index, value in enumerate(seconds)]  # fmt: skip

    close = table.build(results_of("a", [10.0, 10.6, 9.4]) + results_of("b", [10.2, 10.8, 9.6]), ["a", "b"])
    (row,) = close.rows
    cell = close.cell(row, close.columns[1])
    assert cell is not None and cell.within_noise
    assert "(within noise)" in render.cell_lines(cell, close.columns[1], close, ())[2]
    apart = table.build(results_of("a", [10.0, 10.1, 9.9]) + results_of("b", [13.0, 13.1, 12.9]), ["a", "b"])
    assert not apart.cell(row, apart.columns[1]).within_noise


def test_one_result_from_prometheus_brings_its_daemons_measure_of_the_noise() -> None:
    """A fleet's Prometheus holds each config's last figure and benchd_runs_variation_ratio, not its runs."""

    def latest(host: str, seconds: float, variation: float | None) -> results.Result:
        column = results.Column(host, "cuda", "H100")
        labels = {"batch_size": "128"}
        return results.Result(column, "vae", "bs128", "aaaaaaaaaaaa", labels, 1.0, "ok", seconds, 0.0,
                              variation=variation)  # fmt: skip

    noisy = table.build([latest("a", 10.0, 0.08), latest("b", 10.5, 0.01)], ["a", "b"])
    (row,) = noisy.rows
    a, b = (noisy.cell(row, column) for column in noisy.columns)
    assert a.cv == 0.08 and a.unstable and b is not None and not b.unstable and b.within_noise
    steady = table.build([latest("a", 10.0, None), latest("b", 10.5, None)], ["a", "b"])
    assert steady.cell(row, steady.columns[1]).cv is None  # no runs to judge by: never "within noise"


def test_contended_figures_are_shown_marked_only_when_asked() -> None:
    def run_on(host: str, seconds: float, contended: bool) -> results.Result:
        column = results.Column(host, "cpu", "Test CPU")
        labels = {"batch_size": "128"}
        return results.Result(column, "vae", "bs128", "aaaaaaaaaaaa", labels, 1.0, "ok", seconds, 0.0,
                              contended=contended)  # fmt: skip

    found = [run_on("a", 10.0, False), run_on("b", 30.0, True)]
    default = table.build(found, ["a", "b"], baseline="a")
    (row,) = default.rows
    assert default.cell(row, default.columns[1]).text == "contended (not comparable)"
    shown = table.build(found, ["a", "b"], baseline="a", include_contended=True)
    cell = shown.cell(row, shown.columns[1])
    assert cell.seconds == 30.0 and cell.contended and cell.text == "30.000 (contended)"
    assert cell.speedup is None  # never compared
    assert render.CONTENDED_NOTE in render.notes(shown)
    (record,) = [r for r in render.records(shown) if r["host"] == "b"]
    assert record["contended"] is True
    both = table.build([*found, run_on("b", 11.0, False)], ["a", "b"], baseline="a", include_contended=True)
    assert both.cell(row, both.columns[1]).seconds == 11.0  # a clean figure wins over a contended one


def test_suite_and_config_select_the_runs_compared() -> None:
    m1 = parse_bundle(Path(M1).read_text(), M1)
    found = results.from_bundle(m1)
    vae = next(r for r in found if r.workload == "vae" and r.preset == "bs128")
    only = table.build(found, ["m1-ultra"], config=vae.config_id)
    assert only.rows == [("vae", "bs128")] and len(only.cells) == 2  # its CPU and MPS runs
    with pytest.raises(table.ComparisonError, match="no finished runs of suite standard-v1"):
        table.build(found, ["m1-ultra"], suite="standard-v1")  # the published runs are full epochs


# Two machines measured for real: each data dir has its own BENCHD_HOSTNAME.
HOSTS = ("bench-a", "bench-b")


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory: pytest.TempPathFactory, small_data_dir: Path) -> Iterator[dict[str, Path]]:
    root = tmp_path_factory.mktemp("hosts")
    data_dirs = {}
    for host in HOSTS:
        data_dir = root / host
        data_dir.mkdir()
        (data_dir / "datasets").symlink_to(small_data_dir / "datasets")
        subprocess.run(
            [sys.executable, "-m", "benchd", "run", "vae", "-p", "bs128", "--fraction", "0.1",
             "--epochs", "2", "--device", "cpu", "--no-telemetry", "--data-dir", str(data_dir)],
            capture_output=True, text=True, check=True, env={**_clean_env(), "BENCHD_HOSTNAME": host},
        )  # fmt: skip
        data_dirs[host] = data_dir
    yield data_dirs


@pytest.mark.slow
def test_two_hosts_export_bundles_that_compare(two_hosts: dict[str, Path], tmp_path: Path) -> None:
    bundles = []
    for host, data_dir in two_hosts.items():
        path = tmp_path / f"{host}.json"
        exported = benchd("export", "--data-dir", str(data_dir), "--output", str(path))
        assert exported.returncode == 0, exported.stderr
        assert f"exported 1 run(s) of host {host}" in exported.stderr
        bundle = json.loads(path.read_text())
        jsonschema.Draft202012Validator(SCHEMA).validate(bundle)
        assert bundle["host"]["hostname"] == host and bundle["host"]["torch"]
        bundles.append(str(path))
    (a,), (b,) = (json.loads(Path(p).read_text())["runs"] for p in bundles)
    assert a["config_id"] == b["config_id"] is not None  # joinable: the same work on two machines
    assert a["system"]["hostname"] == "bench-a" and b["system"]["hostname"] == "bench-b"
    assert a["system"]["torch"] and a["system"]["cpu"] and a["system"]["accelerator"] is None
    compared = benchd("compare", *bundles, "--format", "json", "--show", "flops,mfu")
    assert compared.returncode == 0, compared.stderr
    cells = json.loads(compared.stdout)["cells"]
    assert [(c["host"], c["workload"], c["preset"]) for c in cells] == [(h, "vae", "bs128") for h in HOSTS]
    for cell, run in zip(cells, (a, b), strict=True):
        assert cell["config"] == run["config_id"] and cell["scaled"] is True
        assert cell["epoch_seconds"] == pytest.approx(run["summary"]["epoch_seconds"] / 0.1)
        computed = run["summary"]["compute"]  # rates: the same for a fraction as for the whole epoch
        assert (cell["flops_per_second"], cell["mfu_ratio"]) == (
            computed["flops_per_second"],
            computed["mfu_ratio"],
        )
    assert cells[1]["speedup"] == pytest.approx(cells[0]["epoch_seconds"] / cells[1]["epoch_seconds"])
    recent = benchd("export", "--data-dir", str(two_hosts["bench-a"]), "--since", "1h", "--workload", "dcgan")
    assert recent.returncode == 0 and json.loads(recent.stdout)["runs"] == []


@pytest.mark.slow
def test_runs_and_show_read_the_local_store_when_no_daemon_answers(two_hosts: dict[str, Path]) -> None:
    from .daemon_process import free_port

    data_dir = str(two_hosts["bench-a"])
    nowhere = f"http://127.0.0.1:{free_port()}"
    listed = benchd("runs", "--url", nowhere, "--data-dir", data_dir, "--json")
    assert listed.returncode == 0, listed.stderr
    assert f"no daemon at {nowhere}: reading the local store" in listed.stderr
    (run,) = json.loads(listed.stdout)
    shown = benchd("show", str(run["id"]), "--url", nowhere, "--data-dir", data_dir, "--wide")
    assert shown.returncode == 0, shown.stderr
    assert run["config_id"] in shown.stdout and "local store" in shown.stdout and "10% epoch" in shown.stdout
    (computed,) = [line for line in shown.stdout.splitlines() if line.startswith("  compute: ")]
    assert "FLOP per step" in computed and "FLOP/s achieved" in computed
    assert "MFU" in computed and "(measured: torch.float32" in computed
    missing = benchd("show", "99", "--url", nowhere, "--data-dir", data_dir)
    assert missing.returncode == 1 and "no run 99 in the local store" in missing.stderr


@pytest.mark.slow
def test_report_is_one_page_that_renders_in_a_browser(two_hosts: dict[str, Path], tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is missing: the test command installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    bundles = []
    for host, data_dir in two_hosts.items():
        path = tmp_path / f"{host}.json"
        assert benchd("export", "--data-dir", str(data_dir), "--output", str(path)).returncode == 0
        bundles.append(str(path))
    page_path = tmp_path / "report.html"
    made = benchd("report", *bundles, M1, RTX, "--output", str(page_path),
                  "--plots-dir", str(tmp_path / "plots"), "--plot-format", "png")  # fmt: skip
    assert made.returncode == 0, made.stderr
    # Seconds, speed-ups, and the published memory and power figures (no energy was measured).
    assert sorted(p.suffix for p in (tmp_path / "plots").iterdir()) == [".png"] * 4
    text = page_path.read_text()
    assert "http://" not in text and "https://" not in text.replace("http://www.w3.org", "")  # self-contained
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            local = ("file:", "data:")  # anything else would be the network: refused
            page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(local) else r.abort())
            page.goto(page_path.as_uri())
            images = page.evaluate("[...document.images].map(i => [i.alt, i.complete, i.naturalWidth])")
            headers = page.locator("#comparison thead th").all_inner_texts()
            vae_row = page.locator("#comparison tbody tr", has_text="bs 128").first.locator("td")
            vae_cells = vae_row.all_inner_texts()
        finally:
            browser.close()
    assert [alt.split(" ")[0] for alt, _c, _w in images] == ["Seconds", "Speed-up", "Peak", "Average"]
    assert all(complete and width > 0 for _alt, complete, width in images), images
    assert headers[3:] == [
        "bench-a " + headers[3].split(" ", 1)[1], "bench-b " + headers[4].split(" ", 1)[1],
        "m1-ultra Apple M1 Ultra (CPU)", "m1-ultra Apple M1 Ultra (MPS)",
        "rtx-2070-super NVIDIA GeForce RTX 2070 SUPER (CUDA)",
    ]  # fmt: skip
    assert vae_cells[:3] == ["vae", "bs128", "bs 128"]
    assert vae_cells[5].startswith("3.746") and vae_cells[7].startswith("6.555")
