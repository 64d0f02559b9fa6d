"""Deterministic runs' fingerprints: when two disagree, where, and which device is wrong.

A deterministic run of a config on a software stack (its stack_id: device
model, driver, CUDA, cuDNN, torch and benchd versions, precision, threads)
must produce the same loss at every step and the same final weights as every
other such run, on this device or another of the same model. A device is
`corrupt` when its latest deterministic run disagrees with its own first run
of that config and stack, or with the majority of the devices that ran it
(at least MIN_VOTERS). The per-step loss bits say where it first diverged.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from benchd.results.model import Origin, Outcome, Run

STEP_HEX = 8  # one float32 loss, as little-endian hex
MIN_VOTERS = 3  # fewer devices than this have no majority to be wrong against


def fingerprint(loss_bits: Iterable[str], weights_sha256: str) -> str:
    """16 hex characters of the SHA-256 of every step's loss bits, epoch by epoch, and the final weights."""
    digest = hashlib.sha256()
    for epoch in loss_bits:
        digest.update(epoch.encode() + b"|")
    digest.update(weights_sha256.encode())
    return digest.hexdigest()[:16]


def first_divergent_step(ours: Iterable[str], theirs: Iterable[str]) -> int | None:
    """The first step (from 0, counted across epochs) whose loss bits differ; where one run has steps the
    other lacks, the first of those; None when every step agrees."""
    a, b = "".join(ours), "".join(theirs)
    for step in range(min(len(a), len(b)) // STEP_HEX):
        if a[step * STEP_HEX : (step + 1) * STEP_HEX] != b[step * STEP_HEX : (step + 1) * STEP_HEX]:
            return step
    return None if len(a) == len(b) else min(len(a), len(b)) // STEP_HEX


@dataclass(frozen=True)
class Fingerprinted:
    """One device's deterministic run of a config on a stack, as a vote."""

    source: str  # where the device is: "" for this host, else a bundle's host or a Prometheus instance
    device: str
    workload: str
    preset: str
    run_id: int
    fingerprint: str
    loss_bits: tuple[str, ...]
    finished_at: float
    compared_with: int | None = None  # the device's own first run of the config and stack, if another
    agrees_with_own: bool | None = None  # None: not compared (it is the first, or from Prometheus)
    own_divergence: int | None = None  # the first step it differs from that run, when the losses do

    @property
    def name(self) -> str:
        return f"{self.source} {self.device}" if self.source else self.device


@dataclass(frozen=True)
class Disagreement:
    """Why a device is corrupt for one config and stack."""

    voter: Fingerprinted
    step: int | None  # the first divergent step, when the loss bits locate it
    reason: str


def disagreements(latest: list[Fingerprinted]) -> list[Disagreement]:
    """The devices whose latest run of one config and stack is wrong: against their own first run, or
    against a strict majority of at least MIN_VOTERS devices (without one, nobody is named)."""
    found = [
        Disagreement(v, v.own_divergence, f"run {v.run_id} diverged from its own run {v.compared_with}"
                     + _at(v.own_divergence))
        for v in latest if v.agrees_with_own is False
    ]  # fmt: skip
    if len(latest) < MIN_VOTERS:
        return found
    counts = Counter(v.fingerprint for v in latest)
    ((majority, votes),) = counts.most_common(1)
    if votes * 2 <= len(latest):  # no strict majority
        return found
    agreeing = next(v for v in latest if v.fingerprint == majority)
    named = {d.voter.name for d in found}
    for voter in latest:
        if voter.fingerprint != majority and voter.name not in named:
            step = first_divergent_step(voter.loss_bits, agreeing.loss_bits)
            reason = (
                f"run {voter.run_id} disagrees with {votes} of {len(latest)} devices (fingerprint {majority})"
            )
            found.append(Disagreement(voter, step, reason + _at(step)))
    return found


def vote(run: Run, source: str = "") -> Fingerprinted | None:
    """A finished deterministic run as a vote for its config and stack; None for any other run (a
    selftest's injected fault included)."""
    facts = run.determinism or {}
    if run.outcome != Outcome.OK or run.origin == Origin.SELFTEST or "fingerprint" not in facts:
        return None
    return Fingerprinted(
        source, run.device or run.requested_device, run.workload, run.preset, run.id,
        str(facts["fingerprint"]), tuple(epoch.loss_bits or "" for epoch in run.epochs),
        run.finished_at or run.queued_at, facts.get("compared_with"), facts.get("agrees"),
        facts.get("first_divergent_step"),
    )  # fmt: skip


def stack_of(run: Run) -> str | None:
    return (run.determinism or {}).get("stack_id")


Vote = tuple[tuple[str, str], Fingerprinted]  # (config id, stack id), the vote


def bundle_votes(runs: Iterable[Run], host: str) -> list[Vote]:
    """Another host's devices' latest deterministic fingerprints, from its bundle's runs."""
    latest: dict[tuple[str, str, str], Vote] = {}
    for run in sorted(runs, key=lambda r: r.finished_at or r.queued_at):
        voter, stack = vote(run, str((run.system or {}).get("hostname") or host)), stack_of(run)
        if voter is not None and stack is not None and run.config_id is not None:
            latest[(run.config_id, stack, voter.device)] = ((run.config_id, stack), voter)
    return list(latest.values())


def prometheus_votes(url: str) -> list[Vote]:
    """The fleet's fingerprints from Prometheus (benchd_determinism_info): each device's latest, without its
    loss bits, so a divergence there is told but not located."""
    from benchd.comparison.prometheus import instant
    from benchd.metric_contract import series

    votes = []
    for sample in instant(url, series("benchd_determinism_info")):
        labels = {name: "" for name in ("device", "workload", "preset", "fingerprint", "config", "stack")}
        labels.update({"instance": "?", **(sample.get("metric") or {})})
        voter = Fingerprinted(labels["instance"], labels["device"], labels["workload"], labels["preset"], 0,
                              labels["fingerprint"], (), 0.0)  # fmt: skip
        votes.append(((labels["config"], labels["stack"]), voter))
    return votes


def fleet_notes(votes: Iterable[Vote]) -> list[str]:
    """Each config and stack whose devices disagree, for `benchd compare`: the wrong devices where a
    majority says so, else every fingerprint and who has it."""
    by_key: dict[tuple[str, str], list[Fingerprinted]] = {}
    for key, voter in votes:
        by_key.setdefault(key, []).append(voter)
    lines = []
    for (config, stack), voters in sorted(by_key.items()):
        if len({v.fingerprint for v in voters}) < 2 and not any(v.agrees_with_own is False for v in voters):
            continue
        what = f"{voters[0].workload} {voters[0].preset} (config {config}, stack {stack})"
        found = disagreements(voters)
        if found:
            lines += [f"fingerprints disagree: {what}: {d.voter.name} is corrupt: {d.reason}" for d in found]
            continue
        groups: dict[str, list[str]] = {}
        for voter in voters:
            groups.setdefault(voter.fingerprint, []).append(voter.name)
        told = "; ".join(f"{fp} on {', '.join(names)}" for fp, names in groups.items())
        lines.append(f"fingerprints disagree: {what}, no majority to tell which is wrong: {told}")
    return lines


def _at(step: int | None) -> str:
    return f" from step {step}" if step is not None else " in its final weights"
