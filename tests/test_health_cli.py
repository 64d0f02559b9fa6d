"""`benchd health` and `benchd bands` on local stores: the verdict, its exit code and its forms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchd.results.model import Outcome
from benchd.results.store import ResultsStore

from .stored_runs import VAE_CONFIG_ID, add_run
from .test_cli import benchd


def store_with(
    data_dir: Path, seconds: list[float | None], outcome: Outcome = Outcome.OK, host: str = "test-host"
) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    store = ResultsStore(data_dir / "benchd.sqlite3")
    for value in seconds:
        add_run(store, value, outcome if value is None else Outcome.OK, host=host)
    store.close()
    return data_dir


def test_no_store_is_unknown(tmp_path: Path) -> None:
    result = benchd("health", data_dir=tmp_path)
    assert result.returncode == 2 and "no results store" in result.stderr
    npd = benchd("health", "--format", "npd", data_dir=tmp_path)
    assert (
        npd.returncode == 2 and npd.stdout.startswith("unknown: no results store") and len(npd.stdout) <= 81
    )


def test_degraded_in_every_format(tmp_path: Path) -> None:
    data = store_with(tmp_path, [1.0, 1.01, 0.99, 1.5, 1.0, 1.5])
    text = benchd("health", "--configs", data_dir=data)
    assert text.returncode == 1
    first, config = text.stdout.splitlines()
    assert first.startswith(f"cpu degraded: vae bs128 ({VAE_CONFIG_ID}): 1.50x the own band (median of 4 ")
    assert "2 of the last 3 runs beyond it, since " in first and config.startswith("  degraded: vae bs128")
    npd = benchd("health", "--format", "npd", data_dir=data)
    assert (npd.returncode, npd.stdout) == (1, "cpu degraded: vae bs128 1.50x own 2/3\n")
    answer = json.loads(benchd("health", "--format", "json", data_dir=data).stdout)
    (device,) = answer["devices"]
    (verdict,) = device["configs"]
    assert device["state"] == verdict["state"] == "degraded"
    assert verdict["band"]["source"] == "own" and verdict["band"]["median_seconds"] == pytest.approx(1.0)
    assert (verdict["beyond_runs"], verdict["window_runs"]) == (2, 3) and verdict["ratio"] == pytest.approx(
        1.5
    )


@pytest.mark.parametrize(
    ("seconds", "code", "text"),
    [
        ([1.0, 1.0, 1.0, 1.02], 0, "cpu healthy: 1 of 1 configs within their bands"),
        (
            [1.0, 1.0],
            2,
            "cpu unknown: vae bs128 (abcdefabcdef): no band yet (2 ok runs of the 3 its own needs)",
        ),
    ],
)
def test_healthy_and_unknown(tmp_path: Path, seconds: list[float], code: int, text: str) -> None:
    result = benchd("health", data_dir=store_with(tmp_path, seconds))
    assert result.returncode == code and result.stdout.startswith(text), result.stdout


def test_failing_where_it_used_to_succeed(tmp_path: Path) -> None:
    data = store_with(tmp_path, [1.0, 1.0])
    store_with(data, [None, None], Outcome.ERROR)
    result = benchd("health", data_dir=data)
    assert result.returncode == 1
    assert (
        "cpu failing: vae bs128 (abcdefabcdef): 2 of the last 3 runs ended error where it used to succeed"
        in (result.stdout)
    )


def test_the_health_settings_are_read_and_checked(tmp_path: Path) -> None:
    data = store_with(tmp_path / "data", [1.0, 1.01, 0.99, 1.5, 1.5])
    config = tmp_path / "benchd.toml"
    config.write_text("[health]\nmin_slowdown = 0.6\n")
    assert benchd("health", "--config", str(config), data_dir=data).returncode == 0  # 1.5x is within 60%
    config.write_text("[health]\nbeyond_runs = 4\n")
    result = benchd("health", "--config", str(config), data_dir=data)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: config health.beyond_runs: must be at most health.window_runs (3)"


def test_a_fleet_band_judges_a_device_slow_from_its_first_run(tmp_path: Path) -> None:
    """Its own band calls it healthy (it was always this slow); three other hosts' bundles say otherwise."""
    data = store_with(tmp_path / "mine", [1.5, 1.5, 1.5, 1.5, 1.52])
    bundles = []
    for index, seconds in enumerate((1.0, 1.02, 0.98)):
        other = store_with(tmp_path / f"peer-{index}", [seconds, seconds], host=f"peer-{index}")
        bundle = tmp_path / f"peer-{index}.json"
        assert benchd("export", "-o", str(bundle), data_dir=other).returncode == 0
        bundles.append(bundle)
    assert benchd("health", data_dir=data).returncode == 0
    fleet = [arg for bundle in bundles for arg in ("--fleet", str(bundle))]
    result = benchd("health", "--band", "fleet", *fleet, data_dir=data)
    assert result.returncode == 1
    assert "1.52x the fleet band (Test CPU on 3 hosts; median 1.000 s)" in result.stdout
    two = benchd("health", "--band", "fleet", *fleet[:4], data_dir=data)
    assert two.returncode == 2 and "no band yet" in two.stdout  # two hosts are not a fleet
    remote = benchd("health", "--url", "http://127.0.0.1:1", "--band", "fleet", data_dir=data)
    assert remote.returncode == 2 and "judge the local store" in remote.stderr


