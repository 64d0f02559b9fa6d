"""Deterministic runs of every workload on the CPU: two runs agree bit for bit, an injected bit flip is
caught at its step, and neither a selftest nor its flip counts as evidence about the device."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .test_cli import benchd

pytestmark = pytest.mark.slow

# Small fractions of the session's 1% datasets: a few steps each.
CASES = [
    ("vae", "bs128", "1", "2", 6),  # two epochs of 5 steps: the flip comes in the second
    ("siamese", "bs64", "0.3", "1", 1),
    ("transformer", "b20-e200-l2-h200", "0.1", "1", 1),
    ("dcgan", "bs64", "0.1", "1", 1),
    ("gpt", "b16-d384-l6-s256", "0.5", "1", 1),
]


@pytest.mark.parametrize(("workload", "preset", "fraction", "epochs", "step"), CASES)
def test_two_runs_agree_and_a_flipped_bit_is_caught_at_its_step(
    data_dir: Path, workload: str, preset: str, fraction: str, epochs: str, step: int
) -> None:
    shape = ["-p", preset, "--fraction", fraction, "--epochs", epochs]
    selftest = benchd(
        "selftest", workload, *shape, "--inject-bitflip", str(step), "--json", data_dir=data_dir
    )
    assert selftest.returncode == 0, selftest.stdout + selftest.stderr
    answer = json.loads(selftest.stdout)
    clean, injected = answer["runs"]
    assert answer["caught"] and answer["first_divergent_step"] == step
    assert injected["determinism"]["bitflip"].startswith(f"before step {step}: bit 30 of ")
    assert clean["origin"] == injected["origin"] == "selftest"
    plain = benchd("run", workload, *shape, "--deterministic", "--json", data_dir=data_dir)
    assert plain.returncode == 0, plain.stderr
    (run,) = json.loads(plain.stdout)
    facts = run["determinism"]
    assert (
        facts["fingerprint"] == clean["determinism"]["fingerprint"] != injected["determinism"]["fingerprint"]
    )
    assert facts["stack_id"] == clean["determinism"]["stack_id"] and run["config_id"] == clean["config_id"]
    assert run["config"]["deterministic"] is True
    assert "compared_with" not in facts  # a selftest's runs are nothing to compare with
    steps = "".join(epoch["loss_bits"] for epoch in run["epochs"])
    assert len(steps) == 8 * sum(epoch["steps"] for epoch in run["epochs"])


def test_a_later_run_is_compared_with_the_first_and_agreement_is_no_verdict(data_dir: Path) -> None:
    shape = ["-p", "bs128", "--fraction", "0.25", "--deterministic", "--json"]
    first, again = (json.loads(benchd("run", "vae", *shape, data_dir=data_dir).stdout)[0] for _ in range(2))
    facts = again["determinism"]
    assert facts["compared_with"] == first["id"] and facts["agrees"] is True
    assert (
        facts["first_divergent_step"] is None and facts["fingerprint"] == first["determinism"]["fingerprint"]
    )
    health = json.loads(benchd("health", "--format", "json", data_dir=data_dir).stdout)
    assert [d["state"] for d in health["devices"]] == ["unknown"]  # two ok runs: no band yet, not corrupt
