"""Deterministic fingerprints: where two runs diverge, which device is wrong, and what benchd says of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchd import protocol
from benchd.catalog import request as request_model
from benchd.catalog.identity import config_id
from benchd.cli.selftest import judge
from benchd.health import fingerprints
from benchd.health.book import HealthBook
from benchd.health.fingerprints import Fingerprinted, disagreements, first_divergent_step
from benchd.health.verdict import Health
from benchd.results.model import Origin
from benchd.results.store import ResultsStore

from .stored_runs import VAE_CONFIG_ID, add_run

ONE, TWO, THREE = "0000803f", "00000040", "00004040"  # 1.0, 2.0, 3.0 as float32 little-endian hex


def voter(
    device: str, fingerprint: str, bits: tuple[str, ...] = (ONE + TWO,), source: str = "", **own
) -> Fingerprinted:
    return Fingerprinted(source, device, "vae", "bs128", 1, fingerprint, bits, 0.0, **own)


def test_the_fingerprint_covers_every_step_and_the_weights() -> None:
    base = fingerprints.fingerprint([ONE + TWO, THREE], "w")
    assert len(base) == 16
    assert base != fingerprints.fingerprint([ONE + THREE, THREE], "w")
    assert base != fingerprints.fingerprint([ONE + TWO, THREE], "x")
    assert base != fingerprints.fingerprint([ONE, TWO + THREE], "w")  # the epoch boundary counts too


@pytest.mark.parametrize(
    ("ours", "theirs", "step"),
    [
        ([ONE + TWO, THREE], [ONE + TWO, THREE], None),
        ([ONE + TWO, THREE], [ONE + THREE, THREE], 1),
        ([ONE + TWO, THREE], [ONE + TWO, ONE], 2),  # counted across epochs
        ([ONE + TWO], [ONE + TWO, THREE], 2),  # one run stopped early
    ],
)
def test_first_divergent_step(ours: list[str], theirs: list[str], step: int | None) -> None:
    assert first_divergent_step(ours, theirs) == step


def test_a_majority_of_three_names_the_wrong_device_and_where() -> None:
    (found,) = disagreements(
        [voter("cuda:0", "a"), voter("cuda:1", "a"), voter("cuda:2", "b", (ONE + THREE,))]
    )
    assert found.voter.device == "cuda:2" and found.step == 1
    assert found.reason == "run 1 disagrees with 2 of 3 devices (fingerprint a) from step 1"


def test_no_majority_names_nobody_and_own_history_names_the_device() -> None:
    assert disagreements([voter("cuda:0", "a"), voter("cuda:1", "b")]) == []
    assert disagreements([voter("cuda:0", "a"), voter("cuda:1", "b"), voter("cuda:2", "c")]) == []
    (own,) = disagreements([voter("cuda:0", "a", compared_with=7, agrees_with_own=False, own_divergence=4)])
    assert own.reason == "run 1 diverged from its own run 7 from step 4"
    (weights,) = disagreements([voter("cuda:0", "a", compared_with=7, agrees_with_own=False)])
    assert weights.reason.endswith("in its final weights")


def test_fleet_notes_for_compare() -> None:
    key = ("cfg", "stk")
    notes = fingerprints.fleet_notes(
        [(key, voter("cuda:0", "a", source="h1")), (key, voter("cuda:0", "b", source="h2"))]
    )
    what = "fingerprints disagree: vae bs128 (config cfg, stack stk)"
    assert notes == [f"{what}, no majority to tell which is wrong: a on h1 cuda:0; b on h2 cuda:0"]
    three = [(key, voter("cuda:0", "a", source=f"h{i}")) for i in (1, 2)] + [
        (key, voter("cuda:0", "b", source="h3"))
    ]
    assert fingerprints.fleet_notes(three) == [
        f"{what}: h3 cuda:0 is corrupt: run 1 disagrees with 2 of 3 devices (fingerprint a) "
        "in its final weights"
    ]
    assert (
        fingerprints.fleet_notes([(key, voter("cuda:0", "a", source="h1")), (key, voter("cuda:1", "a"))])
        == []
    )


def _deterministic(store: ResultsStore, seconds: float, device: str, fingerprint: str, **facts) -> int:
    run_id = add_run(store, seconds, device=device)
    store.record_determinism(run_id, {"stack_id": "stack0000000", "fingerprint": fingerprint, **facts})
    return run_id


def test_a_device_that_disagrees_with_the_hosts_majority_is_corrupt(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "benchd.sqlite3")
    for device in ("cuda:0", "cuda:1", "cuda:2"):
        for _ in range(3):
            _deterministic(store, 1.0, device, "good" if device != "cuda:2" else "bad")
    book = HealthBook()
    for run in store.finished_runs():
        book.record(run)
    states = {v.device: v for v in book.verdicts(1e12)}
    assert states["cuda:0"].state == states["cuda:1"].state == Health.HEALTHY
    corrupt = states["cuda:2"]
    assert corrupt.state == Health.CORRUPT
    assert corrupt.reason().startswith(
        f"vae bs128 ({VAE_CONFIG_ID}): wrong answers: run 9 disagrees with 2 of 3"
    )
    assert corrupt.line(80).startswith("cuda:2 corrupt: vae bs128 fingerprint differs at")
    assert sorted(v.fingerprint for _, v in book.fingerprints()) == ["bad", "good", "good"]


def test_own_history_and_selftests(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path / "benchd.sqlite3")
    first = _deterministic(store, 1.0, "cpu", "a")
    _deterministic(store, 1.0, "cpu", "a", compared_with=first, agrees=True, first_divergent_step=None)
    flipped = add_run(store, 1.0)
    store.record_determinism(flipped, {"stack_id": "stack0000000", "fingerprint": "z", "bitflip": "bit 30"})
    store._db.execute("UPDATE runs SET origin = ? WHERE id = ?", (Origin.SELFTEST, flipped))
    store._db.commit()
    assert store.first_deterministic_run(VAE_CONFIG_ID, "stack0000000", "cpu", before=99).id == first
    book = HealthBook()
    for run in store.finished_runs():
        book.record(run)
    (verdict,) = book.verdicts(1e12)
    assert verdict.state == Health.UNKNOWN  # a selftest's injected run is no evidence, nor a run to count
    _deterministic(store, 1.0, "cpu", "b", compared_with=first, agrees=False, first_divergent_step=5)
    book.record(store.finished_runs()[-1])
    (verdict,) = book.verdicts(1e12)
    assert verdict.state == Health.CORRUPT and "diverged from its own run 1 from step 5" in verdict.reason()


def test_deterministic_is_part_of_the_config_identity_and_only_when_on() -> None:
    plain, deterministic = (
        request_model.parse({"workload": "vae", "presets": "bs128", "deterministic": on}).configs()[0]
        for on in (False, True)
    )
    assert "deterministic" not in plain.to_json() and deterministic.to_json()["deterministic"] is True
    data = {"kind": "synthetic", "fingerprint": "mnist/synthetic/v1/scale=1/seed=0"}
    assert config_id(plain.to_json(), data) != config_id(deterministic.to_json(), data)


def test_a_bit_flip_needs_a_deterministic_run() -> None:
    config = request_model.parse({"workload": "vae", "presets": "bs128"}).configs()[0]
    spec = json.loads(protocol.RunSpec(config, "cpu", Path("/data")).to_json())
    with pytest.raises(protocol.ProtocolError, match="inject_bitflip: needs a deterministic run"):
        protocol.RunSpec.from_json(json.dumps({**spec, "inject_bitflip": 3}))
    with pytest.raises(protocol.ProtocolError, match="inject_bitflip: must be a step number from 0"):
        protocol.RunSpec.from_json(json.dumps({**spec, "deterministic": True, "inject_bitflip": -1}))
    parsed = protocol.RunSpec.from_json(json.dumps({**spec, "deterministic": True, "inject_bitflip": 3}))
    assert parsed.inject_bitflip == 3 and json.loads(parsed.to_json())["inject_bitflip"] == 3


def test_a_corrupt_device_and_the_fingerprints_are_exported(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    from benchd.server.metrics import BenchdCollector, DaemonFacts
    from benchd.server.scoreboard import Scoreboard

    store = ResultsStore(tmp_path / "benchd.sqlite3")
    for device in ("cuda:0", "cuda:1", "cuda:2"):
        _deterministic(store, 1.0, device, "bad" if device == "cuda:1" else "good")
    health = HealthBook()
    scoreboard = Scoreboard(health=health)
    for run in store.finished_runs():
        scoreboard.record(run)
    registry = CollectorRegistry(auto_describe=False)
    queue = type("Idle", (), {"queue_length": lambda self: 0, "active_runs": lambda self: [],
                              "worker_failure": lambda self: None})()  # fmt: skip
    registry.register(BenchdCollector(scoreboard, queue, store, DaemonFacts, health=health))
    value = registry.get_sample_value
    assert value("benchd_device_health", {"device": "cuda:1", "state": "corrupt"}) == 1.0
    assert value("benchd_device_health", {"device": "cuda:0", "state": "corrupt"}) == 0.0
    labels = {"workload": "vae", "preset": "bs128", "config": VAE_CONFIG_ID, "stack": "stack0000000"}
    assert value("benchd_determinism_info", {**labels, "device": "cuda:1", "fingerprint": "bad"}) == 1.0
    assert value("benchd_determinism_info", {**labels, "device": "cuda:2", "fingerprint": "good"}) == 1.0


def test_compare_notes_bundles_whose_fingerprints_disagree(tmp_path: Path) -> None:
    from .test_cli import benchd

    bundles = []
    for host, fingerprint in (("h1", "good"), ("h2", "good"), ("h3", "bad")):
        store = ResultsStore(tmp_path / host / "benchd.sqlite3")
        run_id = add_run(store, 1.0, host=host)
        store.record_determinism(run_id, {"stack_id": "stack0000000", "fingerprint": fingerprint})
        store.close()
        bundle = tmp_path / f"{host}.json"
        assert benchd("export", "-o", str(bundle), data_dir=tmp_path / host).returncode == 0
        bundles.append(str(bundle))
    result = benchd("compare", *bundles, "--format", "markdown")
    assert result.returncode == 0, result.stderr
    what = f"vae bs128 (config {VAE_CONFIG_ID}, stack stack0000000)"
    note = f"fingerprints disagree: {what}: h3 cpu is corrupt: run 1 disagrees with 2 of 3 devices"
    assert note in result.stdout


def test_a_flip_step_beyond_the_runs_is_said_not_missed(tmp_path: Path) -> None:
    """`benchd selftest --inject-bitflip 99` on runs of fewer steps: no flip happened, and it says so."""
    store = ResultsStore(tmp_path / "benchd.sqlite3")
    clean, injected = (store.get_run(_deterministic(store, 1.0, "cpu", "same")) for _ in range(2))
    assert clean is not None and injected is not None
    assert judge(clean, injected, 99) == {
        "caught": False,
        "first_divergent_step": None,
        "lines": ["the runs took 48 steps: there was no step 99 to flip a bit before"],
    }
