"""Verdicts from run histories: confirmation, hysteresis, what is not counted, and the bands named."""

from __future__ import annotations

import pytest

from benchd.health.verdict import (
    Band,
    BandSource,
    ConfigTracker,
    Health,
    Policy,
    device_verdicts,
)

DAY = 86400.0


def tracker(external: dict[BandSource, Band] | None = None, policy: Policy | None = None) -> ConfigTracker:
    return ConfigTracker("cuda:0", "abc123def456", "vae", "bs128", policy or Policy(), external)


def feed(t: ConfigTracker, seconds: list[float], start: float = 0.0) -> float:
    at = start
    for value in seconds:
        at += DAY
        t.observe("ok", value, at)
    return at


def state(t: ConfigTracker, at: float) -> Health:
    return t.verdict(at, DAY).state


def test_no_band_until_three_runs_then_healthy() -> None:
    t = tracker()
    assert state(t, 0) == Health.UNKNOWN
    at = feed(t, [10.0, 10.1])
    verdict = t.verdict(at, DAY)
    assert verdict.state == Health.UNKNOWN and "no band yet (2 ok runs" in verdict.reason()
    at = feed(t, [9.9], at)
    assert state(t, at) == Health.HEALTHY


def test_degraded_only_after_two_of_three_beyond_and_healthy_after_two_within() -> None:
    t = tracker()
    at = feed(t, [10.0, 10.1, 9.9, 10.0, 10.05])
    at = feed(t, [11.5], at)  # one slow run: not yet
    assert state(t, at) == Health.HEALTHY
    at = feed(t, [10.0, 11.5], at)  # two of the last three beyond: confirmed
    verdict = t.verdict(at, DAY)
    assert verdict.state == Health.DEGRADED
    assert verdict.band is not None and verdict.band.source == BandSource.OWN
    assert verdict.ratio == pytest.approx(1.15, rel=0.01)
    assert (verdict.beyond, verdict.window) == (2, 3)
    assert verdict.since == at - 2 * DAY  # the first slow run of the confirming window
    reason = verdict.reason()
    assert "1.15x the own band" in reason and "2 of the last 3 runs beyond it" in reason
    at = feed(t, [10.0], at)  # one within is not a recovery
    assert state(t, at) == Health.DEGRADED
    at = feed(t, [10.1], at)
    assert state(t, at) == Health.HEALTHY


def test_slow_runs_never_enter_the_own_band() -> None:
    t = tracker()
    at = feed(t, [10.0, 10.0, 10.0])
    at = feed(t, [12.0] * 8, at)  # a lasting slowdown stays degraded: the band does not drift to it
    verdict = t.verdict(at, DAY)
    assert verdict.state == Health.DEGRADED and verdict.band is not None
    assert verdict.band.median == 10.0


def test_a_slowdown_within_the_noise_is_not_degraded() -> None:
    t = tracker()
    at = feed(t, [10.0, 10.3, 9.7, 10.2, 9.8, 10.4, 9.6])  # spread 2-3%: allowance max(6%, 3x spread)
    at = feed(t, [10.7, 10.8, 10.7], at)
    assert state(t, at) == Health.HEALTHY


def test_failing_needs_earlier_success_and_confirmation() -> None:
    never = tracker()
    for day in (1, 2, 3):
        never.observe("oom", None, day * DAY)
    assert state(never, 3 * DAY) == Health.UNKNOWN  # it never fitted: not a fault of the device

    t = tracker()
    at = feed(t, [10.0, 10.0, 10.0])
    t.observe("error", None, at + DAY)
    assert state(t, at + DAY) == Health.HEALTHY
    t.observe("timeout", None, at + 2 * DAY)
    verdict = t.verdict(at + 2 * DAY, DAY)
    assert verdict.state == Health.FAILING
    assert "2 of the last 3 runs ended error, timeout where it used to succeed" in verdict.reason()
    at = feed(t, [10.0, 10.0], at + 2 * DAY)
    assert state(t, at) == Health.HEALTHY


@pytest.mark.parametrize("outcome", ["preempted", "cancelled", "skipped", "interrupted"])
def test_runs_that_say_nothing_of_the_device_are_not_counted(outcome: str) -> None:
    t = tracker()
    at = feed(t, [10.0, 10.0, 10.0])
    for _ in range(3):
        at += DAY
        t.observe(outcome, None, at)
    assert t.verdict(at, None).state == Health.HEALTHY
    assert t.verdict(at, None).last_run_at == 3 * DAY  # nor do they stand in for a measurement


def test_contended_runs_are_not_counted() -> None:
    t = tracker()
    at = feed(t, [10.0, 10.0, 10.0])
    for _ in range(3):
        at += DAY
        t.observe("ok", 20.0, at, contended=True)
    assert t.verdict(at, None).state == Health.HEALTHY


def test_no_run_for_two_periods_is_unknown() -> None:
    t = tracker()
    at = feed(t, [10.0, 10.0, 10.0])
    assert state(t, at + 2 * DAY) == Health.HEALTHY
    verdict = t.verdict(at + 2 * DAY + 1, DAY)
    assert verdict.state == Health.UNKNOWN and "no counted run since" in verdict.reason()
    assert t.verdict(at + 30 * DAY, None).state == Health.HEALTHY  # unscheduled: never stale


def test_reference_band_judges_until_the_own_band_exists() -> None:
    reference = Band(BandSource.REFERENCE, 5.0, 0.0, 1, "NVIDIA H200, torch 2.11, 2026-11-27")
    t = tracker({BandSource.REFERENCE: reference})
    at = feed(t, [6.0, 6.0])
    verdict = t.verdict(at, DAY)
    assert verdict.state == Health.DEGRADED
    assert (
        "1.20x the reference band (NVIDIA H200, torch 2.11, 2026-11-27; median 5.000 s)" in verdict.reason()
    )


def test_fleet_band_when_the_policy_names_it_first() -> None:
    fleet = Band(BandSource.FLEET, 10.0, 0.01, 5, "NVIDIA H200 on 5 hosts")
    t = tracker({BandSource.FLEET: fleet}, Policy(bands=(BandSource.FLEET,)))
    at = feed(t, [12.0, 12.0, 12.0, 12.0])  # slow from its first run: its own band would call it healthy
    assert state(t, at) == Health.DEGRADED


def test_device_verdict_is_the_worst_config_and_lines_fit_npd() -> None:
    healthy, slow = (
        tracker(),
        ConfigTracker("cuda:0", "fff000fff000", "transformer", "b200-e500-l4-h500", Policy()),
    )
    feed(healthy, [10.0] * 4)
    at = feed(slow, [10.0, 10.0, 10.0, 13.0, 13.0])
    other = ConfigTracker("cuda:1", "abc123def456", "vae", "bs128", Policy())
    feed(other, [10.0] * 4)
    devices = device_verdicts([healthy.verdict(at, None), slow.verdict(at, None), other.verdict(at, None)])
    assert [(d.device, d.state) for d in devices] == [("cuda:0", Health.DEGRADED), ("cuda:1", Health.HEALTHY)]
    line = devices[0].line(80)
    assert len(line) <= 80 and line.startswith("cuda:0 degraded: transformer b200-e500-l4-h500 1.30x own 2/3")
    assert devices[1].reason().startswith("1 of 1 configs within their bands")