def test_bands_add_keeps_a_bundles_band_and_health_judges_against_it(tmp_path: Path) -> None:
    measured = store_with(tmp_path / "reference", [2.0, 2.02, 1.98], host="ref-host")
    bundle = tmp_path / "ref-host.json"
    assert benchd("export", "-o", str(bundle), data_dir=measured).returncode == 0
    data = store_with(tmp_path / "data", [1.0, 1.0])
    added = benchd("bands", "add", str(bundle), data_dir=data)
    assert added.returncode == 0
    assert added.stdout.strip() == f"added Test CPU: vae bs128 ({VAE_CONFIG_ID}) 2.000 s over 3 runs"
    listing = json.loads(benchd("bands", "--json", data_dir=data).stdout)
    mine = [band for band in listing if band["origin"] == "ref-host.json"]
    assert len(mine) == 1 and mine[0]["spread"] == pytest.approx(0.01) and mine[0]["timing"] == "reference"
    assert any(band["origin"] == "shipped" and band["device_name"] == "NVIDIA H200" for band in listing)
    result = benchd("health", "--band", "reference", data_dir=data)
    assert result.returncode == 0 and "0.50x the reference band (Test CPU" in result.stdout
    again = benchd("bands", "add", str(bundle), data_dir=data)  # the same key is replaced, not doubled
    assert again.returncode == 0
    assert (
        len(
            [
                b
                for b in json.loads(benchd("bands", "--json", data_dir=data).stdout)
                if b["origin"] != "shipped"
            ]
        )
        == 1
    )


def test_bands_add_refuses_what_gives_no_band(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    source = store_with(tmp_path / "failed", [None], Outcome.ERROR)
    assert benchd("export", "-o", str(empty), data_dir=source).returncode == 0
    result = benchd("bands", "add", str(empty), data_dir=tmp_path / "data")
    assert result.returncode == 2 and "no ok, uncontended run" in result.stderr
    missing = benchd("bands", "add", str(tmp_path / "nope.json"), data_dir=tmp_path / "data")
    assert missing.returncode == 2


def test_a_corrupt_device_exits_1_in_every_form(tmp_path: Path) -> None:
    """Wrong answers drain a node as slow ones do: node-problem-detector and Slurm act on exit 1."""
    store = ResultsStore(tmp_path / "benchd.sqlite3")
    first = add_run(store, 1.0)
    store.record_determinism(first, {"stack_id": "stack0000000", "fingerprint": "a"})
    later = add_run(store, 1.0)
    store.record_determinism(later, {"stack_id": "stack0000000", "fingerprint": "b", "compared_with": first,
                                     "agrees": False, "first_divergent_step": 7})  # fmt: skip
    store.close()
    npd = benchd("health", "--format", "npd", data_dir=tmp_path)
    assert (npd.returncode, npd.stdout) == (1, "cpu corrupt: vae bs128 fingerprint differs at step 7\n")
    text = benchd("health", data_dir=tmp_path)
    assert (
        text.returncode == 1 and "wrong answers: run 2 diverged from its own run 1 from step 7" in text.stdout
    )
